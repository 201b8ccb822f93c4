"""Backbones side by side: Keras Applications and KerasHub, speed and size per family.

For each backbone, in its own process, at each image size it can take: the FineTuner's
model with random weights (speed does not depend on them), unfrozen as
`FineTuner.unfreeze()` leaves it, measured as `bench.precision` measures (real CIFAR-10
photos through transferkit's input pipeline; a warm-up pass, then rounds that
alternate float32 and mixed bfloat16, the best round of each kept):

- `extract`: feature extraction (a cached frozen phase's work), images/s;
- `unfrozen`: an unfrozen training epoch, images/s;
- `bf16`: the speed-up of mixed bfloat16 over float32 on each;
- `parameters`: of the backbone, without its top.

Keras Applications: MobileNet, ResNet50, EfficientNetV2B0. KerasHub: DeiT-S/16, Swin-T,
EfficientNet-B0 and MobileNetV3-Large at their real sizes (`bench.hub_configs`: the
presets' architectures, saved offline with random weights), and DINOv2 ViT-S/14 (the
offline preset of `tk.offline.dinov2_vits14_preset()`). Sizes: the reference example's
160 px and the ViT-friendly 224 px, each moved to the nearest side a backbone takes
(DINOv2's patch of 14: 168; Swin-T takes 224 and up only).

    python -m bench.backbones [--sizes 160 224] [--extract-images 64]
        [--train-images 32] [--rounds 2] [--batch-size 16] [--only NAME ...]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

APPLICATIONS = ["mobilenet", "resnet50", "efficientnetv2b0"]
HUB = [
    "deit_small_patch16_224",
    "swin_tiny_patch4_window7_224",
    "efficientnet_b0",
    "mobilenetv3_large_100",
]
DINOV2 = "dinov2_vits14"
PRECISIONS = {"float32": ("float32", True), "mixed_bfloat16": ("mixed_bfloat16", True)}


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line (building it runs nothing)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 224])
    parser.add_argument("--extract-images", type=int, default=64)
    parser.add_argument("--train-images", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--only", nargs="*", help="measure only these backbones")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    return parser


def fitting_size(name: str, size: int) -> int | None:
    """The side nearest `size` that the backbone takes, or None where it takes none near."""
    if name == DINOV2:
        return -(-size // 14) * 14
    if name.startswith("swin"):
        return size if size >= 224 and size % 32 == 0 else None
    return size


def backbone_handle(name: str, size: int, folder: Path) -> str:
    """What `FineTuner(backbone=...)` takes for a benchmark name."""
    if name in APPLICATIONS:
        return name
    if name == DINOV2:
        import transferkit as tk

        return f"hub:{tk.offline.dinov2_vits14_preset()}"
    from bench.hub_configs import write_preset

    preset = folder / f"{name}_{size}"
    if not (preset / "config.json").exists():
        write_preset(name, preset, image_size=size)
    return f"hub:{preset}"


def measure(name: str, size: int, args) -> dict:
    """One backbone at one size, in this process (see the module docstring)."""
    import bench.precision as precision_bench
    from transferkit.backbones import build_backbone

    precision_bench.VARIANTS = PRECISIONS
    with tempfile.TemporaryDirectory() as folder:
        handle = backbone_handle(name, size, Path(folder))
        speed_args = argparse.Namespace(
            image_size=size,
            extract_images=args.extract_images,
            train_images=args.train_images,
            batch_size=args.batch_size,
            rounds=args.rounds,
        )
        rows = {row["precision"]: row for row in precision_bench.speed(handle, speed_args)}
        backbone, spec = build_backbone(handle, weights=None, input_shape=(size, size, 3))
        parameters = backbone.count_params()
    float32, bfloat16 = rows["float32"], rows["mixed_bfloat16"]
    return {
        "backbone": name,
        "source": spec.source,
        "family": spec.family,
        "image_size": size,
        "parameters": parameters,
        "extract_img_s": round(float32["extract_img_s"], 2),
        "unfrozen_img_s": round(float32["unfrozen_img_s"], 2),
        "extract_bf16_speedup": round(bfloat16["extract_img_s"] / float32["extract_img_s"], 2),
        "unfrozen_bf16_speedup": round(bfloat16["unfrozen_img_s"] / float32["unfrozen_img_s"], 2),
        "load_average": round(float32["load_average"], 2),
    }


def main():
    args = build_parser().parse_args()
    if args.one:
        name, size = json.loads(args.one)
        print("RESULT " + json.dumps(measure(name, size, args)), flush=True)
        return

    import pandas as pd

    from bench.common import bench_command, markdown_table, write_results

    names = args.only or [*APPLICATIONS, DINOV2, *HUB]
    rows = []
    for name in names:
        for size in dict.fromkeys(fitting_size(name, s) for s in args.sizes):
            if size is None:
                continue
            command = [sys.executable, "-m", "bench.backbones", "--one", json.dumps([name, size])]
            for option in ("extract_images", "train_images", "rounds", "batch_size"):
                command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
            output = subprocess.run(command, capture_output=True, text=True)
            if output.returncode != 0:
                print(output.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"measuring {name} at {size} px failed")
            rows.append(json.loads(output.stdout.split("RESULT ", 1)[1]))
            print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    print(
        f"\nimages/s on 2 CPU cores, batch {args.batch_size}: feature extraction over "
        f"{args.extract_images} images, an unfrozen epoch over {args.train_images} images "
        f"(best of {args.rounds} rounds); bf16: mixed_bfloat16 over float32"
    )
    print(markdown_table(table.drop(columns="load_average")))
    write_results("backbones", {"speed": rows}, bench_command("bench.backbones"), setup=vars(args))


if __name__ == "__main__":
    main()

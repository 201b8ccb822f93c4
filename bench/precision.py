"""float32 against mixed bfloat16, per backbone family: speed, and accuracy on real data.

Speed (`--backbones`): for each backbone, in its own process, the FineTuner's model
(random weights: speed does not depend on them) at `--image-size`, unfrozen as
`FineTuner.unfreeze()` leaves it (whole backbone trainable, BatchNorm in inference mode,
layer-wise Adam), and its copy in each precision (`transferkit.precision.with_precision`),
on real CIFAR-10 photos through transferkit's input pipeline:

- `extract`: feature extraction (the cached frozen phase's work), images/s over
  `--extract-images` images;
- `unfrozen`: an unfrozen training epoch over `--train-images` images (flips on);
- `speedup`: that of bfloat16 over float32, and what `precision="auto"` picks here.

bfloat16 is measured twice: as `FineTuner` trains it (its BatchNormalization layers as
`transferkit.layers.BFloat16BatchNormalization`), and with Keras's own BatchNormalization
(`keras BN`), which casts to float32 and back around every frozen BatchNorm.

After a warm-up pass of each (tracing), `--rounds` rounds alternate the precisions and
the best round of each is kept: many short rounds, because this machine's speed swings
by up to 2x for seconds at a time (a numpy matrix product alone varies so), and a short
round fits in a fast stretch more often than a long one. Other jobs slow some rounds
down and never speed one up. Each row also gives every round and the load average.

Accuracy (`--accuracy`): the reference recipe (MobileNet, its real ImageNet weights,
CIFAR-10 cats vs dogs, `FreezeUnfreeze(frozen_epochs=1)`, seed 0) under float32,
mixed_bfloat16 and "auto", held-out accuracy on the 2,000 test photos. `--accuracy-*`
options give its budget (the reference example itself trains 10,000 images, 4 epochs).

Reference (`--reference`): the reference example itself
(`examples/cats_vs_dogs/train.py`, its full default run) with `--precision float32` and
with `--precision auto`, one after the other, each in its own process writing into a
fresh folder: the held-out accuracy and wall time of each, and what "auto" computed in.

    python -m bench.precision [--backbones resnet50 mobilenet] [--image-size 160]
        [--rounds 8] [--accuracy] [--accuracy-train-images 4000] [--accuracy-epochs 2]
        [--reference]
"""

import argparse
import json
import subprocess
import sys

# What each measured copy is: a dtype policy, and whether bfloat16 uses transferkit's
# BatchNormalization (as FineTuner trains) or Keras's.
VARIANTS = {
    "float32": ("float32", True),
    "mixed_bfloat16": ("mixed_bfloat16", True),
    "mixed_bfloat16 keras BN": ("mixed_bfloat16", False),
}


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line (building it runs nothing)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="*", default=["resnet50", "mobilenet"])
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--extract-images", type=int, default=256)
    parser.add_argument("--train-images", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--accuracy", action="store_true", help="also the accuracy run")
    parser.add_argument("--accuracy-train-images", type=int, default=4000)
    parser.add_argument("--accuracy-epochs", type=int, default=2)
    parser.add_argument(
        "--reference", action="store_true", help="also the reference example, float32 and auto"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    return parser


def speed(backbone, args):
    import os
    import time

    import numpy as np

    import transferkit as tk
    from bench.common import cats_vs_dogs, peak_rss_mib
    from transferkit.data import as_image_source, make_dataset
    from transferkit.features import extract_features
    from transferkit.optimizers import get_optimizer
    from transferkit.precision import with_precision
    from transferkit.training.augmentation import augmentation_layer

    x, y, _, _ = cats_vs_dogs(max(args.extract_images, args.train_images), test_images=2)
    ft = tk.FineTuner(backbone, weights=None, input_shape=args.image_size, seed=0)
    ft.build(["cat", "dog"])
    # The unfrozen phase as FineTuner runs it: the whole backbone trainable, BatchNorm in
    # inference mode, the layer-wise Adam; each precision's copy carries those flags.
    trainable = ft.unfreeze()
    models = {
        variant: with_precision(ft.model, policy, bfloat16_batch_norm=ours)
        for variant, (policy, ours) in VARIANTS.items()
    }
    size, batch = ft.model.image_size, args.batch_size
    images = as_image_source(x[: args.extract_images], y[: args.extract_images])
    train = make_dataset(
        as_image_source(x[: args.train_images], y[: args.train_images]),
        size,
        batch,
        shuffle=True,
        seed=0,
        augmentation=augmentation_layer("flip", 0),
    )
    extractors, rates = {}, {}
    for precision, model in models.items():
        optimizer = get_optimizer("adam", 1e-4, trainable.lr_multipliers)
        model.compile(optimizer=optimizer, loss=model.head.default_loss())
        extractors[precision] = model.feature_extractor()
        # Warm-up: the first pass traces the graphs.
        extract_features(extractors[precision], images, size, batch, verbose=0)
        model.fit(train, epochs=1, verbose=0)
        rates[precision] = {"extract": [], "unfrozen": []}

    # Rounds alternate the precisions, and the best of each is kept: other jobs on a
    # shared machine slow some rounds down, never speed one up.
    for _ in range(args.rounds):
        for precision, model in models.items():
            started = time.perf_counter()
            features, _ = extract_features(extractors[precision], images, size, batch, verbose=0)
            seconds = time.perf_counter() - started
            assert features.dtype == np.float32
            rates[precision]["extract"].append(len(images) / seconds)
            started = time.perf_counter()
            model.fit(train, epochs=1, verbose=0)
            seconds = time.perf_counter() - started
            rates[precision]["unfrozen"].append(args.train_images / seconds)
    rows = []
    for precision in VARIANTS:
        rows.append(
            {
                "backbone": backbone,
                "precision": precision,
                "extract_img_s": max(rates[precision]["extract"]),
                "unfrozen_img_s": max(rates[precision]["unfrozen"]),
                "rounds": rates[precision],
                "load_average": os.getloadavg()[0],
                "peak_mib": peak_rss_mib(),
            }
        )
    return rows


def accuracy(precision, args):
    import transferkit as tk
    from bench.common import Timer, cats_vs_dogs, peak_rss_mib, weights_path
    from transferkit.features import FeatureCache

    x, y, xt, yt = cats_vs_dogs(args.accuracy_train_images)
    ft = tk.FineTuner(
        "mobilenet",
        weights=weights_path(),
        input_shape=args.image_size,
        schedule=tk.FreezeUnfreeze(frozen_epochs=1),
        precision=precision,
        cache_features=FeatureCache(),
        seed=0,
    )
    with Timer() as t:
        ft.fit(x, y, epochs=args.accuracy_epochs, verbose=0)
    return {
        "precision": precision,
        "computes_in": ft.compute_precision,
        "fit_seconds": t.seconds,
        "held_out_accuracy": ft.evaluate(xt, yt)["accuracy"],
        "peak_mib": peak_rss_mib(),
    }


def reference(precision):
    """The reference example's full run with `--precision precision`, as a result row."""
    import pathlib
    import tempfile

    from transferkit.backbones import get_backbone_spec
    from transferkit.precision import resolve_precision

    example = pathlib.Path(__file__).resolve().parents[1] / "examples/cats_vs_dogs/train.py"
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "run"
        command = [sys.executable, str(example), "--precision", precision, "--out", str(out)]
        subprocess.run(command, capture_output=True, text=True, check=True)
        metrics = json.loads((out / "metrics.json").read_text())
        backbone = json.loads((out / "run.json").read_text())["backbone"]
    family = get_backbone_spec(backbone).family
    return {
        "precision": precision,
        "backbone": backbone,
        "computes_in": resolve_precision(precision, family)[0],
        "held_out_accuracy": metrics["accuracy"],
        "held_out_images": metrics["num_images"],
        "wall_seconds": metrics["seconds"],
    }


def _run(args, *one):
    command = [sys.executable, "-m", "bench.precision", "--one", json.dumps(one)]
    for name in ("image_size", "extract_images", "train_images", "batch_size", "rounds"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    command += ["--accuracy-train-images", str(args.accuracy_train_images)]
    command += ["--accuracy-epochs", str(args.accuracy_epochs)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    row = json.loads(output.split("RESULT ", 1)[1])
    for line in row if isinstance(row, list) else [row]:
        print(json.dumps(line), flush=True)
    return row


def main():
    args = build_parser().parse_args()
    if args.one:
        kind, *rest = json.loads(args.one)
        row = speed(*rest, args) if kind == "speed" else accuracy(*rest, args)
        print("RESULT " + json.dumps(row))
        return

    import pandas as pd

    from bench.common import bench_command, write_results
    from transferkit.backbones import get_backbone_spec

    figures = {}
    from transferkit.precision import resolve_precision

    if args.backbones:
        rows = [row for backbone in args.backbones for row in _run(args, "speed", backbone)]
        table = pd.DataFrame(rows).pivot(
            index="backbone", columns="precision", values=["extract_img_s", "unfrozen_img_s"]
        )
        summary = pd.DataFrame(index=table.index)
        for what in ("extract_img_s", "unfrozen_img_s"):
            for precision in VARIANTS:
                summary[f"{what[:-6]} {precision}"] = table[(what, precision)]
            summary[f"{what[:-6]} speedup"] = (
                table[(what, "mixed_bfloat16")] / table[(what, "float32")]
            )
            summary[f"{what[:-6]} speedup keras BN"] = (
                table[(what, "mixed_bfloat16 keras BN")] / table[(what, "float32")]
            )
        summary["family"] = [get_backbone_spec(name).family for name in summary.index]
        summary["auto picks"] = [resolve_precision("auto", f)[0] for f in summary["family"]]
        print(
            f"\nimages/s, {args.image_size}px, batch {args.batch_size}, 2 CPU cores: feature "
            f"extraction over {args.extract_images} images, unfrozen epoch over "
            f"{args.train_images} images (best of {args.rounds} rounds)"
        )
        print(summary.round(2).to_string())
        figures["speed"] = summary.reset_index().to_dict(orient="records")

    if args.accuracy:
        rows = []
        for precision in ("float32", "mixed_bfloat16", "auto"):
            policy = resolve_precision(precision, "mobilenet")[0]
            same = [row for row in rows if row["computes_in"] == policy]
            if same:
                # The same policy trains the same, seeded run: say so rather than rerun it.
                rows.append({**same[0], "precision": precision, "note": "same run"})
                print(json.dumps(rows[-1]), flush=True)
                continue
            rows.append(_run(args, "accuracy", precision))
        print(
            f"\nMobileNet (real ImageNet weights), {args.accuracy_train_images} CIFAR-10 "
            f"cats/dogs at {args.image_size}px, {args.accuracy_epochs} epochs (1 frozen), "
            "held out: the 2,000 test photos"
        )
        print(pd.DataFrame(rows).set_index("precision").round(4).to_string())
        figures["accuracy"] = rows

    if args.reference:
        rows = []
        for precision in ("float32", "auto"):
            rows.append(reference(precision))
            print(json.dumps(rows[-1]), flush=True)
        print("\nThe reference example (python examples/cats_vs_dogs/train.py --precision ...)")
        print(pd.DataFrame(rows).set_index("precision").round(4).to_string())
        figures["reference"] = rows

    write_results("precision", figures, bench_command("bench.precision"), setup=vars(args))


if __name__ == "__main__":
    main()

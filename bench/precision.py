"""float32 against mixed bfloat16, per backbone family: speed, and accuracy on real data.

Speed (`--backbones`): for each backbone and precision, in its own process, a
`FineTuner(precision=...)` with random weights (speed does not depend on them) on real
CIFAR-10 photos resized to `--image-size`:

- `extract_img_s`: feature extraction (the cached frozen phase's work), images/s of a
  second pass over `--extract-images` images (the first one traces the graph);
- `unfrozen_img_s`: training the whole network (`schedule="no_freeze"`), images/s of
  the second of two epochs over `--train-images` images;
- `speedup`: that of bfloat16 over float32, and what `precision="auto"` picks here.

Accuracy (`--accuracy`): the reference recipe (MobileNet, its real ImageNet weights,
CIFAR-10 cats vs dogs, `FreezeUnfreeze(frozen_epochs=1)`, seed 0) under float32,
mixed_bfloat16 and "auto", held-out accuracy on the 2,000 test photos. `--accuracy-*`
options give its budget (the reference example itself trains 10,000 images, 4 epochs).

    python -m bench.precision [--backbones resnet50 mobilenet] [--image-size 160]
        [--accuracy] [--accuracy-train-images 4000] [--accuracy-epochs 2]
"""

import argparse
import json
import subprocess
import sys

PRECISIONS = ("float32", "mixed_bfloat16")


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line (building it runs nothing)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="*", default=["resnet50", "mobilenet"])
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--extract-images", type=int, default=512)
    parser.add_argument("--train-images", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--accuracy", action="store_true", help="also the accuracy run")
    parser.add_argument("--accuracy-train-images", type=int, default=4000)
    parser.add_argument("--accuracy-epochs", type=int, default=2)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    return parser


def speed(backbone, precision, args):
    import keras
    import numpy as np

    import transferkit as tk
    from bench.common import Timer, cats_vs_dogs, peak_rss_mib
    from transferkit.data import as_image_source
    from transferkit.features import extract_features
    from transferkit.precision import model_precision, with_precision

    x, y, _, _ = cats_vs_dogs(max(args.extract_images, args.train_images), test_images=2)
    ft = tk.FineTuner(
        backbone,
        weights=None,
        input_shape=args.image_size,
        schedule="no_freeze",
        precision=precision,
        validation_split=0,
        cache_features=False,
        seed=0,
    )
    ft.build(["cat", "dog"])
    model = with_precision(ft.model, precision)
    extractor = model.feature_extractor()
    # What the cached frozen phase runs: tf.data decoding and resizing, then the model.
    images = as_image_source(x[: args.extract_images], y[: args.extract_images])
    size, batch = model.image_size, args.batch_size
    extract_features(extractor, images, size, batch, verbose=0)
    with Timer() as t:
        features, _ = extract_features(extractor, images, size, batch, verbose=0)
    assert features.dtype == np.float32
    history = ft.fit(
        x[: args.train_images],
        y[: args.train_images],
        epochs=2,
        batch_size=args.batch_size,
        verbose=0,
    )
    assert model_precision(ft.model) == "float32"
    assert keras.config.dtype_policy().name == "float32"
    return {
        "backbone": backbone,
        "precision": precision,
        "extract_img_s": len(images) / t.seconds,
        "unfrozen_img_s": args.train_images / float(history["seconds"].iloc[-1]),
        "peak_mib": peak_rss_mib(),
    }


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


def _run(args, *one):
    command = [sys.executable, "-m", "bench.precision", "--one", json.dumps(one)]
    for name in ("image_size", "extract_images", "train_images", "batch_size"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    command += ["--accuracy-train-images", str(args.accuracy_train_images)]
    command += ["--accuracy-epochs", str(args.accuracy_epochs)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    row = json.loads(output.split("RESULT ", 1)[1])
    print(json.dumps(row), flush=True)
    return row


def main():
    args = build_parser().parse_args()
    if args.one:
        kind, *rest = json.loads(args.one)
        row = speed(*rest, args) if kind == "speed" else accuracy(*rest, args)
        print("RESULT " + json.dumps(row))
        return

    import pandas as pd

    from transferkit.backbones import get_backbone_spec
    from transferkit.precision import resolve_precision

    rows = [_run(args, "speed", b, p) for b in args.backbones for p in PRECISIONS]
    table = pd.DataFrame(rows).pivot(
        index="backbone", columns="precision", values=["extract_img_s", "unfrozen_img_s"]
    )
    summary = pd.DataFrame(index=table.index)
    for what in ("extract_img_s", "unfrozen_img_s"):
        for precision in PRECISIONS:
            summary[f"{what[:-6]} {precision}"] = table[(what, precision)]
        summary[f"{what[:-6]} speedup"] = (
            table[(what, "mixed_bfloat16")] / table[(what, "float32")]
        )
    summary["family"] = [get_backbone_spec(name).family for name in summary.index]
    summary["auto picks"] = [resolve_precision("auto", f)[0] for f in summary["family"]]
    print(
        f"\nimages/s, {args.image_size}px, batch {args.batch_size}, 2 CPU cores: feature "
        f"extraction over {args.extract_images} images, unfrozen epoch over "
        f"{args.train_images} images (second epoch)"
    )
    print(summary.round(2).to_string())

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


if __name__ == "__main__":
    main()

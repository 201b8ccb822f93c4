"""Every export format and quantization of a saved model, measured against the Keras model.

Exports MODEL (a `.keras` file written by `FineTuner.save` or `transferkit fit`) to a
SavedModel, LiteRT in float32, float16, dynamic range and full integer (calibrated on
images drawn from CIFAR-10's training split), and ONNX, then runs each in its own
runtime on CIFAR-10's held-out cat and dog test images (offline, as the reference
example fetches them) and prints, per format: file size, held-out accuracy, agreement
with the Keras model, largest probability difference, latency per image at batch 1
(median of single-image calls; for Keras, `predict_on_batch`, its cheapest call) and
throughput at batch 32, all in one run on this machine. Then it checks the goals:

- every float32 export agrees with the Keras model on >= 99.9% of the test images, with a
  largest probability difference <= 1e-4; a float16 one agrees on >= 99.9% with a mean
  probability difference <= 1e-3 (the parity check's rule, `transferkit.export.parity`);
- the full-integer LiteRT file is <= 30% of the float32 one and loses <= 1 point of
  held-out accuracy;
- the LiteRT and ONNX Runtime float32 latencies at batch 1 are at most Keras's.

    python -m bench.export runs/cats_vs_dogs/model.keras [--test-images 2000]
    python -m bench.export model.keras --synthetic 16   # a dry run on random images

The model's classes must be CIFAR-10's `cat` and `dog` (unless `--synthetic`).
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from transferkit.defaults import FLOAT16_AGREEMENT, TOLERANCES

# (row name, format, quantize, file name)
EXPORTS = [
    ("saved_model", "saved_model", None, "saved_model"),
    ("litert", "litert", None, "float32.tflite"),
    ("litert float16", "litert", "float16", "float16.tflite"),
    ("litert dynamic_range", "litert", "dynamic_range", "dynamic_range.tflite"),
    ("litert full_integer", "litert", "full_integer", "full_integer.tflite"),
    ("onnx", "onnx", None, "model.onnx"),
]


def throughput(predict, images: np.ndarray, batch_size: int = 32) -> float:
    """Images per second through `predict` in batches of `batch_size` (after one warm-up)."""
    batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    batches = [batch for batch in batches if len(batch) == batch_size] or batches
    predict(batches[0])
    started = time.perf_counter()
    for batch in batches:
        predict(batch)
    return sum(len(batch) for batch in batches) / (time.perf_counter() - started)


def data(args, class_names):
    """`(representative, test_images, test_labels)`: CIFAR-10 cats and dogs, or random images."""
    if args.synthetic:
        rng = np.random.default_rng(0)
        images = rng.uniform(0, 255, (2 * args.synthetic, 32, 32, 3)).astype("uint8")
        labels = np.array(class_names)[rng.integers(0, len(class_names), len(images))]
        return images[: args.synthetic], images[args.synthetic :], labels[args.synthetic :]
    from bench.common import cats_vs_dogs

    if sorted(class_names) != ["cat", "dog"]:
        raise SystemExit(
            f"The model predicts {class_names}, not CIFAR-10's cat and dog: pass a model "
            "trained on them (python examples/cats_vs_dogs/train.py), or --synthetic N."
        )
    train, _, test, test_labels = cats_vs_dogs(args.representative_images, args.test_images)
    return train, test, test_labels


def float16_weights_in_keras(model, images: np.ndarray) -> tuple[float, float]:
    """How far float16 weights alone move the Keras model: `(max_abs_diff, agreement)`.

    Rounds every weight of the Keras model to float16 (and back), computes in
    float32 as before, and compares its probabilities with the original's: the
    part of a float16 export's difference that comes from the format itself, with
    no converter or runtime involved. The model's weights are restored afterwards.
    """
    before = model.predict(images, verbose=0)
    saved = [variable.numpy() for variable in model.weights]
    try:
        for variable, value in zip(model.weights, saved, strict=True):
            if value.dtype == np.float32:
                variable.assign(value.astype(np.float16).astype(np.float32))
        after = model.predict(images, verbose=0)
    finally:
        for variable, value in zip(model.weights, saved, strict=True):
            variable.assign(value)
    if before.shape[-1] == 1:  # one sigmoid: the class probabilities are p and 1 - p
        before, after = (
            np.concatenate([1 - before, before], -1),
            np.concatenate([1 - after, after], -1),
        )
    agreement = float(np.mean(before.argmax(-1) == after.argmax(-1)))
    return float(np.abs(after - before).max()), agreement


def goals(table: pd.DataFrame) -> list[str]:
    """One line per goal, PASS or FAIL, from the measured table."""
    lines = []
    for name, row in table.iterrows():
        # The table shows "-" (or NaN) where an export has no quantization: float32.
        quantization = row["quantization"]
        if not isinstance(quantization, str) or quantization == "-":
            quantization = None
        if name == "keras" or quantization in ("dynamic_range", "full_integer"):
            continue
        limit = TOLERANCES[quantization]
        if quantization == "float16":
            ok = row["agreement"] >= FLOAT16_AGREEMENT and row["mean_abs_diff"] <= limit
            judged = f"mean difference {row['mean_abs_diff']:.2g} (<= {limit:g})"
        else:
            ok = row["agreement"] >= FLOAT16_AGREEMENT and row["max_abs_diff"] <= limit
            judged = f"max difference {row['max_abs_diff']:.2g} (<= {limit:g})"
        lines.append(
            f"{'PASS' if ok else 'FAIL'} {name}: agreement {row['agreement']:.4f} "
            f"(>= {FLOAT16_AGREEMENT:g}), {judged}"
        )
    if {"litert", "litert full_integer"} <= set(table.index):
        size = table.loc["litert full_integer", "file_mb"] / table.loc["litert", "file_mb"]
        loss = table.loc["keras", "accuracy"] - table.loc["litert full_integer", "accuracy"]
        lines.append(
            f"{'PASS' if size <= 0.30 else 'FAIL'} litert full_integer size: {size:.0%} of "
            "float32 (<= 30%)"
        )
        lines.append(
            f"{'PASS' if loss <= 0.01 else 'FAIL'} litert full_integer accuracy: "
            f"{100 * loss:+.2f} points lost (<= 1)"
        )
    keras_latency = table.loc["keras", "latency_ms"]
    for name in ("litert", "onnx"):
        if name in table.index:
            latency = table.loc[name, "latency_ms"]
            lines.append(
                f"{'PASS' if latency <= keras_latency else 'FAIL'} {name} latency "
                f"{latency:.2f} ms <= Keras predict_on_batch {keras_latency:.2f} ms"
            )
    return lines


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line (building it runs nothing)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a .keras file written by FineTuner.save or `fit`")
    parser.add_argument("--test-images", type=int, default=2000, help="(default: 2000)")
    parser.add_argument(
        "--representative-images",
        type=int,
        default=1000,
        help="CIFAR-10 training images to draw the full-integer calibration from (default: 1000)",
    )
    parser.add_argument(
        "--latency-calls", type=int, default=200, help="single-image calls timed (default: 200)"
    )
    parser.add_argument("--out", help="keep the exports in this folder (default: a temporary one)")
    parser.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="N",
        help="a dry run: N random images for calibration and N for the test, no CIFAR-10",
    )
    return parser


def main():
    args = build_parser().parse_args()

    import transferkit as tk
    from transferkit.export.parity import check_images, format_table, parity_table

    finetuner = tk.load(args.model)
    model = finetuner.model
    representative, test_images, test_labels = data(args, finetuner.class_names)
    images, labels = check_images(model, (test_images, test_labels))
    print(
        f"{args.model}: {finetuner.backbone_name} at {model.image_size[0]}x"
        f"{model.image_size[1]}, classes {finetuner.class_names}; {len(images)} test images"
        f"{' (synthetic)' if args.synthetic else ' (CIFAR-10 held-out)'}",
        flush=True,
    )

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.out or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        exported, seconds = [], {}
        for name, format, quantize, file_name in EXPORTS:
            started = time.perf_counter()
            finetuner.export(
                folder / file_name,
                format,
                quantize=quantize,
                representative_data=representative if quantize == "full_integer" else None,
                overwrite=True,
            )
            seconds[name] = time.perf_counter() - started
            exported.append(tk.export.load_exported(folder / file_name))
            print(f"exported {name} in {seconds[name]:.0f} s", flush=True)

        table = parity_table(
            model,
            exported,
            images,
            labels,
            raise_on_failure=False,
            latency_calls=args.latency_calls,
        )
        table["throughput_32"] = [
            throughput(model.predict_on_batch, images),
            *(throughput(each.predict, images) for each in exported),
        ]
        table["export_s"] = [np.nan, *seconds.values()]

    floor_diff, floor_agreement = float16_weights_in_keras(model, images)
    columns = [
        "file_mb",
        "accuracy",
        "agreement",
        "max_abs_diff",
        "float16_weights_max_abs_diff",
        "mean_abs_diff",
        "latency_ms",
        "throughput_32",
    ]
    print()
    print(format_table(table[["format", "quantization", *columns, "export_s"]]))
    print()
    print("\n".join(goals(table)))
    print(
        f"\nfloat16 weights in Keras itself (no converter, float32 compute): largest "
        f"probability difference {floor_diff:.3g}, agreement {100 * floor_agreement:.2f}%"
    )
    print(
        f"\nlatency: median of {args.latency_calls} single-image calls; throughput_32: "
        "images/s in batches of 32 over the test images; one run, on this machine."
    )

    from bench.common import bench_command, write_results

    rows = table.drop(columns=["within_tolerance"]).astype(object)
    figures = {
        name: {key: value for key, value in row.items() if not pd.isna(value)}
        for name, row in rows.iterrows()
    }
    figures["float16_weights_in_keras"] = {
        "max_abs_diff": floor_diff,
        "agreement": floor_agreement,
    }
    if args.synthetic:  # a dry run is not a result
        return
    write_results(
        "export",
        figures,
        bench_command("bench.export"),
        setup={
            "test_images": len(images),
            "latency_calls": args.latency_calls,
            "model": args.model,
            "cores": 2,
        },
    )


if __name__ == "__main__":
    main()

"""What test-time augmentation, temperature scaling and Grad-CAM give and cost on a trained model.

On the reference example's model (`python examples/cats_vs_dogs/train.py` writes
runs/cats_vs_dogs/model.keras) and CIFAR-10's 2,000 held-out cat and dog photos:

- accuracy without and with test-time augmentation (the default views, image and
  mirror; and with the zooms too), and the extra seconds each costs;
- expected calibration error on the test images before and after temperature
  scaling, fitted on the model's own validation split of its training images
  (the split `fit` held out: same images, same seed);
- seconds for the Grad-CAM of 100 test images (one `explain` call, tracing included).

    python -m bench.interpret --model runs/cats_vs_dogs/model.keras
    python -m bench.interpret --model M.keras --train-images 10000 --seed 0   # the example's

`--train-images` and `--seed` must be those the model was trained with, or the
validation split is not the one it held out (the script cannot tell).
"""

import argparse
import json

import numpy as np
import pandas as pd

import transferkit as tk
from bench.common import Timer
from transferkit.demos.cats_vs_dogs import load_data
from transferkit.interpret import TTA_VIEWS

# The views compared: none, the default (image and mirror), and all four.
TTA_SETTINGS = {"none": False, "flip (default)": True, "flip and zoom": list(TTA_VIEWS)}


def measure(
    ft: tk.FineTuner,
    validation,
    test_images,
    test_labels,
    gradcam_images: int = 100,
    batch_size: int = 32,
) -> dict:
    """Runs every measurement on a FineTuner; the model is left calibrated.

    Args:
        ft: `FineTuner`. The trained model (its calibration is replaced).
        validation: Labelled held-out data to fit the temperature on.
        test_images, test_labels: The images measured on, and their labels.
        gradcam_images: int. Images in the Grad-CAM timing. Defaults to `100`.
        batch_size: int. Defaults to `32`.

    Returns:
        A dict: `tta` (one row per setting: accuracy, its gain, seconds, extra
        seconds), `calibration` (the expected calibration error and loss on the
        test images before and after, and the temperature) and `gradcam`
        (images, seconds).
    """
    # Tracing Keras's predict step is paid once here, not by the first row.
    ft.evaluate(test_images[:batch_size], test_labels[:batch_size], batch_size=batch_size)

    rows = []
    for name, tta in TTA_SETTINGS.items():
        with Timer() as timer:
            report = ft.evaluate(test_images, test_labels, batch_size=batch_size, tta=tta)
        rows.append(
            {
                "tta": name,
                "accuracy": report["accuracy"],
                "loss": report["loss"],
                "seconds": timer.seconds,
            }
        )
        if tta is False:
            plain = report
    table = pd.DataFrame(rows)
    table["accuracy_gain"] = table["accuracy"] - table["accuracy"].iloc[0]
    table["extra_seconds"] = table["seconds"] - table["seconds"].iloc[0]

    with Timer() as timer:
        result = ft.calibrate(validation, batch_size=batch_size)
    calibrated = ft.evaluate(test_images, test_labels, batch_size=batch_size)
    before = plain["expected_calibration_error"]
    after = calibrated["expected_calibration_error"]
    calibration = {
        "temperature": result.temperature,
        "validation_images": result.num_images,
        "fit_seconds": timer.seconds,
        "test_ece_before": before,
        "test_ece_after": after,
        "ece_ratio": after / before if before > 0 else float("nan"),
        "test_loss_before": plain["loss"],
        "test_loss_after": calibrated["loss"],
        "validation_ece_before": result.expected_calibration_error_before,
        "validation_ece_after": result.expected_calibration_error_after,
        "accuracy_unchanged": calibrated["accuracy"] == plain["accuracy"],
    }

    count = min(gradcam_images, len(test_images))
    with Timer() as timer:
        explanation = ft.explain(test_images[:count], batch_size=batch_size)
    gradcam = {
        "images": count,
        "seconds": timer.seconds,
        "layer": explanation.layer,
        "finite": bool(np.isfinite(explanation.heatmaps).all()),
    }
    return {"tta": table, "calibration": calibration, "gradcam": gradcam}


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line (building it runs nothing)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model.keras of the reference example")
    parser.add_argument(
        "--train-images", type=int, default=10000, help="as the model was trained (10000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="as the model was trained (0)")
    parser.add_argument("--test-images", type=int, default=None, help="default: all 2,000")
    parser.add_argument("--gradcam-images", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    return parser


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)

    ft = tk.load(args.model)
    train, test = load_data("cifar10", train_images=args.train_images, seed=args.seed)
    _, validation = ft.split(train.data, train.labels)
    if validation is None:
        raise SystemExit("The model was trained without a validation split: nothing to fit on.")
    images, labels = test.data, test.labels
    if args.test_images is not None:
        images, labels = images[: args.test_images], labels[: args.test_images]
    print(
        f"{args.model}: {ft.backbone_name} at {ft.image_size[0]} px; temperature fitted on "
        f"{len(validation)} validation images, measured on {len(labels)} test images"
    )
    figures = measure(ft, validation, images, labels, args.gradcam_images, args.batch_size)

    print("\nTest-time augmentation (test images):")
    print(figures["tta"].round(4).to_string(index=False))
    calibration = figures["calibration"]
    print(
        f"\nTemperature scaling: T = {calibration['temperature']:.3f}; expected calibration "
        f"error on the test images {calibration['test_ece_before']:.4f} -> "
        f"{calibration['test_ece_after']:.4f} (x{calibration['ece_ratio']:.2f}); loss "
        f"{calibration['test_loss_before']:.4f} -> {calibration['test_loss_after']:.4f}"
    )
    gradcam = figures["gradcam"]
    print(
        f"\nGrad-CAM of {gradcam['images']} images: {gradcam['seconds']:.1f} s "
        f"(layer {gradcam['layer']})"
    )
    from bench.common import bench_command, write_results

    data = {**figures, "tta": figures["tta"].to_dict(orient="records")}
    write_results("interpret", data, bench_command("bench.interpret", argv), setup=vars(args))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(data, file, indent=2, default=float)
    return figures


if __name__ == "__main__":
    main()

"""`transferkit predict`: the class of each image, by a saved model."""

import argparse
import sys

from transferkit import defaults
from transferkit.cli.parsing import add_command, add_defaulted, check_int

DESCRIPTION = """\
Predict the class of images with a saved model. IMAGES are image files and/or folders
(searched recursively). Prints path, label and probability for each image, or with --csv
writes them, plus one prob_<class> column per class. A multi-label model gives the set
of classes of each image (labels) and then each class's decision threshold. Files that
are not usable images are left out and reported on stderr."""

EXAMPLE = """\
transferkit predict runs/cats/model.keras cat.jpg dog.jpg
transferkit predict runs/cats/model.keras photos/ --csv predictions.csv"""


def add_parser(subparsers, parents: list) -> argparse.ArgumentParser:
    """Adds the `predict` command to the `transferkit` parser."""
    parser = add_command(
        subparsers,
        "predict",
        parents,
        summary="predict the class of images with a saved model",
        description=DESCRIPTION,
        example=EXAMPLE,
    )
    parser.add_argument("model", metavar="MODEL", help="a model.keras written by fit")
    parser.add_argument("images", metavar="IMAGES", nargs="+", help="image files and folders")
    parser.add_argument("--csv", metavar="FILE", help="write the predictions to this CSV file")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the --csv FILE if it exists"
    )
    add_defaulted(parser, "--batch-size", defaults.BATCH_SIZE, type=int, metavar="N")
    parser.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average the model over each image and its mirror "
        "(twice the time)",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Carries out `transferkit predict` (see the command's `--help`)."""
    from transferkit.cli.inputs import check_image_arguments, check_model_path
    from transferkit.cli.outputs import check_output_file

    check_int(args.batch_size, "--batch-size")
    if args.csv is not None:
        check_output_file(args.csv, args.overwrite, "--csv")
    check_model_path(args.model)
    check_image_arguments(args.images)

    from transferkit.cli.runtime import import_tensorflow

    import_tensorflow()
    from transferkit.cli.inputs import image_paths, load_model
    from transferkit.cli.runtime import deferred_warnings
    from transferkit.data import as_image_source

    finetuner = load_model(args.model)
    with deferred_warnings():
        source = as_image_source(image_paths(args.images), require_labels=False)
    predictions = finetuner.predict(source, batch_size=args.batch_size, tta=args.tta)
    if "labels" in predictions:
        # Multi-label: the set of classes, joined as the training labels were (or by "|").
        delimiter = finetuner.label_delimiter or "|"
        predictions["labels"] = [delimiter.join(names) for names in predictions["labels"]]
    if args.csv is None:
        if "labels" in predictions:
            print(predictions.to_string(index=False, float_format="{:.4f}".format))
            print(thresholds_line(finetuner))
            return 0
        table = predictions[["path", "label", "probability"]]
        print(table.to_string(index=False, formatters={"probability": "{:.4f}".format}))
        return 0

    from transferkit.cli.outputs import write_csv

    write_csv(predictions, args.csv, args.overwrite)
    count = len(source.skipped)
    skipped = f" ({count} file{'s' if count > 1 else ''} skipped)" if count else ""
    print(f"Wrote {len(predictions)} predictions to {args.csv}{skipped}", file=sys.stderr)
    if "labels" in predictions:
        print(thresholds_line(finetuner), file=sys.stderr)
    return 0


def thresholds_line(finetuner) -> str:
    """A multi-label model's decision threshold per class, the rule `labels` follows."""
    head = finetuner.model.head
    if head.thresholds is None:
        return (
            "Thresholds: 0.5 for every class (none chosen): labels are the classes whose "
            "probability reaches it."
        )
    shown = ", ".join(
        f"{name} {value:.3f}"
        for name, value in zip(finetuner.class_names, head.thresholds, strict=True)
    )
    return (
        f"Thresholds per class (chosen on validation images by fit): {shown}; labels are "
        "the classes whose probability reaches its threshold."
    )

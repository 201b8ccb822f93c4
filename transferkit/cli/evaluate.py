"""`transferkit evaluate`: measures a saved model on labelled images."""

import argparse
import json
import os
import sys

from transferkit import defaults
from transferkit.cli.parsing import add_column_options, add_command, add_defaulted, check_int

OUTPUTS = (
    "metrics.json",
    "confusion_matrix.csv",
    "predictions.csv",
    "skipped.csv",
    "confusion_matrix.png",
    "predictions.png",
)

DESCRIPTION = """\
Evaluate a saved model on labelled images: print the accuracy, loss, per-class
precision, recall and F1, and the confusion matrix. DATA is a folder with one sub-folder
per class or a CSV file with a path and a label column, as for `transferkit fit`.
With --out, also write metrics.json, confusion_matrix.csv, predictions.csv (with
true_label), skipped.csv (if files were left out), confusion_matrix.png and
predictions.png (wrong predictions first)."""

EXAMPLE = """\
transferkit evaluate runs/cats/model.keras data/test
transferkit evaluate runs/cats/model.keras test.csv --json > metrics.json"""


def add_parser(subparsers, parents: list) -> argparse.ArgumentParser:
    """Adds the `evaluate` command to the `transferkit` parser."""
    parser = add_command(
        subparsers,
        "evaluate",
        parents,
        summary="measure a saved model on labelled images",
        description=DESCRIPTION,
        example=EXAMPLE,
    )
    parser.add_argument("model", metavar="MODEL", help="a model.keras written by fit")
    parser.add_argument("data", metavar="DATA", help="labelled images: a folder or a CSV file")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the metrics, per_class and confusion_matrix as JSON instead of tables",
    )
    parser.add_argument("--out", metavar="DIR", help="also write the files listed above into DIR")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty --out DIR, replacing only the files listed above",
    )
    add_defaulted(parser, "--batch-size", defaults.BATCH_SIZE, type=int, metavar="N")
    parser.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average the model over each image and its mirror "
        "(twice the time)",
    )
    add_column_options(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Carries out `transferkit evaluate` (see the command's `--help`)."""
    from transferkit.cli.inputs import check_data_path, check_model_path
    from transferkit.cli.outputs import check_output_folder

    check_int(args.batch_size, "--batch-size")
    out = None
    if args.out is not None:
        out = check_output_folder(args.out, OUTPUTS, args.overwrite, "--out")
    check_model_path(args.model)
    check_data_path(args.data)

    from transferkit.cli.runtime import import_tensorflow

    import_tensorflow()
    from transferkit.cli.inputs import load_model, read_labelled
    from transferkit.cli.outputs import format_report, report_dict
    from transferkit.cli.runtime import deferred_warnings

    finetuner = load_model(args.model)
    with deferred_warnings():
        source = read_labelled(
            args.data,
            args.path_column,
            args.label_column,
            class_names=finetuner.class_names,
            multi_label=finetuner.is_multi_label,
            label_delimiter=args.label_delimiter or finetuner.label_delimiter,
        )
    report = finetuner.evaluate(source, batch_size=args.batch_size, tta=args.tta)
    if args.json:
        print(json.dumps(report_dict(report, with_confusion=True), indent=2))
    else:
        print(f"{args.model} on {args.data}:")
        print(format_report(report))
    if out is not None:
        from transferkit.cli.outputs import naming_errors

        with naming_errors(out):
            _write(out, args.overwrite, report, source.skipped)
    return 0


def _write(out, overwrite, report, skipped) -> None:
    from transferkit.cli.outputs import flat_predictions, report_dict, write_csv, write_json
    from transferkit.plots import plot_confusion_matrix, plot_predictions

    out.mkdir(parents=True, exist_ok=True)
    write_json(report_dict(report), out / "metrics.json", overwrite)
    write_csv(report.confusion_matrix, out / "confusion_matrix.csv", overwrite, index=True)
    write_csv(flat_predictions(report.predictions), out / "predictions.csv", overwrite)
    if len(skipped):
        write_csv(skipped, out / "skipped.csv", overwrite)
    elif (out / "skipped.csv").exists():
        (out / "skipped.csv").unlink()  # from an earlier evaluation (only with --overwrite)
    if not report.multi_label:
        plot_confusion_matrix(report.confusion_matrix, out / "confusion_matrix.png")
        plot_predictions(None, report.predictions, out / "predictions.png")
    written = [name for name in OUTPUTS if name != "skipped.csv" or len(skipped)]
    # stderr: with --json, stdout holds the JSON and nothing else.
    print(f"Wrote {out}{os.sep}: {', '.join(written)}", file=sys.stderr)

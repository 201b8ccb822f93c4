"""`transferkit export`: a saved model as a SavedModel, LiteRT or ONNX file, parity checked."""

import argparse
import os
import sys

from transferkit import defaults
from transferkit.cli.parsing import (
    add_column_options,
    add_command,
    add_defaulted,
    check_int,
    check_positive,
)

_FLOAT32, _FLOAT16 = defaults.TOLERANCES[None], defaults.TOLERANCES["float16"]
_AGREEMENT = defaults.FLOAT16_AGREEMENT

DESCRIPTION = f"""\
Export a saved model to where models run. OUT is a folder for saved_model (TensorFlow
Serving: signatures serving_default on float images and serving_bytes on encoded
JPEG/PNG files), a .tflite file for litert (with OUT.json beside it: the class names),
or an .onnx file for onnx (ONNX Runtime). Every export takes raw RGB images (0-255, any
size), carries its preprocessing and class names, and returns one probability per
class. onnx needs the export extra, which also brings the LiteRT runtime:
pip install "transferkit[export]".

--quantize (litert only): float16, dynamic_range (int8 weights), or full_integer (int8
throughout, uint8 pixels in), calibrated on {defaults.REPRESENTATIVE_IMAGES} images drawn \
from --representative
DATA, the training images.

--check DATA runs the export in its own runtime on those images and prints a table
against the Keras model: max_abs_diff (largest probability difference), agreement
(share of images given the same class), accuracy (when DATA is labelled), file_mb,
latency_ms (one image at a time). A float32 export whose probabilities differ by more
than {_FLOAT32:g} (or --tolerance) fails and is not written; a float16 export fails when
fewer than {_AGREEMENT:.1%} of the images get the same class, or its mean probability
difference is above {_FLOAT16:g} (or --tolerance). DATA is a folder or a CSV file; a
folder of class sub-folders is read as evaluate reads it (a sub-folder that is not a
class of the model is an error), a folder with images directly in it has no labels
(accuracy -)."""

EXAMPLE = """\
transferkit export runs/cats/model.keras exported/cats --check data/test
transferkit export runs/cats/model.keras cats.tflite --format litert --quantize float16
transferkit export runs/cats/model.keras cats.onnx --format onnx --check data/test"""


def add_parser(subparsers, parents: list) -> argparse.ArgumentParser:
    """Adds the `export` command to the `transferkit` parser."""
    parser = add_command(
        subparsers,
        "export",
        parents,
        summary="export a saved model to SavedModel, LiteRT or ONNX, parity checked",
        description=DESCRIPTION,
        example=EXAMPLE,
    )
    parser.add_argument("model", metavar="MODEL", help="a model.keras written by fit")
    parser.add_argument(
        "out", metavar="OUT", help="the SavedModel folder, .tflite or .onnx file to write"
    )
    parser.add_argument(
        "--format",
        choices=defaults.EXPORT_FORMATS,
        default=defaults.EXPORT_FORMAT,
        help=f"(default: {defaults.EXPORT_FORMAT})",
    )
    parser.add_argument(
        "--quantize", choices=defaults.QUANTIZATIONS, help="litert only (default: float32)"
    )
    parser.add_argument(
        "--representative",
        metavar="DATA",
        help="training images to calibrate --quantize full_integer",
    )
    parser.add_argument("--check", metavar="DATA", help="images to run the export on and compare")
    parser.add_argument(
        "--tolerance",
        type=float,
        metavar="X",
        help="largest probability difference --check accepts (float16: largest mean one)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_defaulted(parser, "--batch-size", defaults.BATCH_SIZE, type=int, metavar="N")
    add_column_options(parser)
    parser.set_defaults(run=run)
    return parser


def _check_options(args) -> None:
    """Fails fast on options that do not go together (each would be ignored or missing)."""
    if args.quantize is not None and args.format != "litert":
        raise ValueError(
            f"--quantize applies to --format litert only. Received: --format {args.format} "
            f"--quantize {args.quantize}"
        )
    if args.quantize == "full_integer" and args.representative is None:
        raise ValueError(
            "--quantize full_integer calibrates on training images: pass --representative "
            "DATA (a folder or CSV of training images)."
        )
    if args.representative is not None and args.quantize != "full_integer":
        raise ValueError("--representative is used by --quantize full_integer only.")
    if args.tolerance is not None:
        if args.check is None:
            raise ValueError("--tolerance applies to --check: pass --check DATA too.")
        check_positive(args.tolerance, "--tolerance")


def _check_out(out: str, format: str, overwrite: bool) -> None:
    """Refuses to replace an existing export (and, for LiteRT, its JSON file) unasked.

    Also checks, before any work, that OUT's folder can be written: an export is
    written beside its destination and renamed onto it.
    """
    from pathlib import Path

    from transferkit.cli.outputs import check_writable_folder

    targets = [out, f"{out}.json"] if format == "litert" else [out]
    for target in targets:
        if os.path.exists(os.path.expanduser(target)) and not overwrite:
            raise FileExistsError(
                f"{target!r} already exists. Pass --overwrite to replace it, or choose "
                "another OUT."
            )
    check_writable_folder(Path(out).expanduser().parent, f"OUT {out!r}")


def _check_data(data: str | None, flag: str) -> None:
    if data is None:
        return
    from transferkit.cli.inputs import check_data_path

    check_data_path(data, flag)


def _read_images(data: str, args, class_names=None, multi_label=None):
    """A folder (class sub-folders optional) or a CSV file, as an `ImageSource`.

    A folder whose images all sit in sub-folders is read as `evaluate` reads it,
    one class per sub-folder, so a sub-folder the model has no class for is an
    error rather than a check whose accuracy silently goes missing. A folder with
    images directly in it has no labels: the check compares the probabilities
    alone, and says so.
    """
    from transferkit.cli.inputs import read_labelled
    from transferkit.data import as_image_source

    path = os.path.expanduser(data)
    if os.path.isdir(path):
        if class_names is not None and not _images_directly_in(path):
            return read_labelled(data, class_names=class_names, multi_label=multi_label or None)
        source = as_image_source(
            path, class_names=class_names, require_labels=False, multi_label=multi_label or None
        )
        if class_names is not None and source.labels is None:
            print(
                f"transferkit: {data} has images directly in it, so no labels: the check "
                "compares probabilities only (accuracy -). For accuracy, put each class's "
                "images in a sub-folder named after it.",
                file=sys.stderr,
            )
        return source
    return read_labelled(
        data,
        args.path_column,
        args.label_column,
        class_names=class_names,
        multi_label=multi_label if multi_label is not None else args.multi_label,
        label_delimiter=args.label_delimiter,
    )


def _images_directly_in(folder: str) -> bool:
    from transferkit.data.file_inputs import is_image_file

    return any(
        is_image_file(name) and os.path.isfile(os.path.join(folder, name))
        for name in os.listdir(folder)
    )


def run(args: argparse.Namespace) -> int:
    """Carries out `transferkit export` (see the command's `--help`)."""
    from transferkit.cli.inputs import check_model_path

    check_int(args.batch_size, "--batch-size")
    _check_options(args)
    check_model_path(args.model)
    _check_out(args.out, args.format, args.overwrite)
    _check_data(args.representative, "--representative")
    _check_data(args.check, "--check")

    from transferkit.cli.runtime import import_tensorflow

    import_tensorflow()
    from transferkit.cli.inputs import load_model
    from transferkit.cli.runtime import deferred_warnings
    from transferkit.export import ParityError
    from transferkit.export.parity import file_megabytes, format_table

    finetuner = load_model(args.model)
    representative = check = None
    with deferred_warnings():
        if args.representative is not None:
            representative = _read_images(args.representative, args)
        if args.check is not None:
            check = _read_images(
                args.check,
                args,
                class_names=finetuner.class_names,
                multi_label=finetuner.is_multi_label,
            )
    try:
        table = finetuner.export(
            args.out,
            args.format,
            quantize=args.quantize,
            representative_data=representative,
            check=check,
            tolerance=args.tolerance,
            overwrite=args.overwrite,
            batch_size=args.batch_size,
        )
    except ParityError as error:
        print(format_table(error.table))
        raise ValueError(
            "The export differs from the model beyond the tolerance (table above); it was "
            f"not written to {args.out}."
        ) from error
    if table is not None:
        print(format_table(table))
    kind = args.format + (f" ({args.quantize})" if args.quantize else "")
    print(f"Wrote {args.out}: {kind}, {file_megabytes(args.out):.1f} MB", file=sys.stderr)
    return 0

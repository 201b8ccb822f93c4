"""`transferkit fit`: fine-tunes a backbone on labelled images and writes a run folder."""

import argparse
import os
import sys

from transferkit import defaults
from transferkit.cli.parsing import (
    add_column_options,
    add_command,
    add_defaulted,
    add_training_options,
    check_int,
    check_positive,
    label_column_argument,
)

SCHEDULES = ("freeze_unfreeze", "freeze", "gradual_unfreeze", "no_freeze")
# Options that set one part of a schedule: (option, what it sets, the schedules that
# use it). Given with any other schedule it would be ignored, so it is an error.
SCHEDULE_OPTIONS = (
    (
        "--frozen-epochs",
        "the length of the frozen warm-up",
        ("freeze_unfreeze", "gradual_unfreeze"),
    ),
    (
        "--learning-rate",
        "the head's rate while the backbone is frozen",
        ("freeze_unfreeze", "freeze", "gradual_unfreeze"),
    ),
    (
        "--fine-tune-learning-rate",
        "the head's rate once the backbone trains",
        ("freeze_unfreeze", "gradual_unfreeze", "no_freeze"),
    ),
)
OUTPUTS = (
    "model.keras",
    "history.csv",
    "metrics.json",
    "confusion_matrix.csv",
    "predictions.csv",
    "skipped.csv",
    "history.png",
    "confusion_matrix.png",
    "predictions.png",
    # The run report and what it reads (transferkit.report.DETAIL_FILES), and the
    # TensorBoard logs (transferkit.report.LOG_FOLDER); named here so that checking
    # the output folder does not import TensorFlow.
    "run.json",
    "per_class.csv",
    "calibration.csv",
    "reliability.png",
    "top_losses.csv",
    "top_losses.png",
    "report.html",
    "logs",
)

DESCRIPTION = """\
Fine-tune a pretrained backbone into an image classifier, evaluate it on held-out images
and write the run folder:
  model.keras           the classifier (preprocessing and class names inside)
  history.csv           one row per epoch: epoch, phase, learning_rate, loss, accuracy,
                        val_loss, val_accuracy, seconds
  metrics.json          the evaluation on the validation images: loss, accuracy, macro
                        precision/recall/F1, num_images, and per_class
  confusion_matrix.csv  rows true classes, columns predicted classes
  predictions.csv       the validation images' predictions, with true_label
  skipped.csv           files left out as unusable (only if there were any)
  history.png, confusion_matrix.png, predictions.png
  run.json, per_class.csv, calibration.csv, reliability.png, top_losses.csv,
  top_losses.png        the settings and phases, and what the report shows
  report.html           the run report: one page, images inside (`transferkit report`)
  logs/                 TensorBoard logs of every phase: tensorboard --logdir RUN_DIR

DATA is a folder with one sub-folder per class (data/cat/*.jpg, data/dog/*.jpg) or a CSV
file with a path and a label column (relative paths are relative to the CSV's folder).
Multi-label data (several classes, or none, per image) is a CSV whose label column joins
the classes (--label-delimiter '|': cat|dog) or one 0/1 column per class (--label-column
cat,dog,bird); the model then has a sigmoid per class, each class's threshold is chosen on
the validation images, metrics.json holds micro/macro F1 and mean average precision, and
confusion_matrix.csv the true/false positives and negatives of each class.
For imbalanced classes, --class-weight balanced weighs each class by the inverse of its
share; watch balanced accuracy (and, for two classes, PR AUC) rather than accuracy.
Without --validation-data, a stratified --validation-split of DATA is held out."""

EXAMPLE = """\
transferkit fit data/train --out runs/cats --backbone mobilenet --epochs 5
transferkit fit labels.csv --out runs/cats --validation-data data/val --weights none"""


def add_parser(subparsers, parents: list) -> argparse.ArgumentParser:
    """Adds the `fit` command to the `transferkit` parser."""
    parser = add_command(
        subparsers,
        "fit",
        parents,
        summary="fine-tune a backbone on labelled images and write a run folder",
        description=DESCRIPTION,
        example=EXAMPLE,
    )
    parser.add_argument("data", metavar="DATA", help="training images: a folder or a CSV file")
    parser.add_argument(
        "--out",
        required=True,
        metavar="RUN_DIR",
        help="the run folder to write; it must be new or empty unless --overwrite",
    )
    add_defaulted(
        parser,
        "--backbone",
        defaults.BACKBONE,
        "a name from `transferkit backbones`",
        metavar="NAME",
    )
    parser.add_argument(
        "--weights",
        default=defaults.WEIGHTS,
        metavar="imagenet|none|PATH",
        help="the backbone's starting weights: Keras's ImageNet download, none (random), or "
        f"a weights file of the backbone without its top (default: {defaults.WEIGHTS})",
    )
    add_training_options(parser, "epochs of the whole run")
    parser.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="freeze_unfreeze",
        help="which part of the backbone trains when (default: freeze_unfreeze, a frozen "
        "warm-up of the head then the whole backbone)",
    )
    parser.add_argument(
        "--frozen-epochs",
        type=int,
        metavar="N",
        help="epochs of the frozen warm-up, for freeze_unfreeze and gradual_unfreeze "
        f"(default: {defaults.FROZEN_EPOCHS})",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        metavar="LR",
        help="peak learning rate of the head while the backbone is frozen "
        f"(default: {defaults.LEARNING_RATE:g})",
    )
    parser.add_argument(
        "--fine-tune-learning-rate",
        type=float,
        metavar="LR",
        help="peak learning rate of the head once the backbone trains; backbone blocks get "
        f"lower rates (default: {defaults.FINE_TUNE_LEARNING_RATE:g})",
    )
    parser.add_argument(
        "--input-size",
        type=int,
        metavar="N",
        help="the square size images are resized to (default: the backbone's, e.g. 224)",
    )
    add_defaulted(
        parser,
        "--precision",
        defaults.PRECISION,
        "what training computes in: auto picks bfloat16 or float16 where the hardware and "
        "the backbone gain from it; the saved model computes in float32 whatever this is",
        choices=defaults.PRECISIONS,
    )
    parser.add_argument(
        "--validation-data",
        metavar="DATA",
        help="held-out images (folder or CSV), instead of a split of DATA",
    )
    add_column_options(parser)
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the split, shuffling, augmentation and initialisation (default: 0)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty RUN_DIR, replacing only the files listed above",
    )
    parser.set_defaults(run=run)
    return parser


def _check_arguments(args) -> None:
    check_int(args.epochs, "--epochs")
    check_int(args.batch_size, "--batch-size")
    if args.frozen_epochs is not None:
        check_int(args.frozen_epochs, "--frozen-epochs", minimum=0)
    if args.learning_rate is not None:
        check_positive(args.learning_rate, "--learning-rate")
    if args.fine_tune_learning_rate is not None:
        check_positive(args.fine_tune_learning_rate, "--fine-tune-learning-rate")
    for option, sets, schedules in SCHEDULE_OPTIONS:
        if (
            getattr(args, option[2:].replace("-", "_")) is not None
            and args.schedule not in schedules
        ):
            raise ValueError(
                f"{option} sets {sets}, which --schedule {args.schedule} does not have "
                f"({option} is for {', '.join(schedules)}). Drop {option} or change --schedule."
            )
    if args.input_size is not None:
        check_int(args.input_size, "--input-size", minimum=1)
    if args.validation_data is None and not 0 < args.validation_split < 1:
        raise ValueError(
            "--validation-split must be a fraction strictly between 0 and 1, e.g. 0.2. "
            f"Received: --validation-split {args.validation_split}. To train on every image "
            "of DATA, pass the held-out images with --validation-data."
        )


def _schedule(args):
    from transferkit import schedules

    options = {}
    if args.learning_rate is not None:
        options["learning_rate"] = args.learning_rate
    if args.fine_tune_learning_rate is not None:
        options["fine_tune_learning_rate"] = args.fine_tune_learning_rate
    if args.frozen_epochs is not None:
        options["frozen_epochs"] = args.frozen_epochs
    return schedules.ALIASES[args.schedule](**options)


def run(args: argparse.Namespace) -> int:
    """Carries out `transferkit fit` (see the command's `--help`)."""
    from transferkit.cli.inputs import check_backbone, check_data_path, weights_argument
    from transferkit.cli.outputs import check_output_folder

    # Everything that can be checked without TensorFlow is, so mistakes fail in a blink.
    _check_arguments(args)
    out = check_output_folder(args.out, OUTPUTS, args.overwrite, "--out")
    check_data_path(args.data)
    if args.validation_data is not None:
        check_data_path(args.validation_data, "--validation-data")
    weights = weights_argument(args.weights)

    from transferkit.cli.runtime import import_tensorflow

    import_tensorflow()
    check_backbone(args.backbone)
    from transferkit.finetuner import FineTuner

    # Every setting the command line chose is the FineTuner's, so it travels in model.keras.
    finetuner = FineTuner(
        args.backbone,
        weights=weights,
        input_shape=args.input_size,
        schedule=_schedule(args),
        validation_split=args.validation_split,
        path_column=args.path_column,
        label_column=label_column_argument(args.label_column),
        multi_label=args.multi_label,
        label_delimiter=args.label_delimiter,
        precision=args.precision,
        seed=args.seed,
    )
    train, validation, skipped = _read_data(args)
    print(
        f"Fine-tuning {finetuner.backbone_name} (weights: {args.weights}) on {len(train)} "
        f"images of {len(train.class_names)} classes {train.class_names}; validating on "
        f"{len(validation)} images."
    )
    new_folder = not out.exists()
    try:
        history = finetuner.fit(
            train,
            validation_data=validation,
            epochs=args.epochs,
            batch_size=args.batch_size,
            callbacks=_tensorboard(out, finetuner, args.epochs),
            class_weight=args.class_weight,
            # Progress bars on a terminal; one line per epoch in a log file or a pipe.
            verbose=1 if sys.stdout.isatty() else 2,
        )
    except BaseException:
        _remove_logs(out, new_folder)
        raise
    report = finetuner.evaluate(validation, batch_size=args.batch_size)
    _write_run(out, args.overwrite, finetuner, history, report, skipped)
    _write_report(out, finetuner, report, args)
    metrics = report.metrics
    if report.multi_label:
        print(
            f"Validation macro F1 {metrics['macro_f1']:.4f}, micro F1 {metrics['micro_f1']:.4f}, "
            f"mean average precision {metrics['mean_average_precision']:.4f} on "
            f"{metrics['num_images']} images."
        )
    else:
        print(
            f"Validation accuracy {metrics['accuracy']:.4f}, balanced accuracy "
            f"{metrics['balanced_accuracy']:.4f}, loss {metrics['loss']:.4f} on "
            f"{metrics['num_images']} images."
        )
    print(f"Wrote {out}{os.sep}: {', '.join(_written(out, skipped))}")
    return 0


def _read_data(args):
    import pandas as pd

    from transferkit.cli.inputs import read_labelled
    from transferkit.cli.runtime import deferred_warnings
    from transferkit.data import stratified_split

    with deferred_warnings():
        source = read_labelled(
            args.data,
            args.path_column,
            args.label_column,
            multi_label=args.multi_label,
            label_delimiter=args.label_delimiter,
        )
    if len(source.class_names) < 2:
        raise ValueError(
            f"Training needs at least 2 classes; {args.data!r} has {source.class_names}."
        )
    if args.validation_data is None:
        # The split FineTuner.fit would make itself (stratified, same seed); made here
        # so the run can be evaluated on exactly the images it held out.
        train, validation = stratified_split(source, args.validation_split, seed=args.seed)
        return train, validation, source.skipped
    with deferred_warnings():
        validation = read_labelled(
            args.validation_data,
            args.path_column,
            args.label_column,
            class_names=source.class_names,
            multi_label=source.multi_label,
            label_delimiter=args.label_delimiter,
        )
    skipped = pd.concat([source.skipped, validation.skipped], ignore_index=True)
    return source, validation, skipped


def _write_run(out, overwrite, finetuner, history, report, skipped) -> None:
    from transferkit.cli.outputs import naming_errors

    with naming_errors(out):
        _write_files(out, overwrite, finetuner, history, report, skipped)


def _write_files(out, overwrite, finetuner, history, report, skipped) -> None:
    from transferkit.cli.outputs import flat_predictions, report_dict, write_csv, write_json
    from transferkit.plots import plot_confusion_matrix, plot_history, plot_predictions

    out.mkdir(parents=True, exist_ok=True)
    finetuner.save(out / "model.keras", overwrite=overwrite)
    write_csv(history, out / "history.csv", overwrite)
    write_json(report_dict(report), out / "metrics.json", overwrite)
    write_csv(report.confusion_matrix, out / "confusion_matrix.csv", overwrite, index=True)
    write_csv(flat_predictions(report.predictions), out / "predictions.csv", overwrite)
    if len(skipped):
        write_csv(skipped, out / "skipped.csv", overwrite)
    elif (out / "skipped.csv").exists():
        # Left from an earlier run in this folder (only --overwrite gets here), it would
        # list files this run did use.
        (out / "skipped.csv").unlink()
    plot_history(history, out / "history.png")
    if not report.multi_label:
        plot_confusion_matrix(report.confusion_matrix, out / "confusion_matrix.png")
        plot_predictions(None, report.predictions, out / "predictions.png")
    else:
        # A class set per image has no confusion matrix; an earlier run's plots would mislead.
        for name in ("confusion_matrix.png", "predictions.png"):
            (out / name).unlink(missing_ok=True)


def _tensorboard(out, finetuner, epochs) -> list:
    import shutil

    from transferkit import schedules
    from transferkit.report import LOG_FOLDER, tensorboard_callbacks

    # Logs of an earlier run in this folder (only --overwrite gets here) would show
    # as the same run in TensorBoard.
    shutil.rmtree(out / LOG_FOLDER, ignore_errors=True)
    plan = schedules.get(finetuner.schedule).plan(epochs)
    return tensorboard_callbacks(out / LOG_FOLDER, plan)


def _remove_logs(out, new_folder) -> None:
    """A failed fit leaves no logs behind, nor the folder it created for them."""
    import shutil

    from transferkit.report import LOG_FOLDER

    shutil.rmtree(out / LOG_FOLDER, ignore_errors=True)
    if new_folder and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def _write_report(out, finetuner, report, args) -> None:
    from transferkit.report import write_report, write_run_details

    data = f"trained on {args.data}; measured on " + (
        args.validation_data or f"a {args.validation_split:g} split of it"
    )
    write_run_details(out, finetuner, report, epochs=args.epochs, data=data)
    write_report(out)


def _written(out, skipped) -> list[str]:
    return [name for name in OUTPUTS if (out / name).exists()]

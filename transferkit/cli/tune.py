"""`transferkit tune`: a KerasTuner search over the fine-tuning recipe, written to a folder."""

import argparse
import json
import re
import sys
from pathlib import Path

from transferkit import defaults
from transferkit.cli.parsing import (
    add_column_options,
    add_command,
    add_defaulted,
    add_training_options,
    check_int,
)

TUNERS = ("random", "bayesian", "hyperband", "grid")
PROJECT = "keras_tuner"  # KerasTuner's project folder inside --out
OUTPUTS = ("results.csv", "search.png", "best_model.keras", PROJECT)
# What each setting a search records (transferkit.tuning.project) is set by, on this
# command line: a search continues only with the same settings.
SETTING_OPTIONS = {
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "seed": "--seed",
    "tuner": "--tuner",
    "search_space": "--backbones, --head-only or --input-sizes",
    "weights": "--weights",
    "input_shape": "--input-size",
    "class_names": "DATA",
    "train_images": "DATA or --validation-split",
    "validation_images": "DATA or --validation-split",
    "class_weight": "--class-weight",
}

DESCRIPTION = """\
Search the two-phase fine-tuning recipe (backbone, head width/depth/dropout, head learning
rate, frozen epochs, how far to unfreeze, fine-tune learning rate) with KerasTuner, every
trial on the same stratified validation split of DATA, and write:
  results.csv        one row per trial: hyperparameters, best validation accuracy, its
                     epoch, seconds
  search.png         the objective per trial and against each hyperparameter
  best_model.keras   the best trial's classifier
  keras_tuner/       KerasTuner's own project folder (--resume continues from it)
Trials that share a backbone reuse its cached features for their frozen phase.
--head-only searches the head on a frozen backbone (fast: one feature pass in all).
--resume continues a search with the options it was started with; only --max-trials may
grow (the last example continues the one before it with 10 more trials)."""

EXAMPLE = """\
transferkit tune data/train --out runs/search --backbones mobilenet resnet50 --max-trials 10
transferkit tune data/train --out runs/heads --head-only --epochs 20
transferkit tune data/train --out runs/heads --head-only --epochs 20 --max-trials 20 --resume"""


def add_parser(subparsers, parents: list) -> argparse.ArgumentParser:
    """Adds the `tune` command to the `transferkit` parser."""
    parser = add_command(
        subparsers,
        "tune",
        parents,
        summary="search the fine-tuning recipe's hyperparameters with KerasTuner",
        description=DESCRIPTION,
        example=EXAMPLE,
    )
    parser.add_argument("data", metavar="DATA", help="training images: a folder or a CSV file")
    parser.add_argument("--out", required=True, metavar="DIR", help="the folder to write")
    add_defaulted(
        parser,
        "--backbones",
        [defaults.BACKBONE],
        "backbones to choose among",
        nargs="+",
        metavar="NAME",
    )
    parser.add_argument(
        "--weights",
        default=defaults.WEIGHTS,
        metavar="imagenet|none|PATH",
        help=f"the backbone's starting weights, as for fit (default: {defaults.WEIGHTS})",
    )
    add_training_options(parser, "per trial")
    parser.add_argument("--max-trials", type=int, default=10, metavar="N", help="(default: 10)")
    parser.add_argument("--tuner", choices=TUNERS, default="random", help="(default: random)")
    parser.add_argument(
        "--head-only", action="store_true", help="keep the backbone frozen in every trial"
    )
    parser.add_argument(
        "--input-size",
        type=int,
        metavar="N",
        # The sizes are transferkit.tuning.space.larger_size's (tests check them): that
        # module imports TensorFlow, which a command line's parsing must not.
        help="the side in pixels of the default recipe's square input (trial one). The "
        "search also tries the default recipe about 25 %% larger, a multiple of 32 "
        "(--input-size 64: 64 and 96 px; 32: 32 alone), so best_model.keras may be at "
        "either size; --input-sizes 64 keeps 64 (default: each backbone's own size, not "
        "searched)",
    )
    parser.add_argument(
        "--input-sizes",
        type=int,
        nargs="+",
        metavar="N",
        help="the input sizes the search may choose, the first the default recipe's (as "
        "tune(search_space={'image_size': [...]})): --input-sizes 64 keeps 64 px in every "
        "trial, --input-sizes 64 128 tries 128 too (default: --input-size and the larger "
        "size it names)",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        metavar="SECONDS",
        help="stop starting trials when the next would not fit in SECONDS (default: none, "
        "--max-trials alone bounds the search)",
    )
    add_defaulted(
        parser,
        "--confirmation-split",
        defaults.CONFIRMATION_SPLIT,
        "fraction of each class no trial sees, on which the finalists (the default recipe "
        "among them) are compared to choose the winner; 0 chooses on validation alone",
        type=float,
        metavar="FRACTION",
    )
    add_defaulted(
        parser,
        "--change-rate",
        defaults.CHANGE_RATE,
        "chance that a trial changes each hyperparameter from its default; 1 draws every "
        "one at random (plain random search)",
        type=float,
        metavar="FRACTION",
    )
    parser.add_argument(
        "--refit",
        action="store_true",
        help="train the winner again on every image (training, validation and confirmation) "
        "before writing best_model.keras",
    )
    add_column_options(parser)
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="(default: 0)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--resume",
        action="store_true",
        help="continue the search in --out, with the same options (--max-trials may grow)",
    )
    group.add_argument(
        "--overwrite", action="store_true", help="start afresh, replacing the files above"
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Carries out `transferkit tune` (see the command's `--help`)."""
    from transferkit.cli.inputs import (
        check_backbone,
        check_data_path,
        read_labelled,
        weights_argument,
    )
    from transferkit.cli.outputs import check_output_folder, restored_on_failure
    from transferkit.cli.runtime import deferred_warnings, import_tensorflow

    check_int(args.epochs, "--epochs")
    check_int(args.max_trials, "--max-trials")
    check_int(args.batch_size, "--batch-size")
    if args.input_size is not None:
        check_int(args.input_size, "--input-size")
    _check_input_sizes(args)
    if args.time_budget is not None and not args.time_budget > 0:
        raise ValueError(
            f"--time-budget must be a number of seconds > 0. Received: --time-budget "
            f"{args.time_budget:g}"
        )
    if not 0 <= args.confirmation_split < 1:
        raise ValueError(
            "--confirmation-split must be a fraction in [0, 1) (0: choose on validation "
            f"alone). Received: --confirmation-split {args.confirmation_split:g}"
        )
    if not 0 < args.change_rate <= 1:
        raise ValueError(
            "--change-rate must be a fraction in (0, 1] (1: plain random search). Received: "
            f"--change-rate {args.change_rate:g}"
        )
    holds_search = (Path(args.out).expanduser() / PROJECT).is_dir()
    out = check_output_folder(
        args.out,
        OUTPUTS,
        args.overwrite or args.resume,
        "--out",
        alternative="pass --resume to continue the search it holds" if holds_search else None,
    )
    check_data_path(args.data)
    weights = weights_argument(args.weights)

    import_tensorflow()
    for name in args.backbones:
        check_backbone(name)
    if args.resume:
        _check_same_options(out, args)
    from transferkit.tuning import tune

    with deferred_warnings():
        source = read_labelled(
            args.data,
            args.path_column,
            args.label_column,
            multi_label=args.multi_label,
            label_delimiter=args.label_delimiter,
        )
    with restored_on_failure(out, OUTPUTS, copy=args.resume):
        try:
            result = _search(tune, source, weights, out, args)
        except ValueError as error:
            if args.resume and "holds a different search" in str(error):
                raise ValueError(_different_search(out, str(error))) from error
            raise
        except RuntimeError as error:
            if "is too small for one trial" in str(error):
                raise ValueError(_budget_too_small(args)) from error
            raise
        out.mkdir(parents=True, exist_ok=True)
        result.results.to_csv(out / "results.csv", index=False)
        result.plot(out / "search.png")
        result.best_finetuner(refit=args.refit).save(out / "best_model.keras", overwrite=True)
    print(_summary(result, args.refit))
    print(f"Wrote {out}: results.csv, search.png, best_model.keras, {PROJECT}/")
    return 0


def _summary(result, refit: bool) -> str:
    """The trials, the finalists and the choice, saying why the chosen trial won.

    The headline names the best trial on validation and the chosen one apart: the
    choice is made on the confirmation images too, so the two may differ.
    """
    objective = result.objective
    best, chosen = result.validation_best_trial, result.best_trial
    lines = [
        f"{len(result.results)} trials; best {objective} {best.score:.4f} (trial {best.trial_id})"
    ]
    lines.append(result.results.to_string(index=False, max_colwidth=24))
    why = {}
    if result.finalists is not None:
        lines.append("Finalists, compared on the confirmation images no trial saw:")
        table = result.finalists.drop(columns=["reason"])
        lines.append(table.to_string(index=False, max_colwidth=24))
        why = dict(zip(result.finalists["trial_id"], result.finalists["reason"], strict=True))
        lines += [f"  trial {trial_id}: {reason}" for trial_id, reason in why.items()]
    elif chosen is best:
        why[chosen.trial_id] = f"the best {objective} (no confirmation split)"
    refitted = " (refitted on every image)" if refit else ""
    reason = why.get(chosen.trial_id)
    lines.append(
        f"Chosen: trial {chosen.trial_id}, {objective} {chosen.score:.4f}{refitted}"
        + (f": {reason}" if reason else "")
    )
    return "\n".join(lines)


def _search(tune, source, weights, out, args):
    return tune(
        source,
        backbones=args.backbones,
        weights=weights,
        input_shape=args.input_size,
        epochs=args.epochs,
        max_trials=args.max_trials,
        tuner=args.tuner,
        search_space=search_space(args) or None,
        validation_split=args.validation_split,
        batch_size=args.batch_size,
        directory=out,
        project_name=PROJECT,
        overwrite=not args.resume,
        seed=args.seed,
        class_weight=args.class_weight,
        time_budget=args.time_budget,
        confirmation_split=args.confirmation_split,
        change_rate=args.change_rate,
        verbose=1 if sys.stdout.isatty() else 0,
    )


def _check_input_sizes(args) -> None:
    """`--input-sizes`: sizes >= 32, the first one `--input-size` when both are given."""
    if args.input_sizes is None:
        return
    for size in args.input_sizes:
        check_int(size, "--input-sizes", minimum=32)
    if len(set(args.input_sizes)) != len(args.input_sizes):
        sizes = " ".join(map(str, args.input_sizes))
        raise ValueError(f"--input-sizes lists a size twice. Received: --input-sizes {sizes}")
    if args.input_size is None:
        args.input_size = args.input_sizes[0]
    elif args.input_size != args.input_sizes[0]:
        sizes = " ".join(map(str, args.input_sizes))
        raise ValueError(
            "--input-sizes starts with the default recipe's size, which --input-size also "
            f"names. Received: --input-size {args.input_size} --input-sizes {sizes}. Pass "
            f"--input-sizes {args.input_size} ... or leave out --input-size."
        )


def search_space(args) -> dict:
    """The `search_space` of `tune` that this command line asks for."""
    space = {}
    if args.head_only:
        space["unfreeze"] = False
    if args.input_sizes is not None:
        # One size fixes it; several are a choice, the first the default recipe's.
        space["image_size"] = list(args.input_sizes)
    return space


def _check_same_options(out, args) -> None:
    """Before the data is read: the options of this command line a search records."""
    from transferkit.tuning import TUNERS as TUNER_CLASSES
    from transferkit.tuning.project import SETTINGS_FILE

    path = out / PROJECT / SETTINGS_FILE
    if not path.is_file():
        return
    started = json.loads(path.read_text())
    tuner_names = {cls.__name__: name for name, cls in TUNER_CLASSES.items()}
    given = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "tuner": args.tuner,
    }
    recorded = dict(started)
    recorded["tuner"] = tuner_names.get(started.get("tuner"), started.get("tuner"))
    differ = [key for key, value in given.items() if key in recorded and recorded[key] != value]
    if differ:
        was = " ".join(f"{SETTING_OPTIONS[key]} {recorded[key]}" for key in differ)
        now = " ".join(f"{SETTING_OPTIONS[key]} {given[key]}" for key in differ)
        raise ValueError(
            f"--resume continues the search in {out} with the options it was started with "
            f"({was}), not {now}. Pass {was} to continue it (--max-trials may grow), "
            "--overwrite to start a new search there, or another --out."
        )


def _budget_too_small(args) -> str:
    """The tuner's "no trial fitted in the budget", in this command's words."""
    return (
        f"--time-budget {args.time_budget:g} is too small for one trial: the first trial "
        "(the default recipe) was still training when it ran out. Give the search more "
        "seconds, fewer --epochs or a smaller --input-size."
    )


def _different_search(out, message: str) -> str:
    """The tuner's refusal to continue a different search, in this command's words."""
    match = re.search(r"differs in \[([^\]]*)\]", message)
    keys = re.findall(r"'(\w+)'", match.group(1)) if match else []
    options = sorted({SETTING_OPTIONS.get(key, key) for key in keys})
    what = f" (it differs in {', '.join(options)})" if options else ""
    return (
        f"--resume continues the search in {out} only with the data and options it was "
        f"started with{what}. Run it with those, pass --overwrite to start a new search "
        "there, or choose another --out."
    )

"""A head search with transferkit's feature cache vs plain KerasTuner on the same trials.

Real data and weights (offline CIFAR-10 cats vs dogs, MobileNet ImageNet weights).
Each configuration runs in its own process, one after the other, so none warms up
TensorFlow or the page cache for another and peak memory is its own:

- `plain`: plain KerasTuner (`keras_tuner.RandomSearch`) running the same
  `FineTunerHyperModel` with `cache_features=False`: the backbone runs over the
  training and validation images in every frozen epoch of every trial.
- `cached`: `transferkit.tune`, the same random search with the same seed (so the
  same hyperparameters, trial for trial), sharing the frozen backbone's features.
- `default`: the default `FineTuner` (one frozen epoch, then the whole backbone
  unfrozen), no search, for the held-out comparison.
- with `--compare-tuners`: `tune` with each KerasTuner tuner on the same budget
  (`random`, `hyperband`, and `bayesian` when scikit-learn is installed).

The search is over the head (`search_space=HEAD_SEARCH`): width, depth,
dropout and learning rate (in its default range, or `--learning-rate-range MIN MAX`).
Test accuracy is on CIFAR-10's test split, never seen by the search.

    python -m bench.tuning [--train-images 2000] [--trials 10] [--epochs 3]
        [--skip-plain] [--compare-tuners] [--learning-rate-range MIN MAX]

With `--tasks`, it measures instead whether a search pays: for each task and seed,
the default `FineTuner` (its held-out accuracy and seconds), then `tune` over the
default search space with `time_budget` set so that the search, the finalists'
confirmation and the refit of the winner on every image together take at most
`--budget-factor` times the default's seconds; the searched model is the one
`best_finetuner(refit=True)` returns. Tasks: `cats_dogs` (CIFAR-10 cats vs dogs,
`--train-images` in all) and `cifar10` (the ten classes, `--cifar10-train-images` in
all, the same number per class); the held-out images are `--test-images` of CIFAR-10's
test split, the same number per class.

    python -m bench.tuning --tasks cats_dogs cifar10 --seeds 0 1 2 --train-images 4000
        --cifar10-train-images 10000 [--budget-factor 5] [--epochs 3] [--image-size 160]
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile

from transferkit import defaults

HEAD_SEARCH = {"unfreeze": False, "augmentation_strength": 0.0, "label_smoothing": 0.0}


def refit_share(image_size: int) -> float:
    """The refit's and the confirmation's cost, in default runs, kept out of `time_budget`.

    The refit trains the winner on every image (1.25x the default's images), at
    up to the largest searched image size (pixels cost as their number), and
    confirming the finalists predicts the confirmation split once each: so the
    whole search never takes more than the budget factor.
    """
    from transferkit.tuning.space import larger_size

    return 1.25 * (larger_size(image_size) / image_size) ** 2 + 0.1


def task_data(task: str, train_images: int, test_images: int, seed: int):
    """`(x_train, y_train, x_test, y_test)` of a task, balanced, test from the test split."""
    import numpy as np

    from bench.common import CIFAR10_ALL_CLASSES, cats_vs_dogs, cifar10

    if task == "cats_dogs":
        return cats_vs_dogs(train_images, test_images, seed=seed)
    rng = np.random.default_rng(seed)
    names = np.array(CIFAR10_ALL_CLASSES)

    def pick(images, labels, total):
        chosen = [
            rng.choice(np.flatnonzero(labels == c), total // 10, replace=False) for c in range(10)
        ]
        index = np.sort(np.concatenate(chosen))
        return images[index], names[labels[index]]

    x, y = cifar10("train")
    xt, yt = cifar10("test")
    return (*pick(x, y, train_images), *pick(xt, yt, test_images))


def run_versus_default(config, args):
    """One task and seed: the default FineTuner, or the search with a budget from it."""
    import transferkit as tk
    from bench.common import Timer, peak_rss_mib, weights_path
    from transferkit.features import FeatureCache

    task, seed = args.task, args.seed
    images = args.cifar10_train_images if task == "cifar10" else args.train_images
    x_train, y_train, x_test, y_test = task_data(task, images, args.test_images, seed)
    weights = str(weights_path())
    row = {"task": task, "seed": seed, "config": config}
    if config == "default":
        finetuner = tk.FineTuner(
            "mobilenet",
            weights=weights,
            input_shape=args.image_size,
            seed=seed,
            cache_features=FeatureCache(),
        )
        with Timer() as timer:
            finetuner.fit(
                x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=0
            )
    else:
        reserve = refit_share(args.image_size)
        budget = max(1.0, (args.budget_factor - reserve) * args.default_seconds)
        directory = tempfile.mkdtemp(prefix="transferkit-bench-search-")
        with Timer() as timer:
            result = tk.tune(
                x_train,
                y_train,
                backbones="mobilenet",
                weights=weights,
                input_shape=args.image_size,
                epochs=args.epochs,
                max_trials=100,
                tuner=args.tuner,
                time_budget=budget,
                cache_features=FeatureCache(),
                batch_size=args.batch_size,
                directory=directory,
                overwrite=True,
                seed=seed,
                change_rate=args.change_rate,
                verbose=0,
            )
            finetuner = result.best_finetuner(refit=True)
        finalists = result.finalists
        values = {trial.trial_id: trial.hyperparameters.values for trial in result.trials}
        records = finalists.round(4).to_dict("records")
        for record in records:
            record["hyperparameters"] = values[record["trial_id"]]
        row.update(
            time_budget=budget,
            trials=len(result.trials),
            completed=len(result.completed),
            chosen=result.best_trial.trial_id,
            default_chosen=bool(finalists.loc[finalists["chosen"], "default"].item()),
            validation_gain=result.validation_gain,
            confirmed_gain=result.confirmed_gain,
            finalists=records,
            best=result.best_hyperparameters,
        )
        shutil.rmtree(directory, ignore_errors=True)
    row["seconds"] = timer.seconds
    row["test_accuracy"] = float(finetuner.evaluate(x_test, y_test)["accuracy"])
    row["peak_rss_mib"] = peak_rss_mib()
    return row


def versus_default(args, passed):
    """Every task and seed, each configuration in its own process; prints every seed."""
    import math

    import pandas as pd

    rows = []
    for task in args.tasks:
        for seed in args.seeds:
            common = [*passed, "--task", task, "--seed", str(seed)]
            default = _run_child([*common, "--one", "default"])
            if default is None:
                continue
            rows.append(default)
            print(json.dumps(default), flush=True)
            search = _run_child(
                [*common, "--default-seconds", str(default["seconds"]), "--one", "search"]
            )
            if search is not None:
                rows.append(search)
                print(json.dumps(search), flush=True)
    table = pd.DataFrame(rows)
    if table.empty:
        return
    wide = table.pivot_table(
        index=["task", "seed"], columns="config", values=["test_accuracy", "seconds"]
    )
    wide.columns = [f"{config} {value}" for value, config in wide.columns]
    wide = wide.reset_index()
    if "search test_accuracy" in wide:
        wide["gain"] = wide["search test_accuracy"] - wide["default test_accuracy"]
        wide["time ratio"] = wide["search seconds"] / wide["default seconds"]
    print(
        f"\nMobileNet (ImageNet) at {args.image_size}px, {args.epochs} epochs, "
        f"{args.train_images} training images (cifar10: {args.cifar10_train_images}), "
        f"{args.test_images} held-out test "
        f"images; search: tuner={args.tuner!r}, budget factor {args.budget_factor}"
    )
    print(wide.round(4).to_string(index=False))
    for task, part in wide.groupby("task"):
        if "gain" not in part:
            continue
        # One standard error of a held-out accuracy near the default's.
        accuracy = part["default test_accuracy"].mean()
        noise = math.sqrt(accuracy * (1 - accuracy) / args.test_images)
        print(
            f"{task}: mean gain {part['gain'].mean():+.4f} over {len(part)} seed(s); worst "
            f"{part['gain'].min():+.4f} (test-set standard error {noise:.4f})"
        )
    from bench.common import bench_command, write_results

    figures = {"runs": rows, "per_seed": wide.to_dict(orient="records")}
    write_results("tuning", figures, bench_command("bench.tuning"), setup=vars(args))


def _run_child(arguments):
    command = [sys.executable, "-m", "bench.tuning", *arguments]
    output = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in output.stdout.splitlines() if line.startswith("RESULT ")]
    if output.returncode != 0 or not lines:
        print(f"{arguments} failed:\n{output.stderr[-3000:]}", flush=True)
        return None
    return json.loads(lines[-1][len("RESULT ") :])


def run_one(config, args):
    import keras_tuner

    import transferkit as tk
    from bench.common import Timer, cats_vs_dogs, peak_rss_mib, weights_path
    from transferkit.features import FeatureCache
    from transferkit.tuning import FineTunerHyperModel, TuneResult, tune
    from transferkit.tuning.inputs import resolve_data
    from transferkit.tuning.search import make_tuner

    x_train, y_train, x_test, y_test = cats_vs_dogs(args.train_images, args.test_images)
    weights = str(weights_path())
    # A head search at the one image size (the default space would add a larger one).
    space = dict(HEAD_SEARCH, image_size=args.image_size) if args.space == "head" else {}
    if args.learning_rate_range:
        low, high = args.learning_rate_range
        space["learning_rate"] = {"min_value": low, "max_value": high}
    settings = dict(
        backbones="mobilenet",
        weights=weights,
        input_shape=args.image_size,
        epochs=args.epochs,
        search_space=space or None,
        seed=args.seed,
    )
    directory = tempfile.mkdtemp(prefix="transferkit-bench-tuning-")
    row = {"config": config}

    if config == "default":
        finetuner = tk.FineTuner(
            "mobilenet", weights=weights, input_shape=args.image_size, seed=args.seed
        )
        with Timer() as timer:
            history = finetuner.fit(
                x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=0
            )
        row.update(trials=1, best_val_accuracy=float(history["val_accuracy"].max()))
        row["final_val_accuracy"] = float(history["val_accuracy"].iloc[-1])
    elif config == "plain":
        train, validation, _ = resolve_data(x_train, y_train, None, 0.2, args.seed)
        hypermodel = FineTunerHyperModel(train.class_names, cache_features=False, **settings)
        # KerasTuner's own RandomSearch (no time budget), built as tune builds its tuner:
        # the same seed, trial one the default recipe, the others near it.
        tuner = make_tuner(
            keras_tuner.RandomSearch,
            hypermodel,
            max_trials=args.trials,
            epochs=args.epochs,
            seed=args.seed,
            directory=directory,
            project_name="plain",
            overwrite=True,
            change_rate=args.change_rate,
        )
        with Timer() as timer:
            tuner.search(
                train,
                validation_data=validation,
                epochs=args.epochs,
                batch_size=args.batch_size,
                verbose=0,
            )
        fit_options = {"batch_size": args.batch_size, "class_weight": None}
        result = TuneResult(tuner, hypermodel, train, validation, fit_options)
        finetuner = result.best_finetuner()
    else:
        tuner = config.split(":")[1] if ":" in config else "random"
        with Timer() as timer:
            result = tune(
                x_train,
                y_train,
                max_trials=args.trials,
                tuner=tuner,
                cache_features=FeatureCache(),
                batch_size=args.batch_size,
                directory=directory,
                project_name=tuner,
                overwrite=True,
                confirmation_split=0,
                change_rate=args.change_rate,
                verbose=0,
                **settings,
            )
        finetuner = result.best_finetuner()

    if config != "default":
        results = result.results
        row["trials"] = len(results)
        row["completed"] = int((results["status"] == "COMPLETED").sum())
        if "tuner/epochs" in results:
            trained = results["tuner/epochs"] - results["tuner/initial_epoch"]
            row["epochs_trained"] = int(trained.sum())
        else:
            row["epochs_trained"] = len(results) * args.epochs
        row["best_val_accuracy"] = float(results["val_accuracy"].max())
        searched = ["head_depth", "head_units", "dropout", "learning_rate"]
        row["trial_values"] = results.reindex(columns=searched).round(6).to_json()
        row["best"] = result.best_hyperparameters
    row["wall_seconds"] = timer.seconds
    row["test_accuracy"] = float(finetuner.evaluate(x_test, y_test)["accuracy"])
    row["peak_rss_mib"] = peak_rss_mib()
    shutil.rmtree(directory, ignore_errors=True)  # 13 MB of checkpoint per trial
    return row


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line (building it runs nothing)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--space", choices=["head", "full"], default="head")
    parser.add_argument("--skip-plain", action="store_true", help="skip the slow baseline")
    parser.add_argument("--compare-tuners", action="store_true")
    parser.add_argument(
        "--learning-rate-range",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="the head learning rate's search range (default: the search space's)",
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        choices=["cats_dogs", "cifar10"],
        help="measure the searched model against the default on these tasks instead",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--cifar10-train-images",
        type=int,
        default=10000,
        help="training images of the ten-class task, in all (default: 1,000 a class)",
    )
    parser.add_argument("--budget-factor", type=float, default=5.0)
    parser.add_argument("--tuner", default="random")
    parser.add_argument(
        "--change-rate",
        type=float,
        default=defaults.CHANGE_RATE,
        help="tune's change_rate (1: plain random search)",
    )
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--default-seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    return parser


def main():
    args = build_parser().parse_args()
    if args.one and args.task:
        print("RESULT " + json.dumps(run_versus_default(args.one, args), default=str), flush=True)
        return
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, args)), flush=True)
        return
    if args.tasks:
        passed, skip = [], False
        for argument in sys.argv[1:]:
            # Each child gets one task and one seed.
            if argument in ("--tasks", "--seeds"):
                skip = True
                continue
            if skip and not argument.startswith("--"):
                continue
            skip = False
            passed.append(argument)
        versus_default(args, passed)
        return

    configs = ["cached", "default"] if args.skip_plain else ["plain", "cached", "default"]
    if args.compare_tuners:
        import importlib.util

        configs += ["tuner:hyperband"]
        if importlib.util.find_spec("sklearn") is not None:
            configs += ["tuner:bayesian"]
        else:
            print("(bayesian skipped: scikit-learn is not installed)", flush=True)
    passed = [a for a in sys.argv[1:] if a not in ("--skip-plain", "--compare-tuners")]
    rows = []
    for config in configs:
        command = [sys.executable, "-m", "bench.tuning", *passed, "--one", config]
        output = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in output.stdout.splitlines() if line.startswith("RESULT ")]
        if output.returncode != 0 or not lines:
            print(f"{config} failed:\n{output.stderr[-3000:]}", flush=True)
            continue
        rows.append(json.loads(lines[-1][len("RESULT ") :]))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "trial_values"}), flush=True)

    import pandas as pd

    table = pd.DataFrame(rows).set_index("config")
    table["seconds_per_trial"] = table["wall_seconds"] / table["trials"]
    columns = [
        "trials",
        "epochs_trained",
        "wall_seconds",
        "seconds_per_trial",
        "best_val_accuracy",
        "test_accuracy",
        "peak_rss_mib",
    ]
    print(
        f"\n{args.space} search, {args.trials} trials x {args.epochs} epochs, MobileNet "
        f"(ImageNet) at {args.image_size}px, {args.train_images} CIFAR-10 cats/dogs "
        f"(80/20 split), test on {args.test_images} held-out images"
    )
    print(table.reindex(columns=columns).round(3).to_string())
    if "plain" in table.index and "cached" in table.index:
        speedup = table.loc["plain", "wall_seconds"] / table.loc["cached", "wall_seconds"]
        same = table.loc["plain", "trial_values"] == table.loc["cached", "trial_values"]
        print(
            f"feature cache: {speedup:.1f}x faster than plain KerasTuner; "
            f"same hyperparameters trial for trial: {'yes' if same else 'NO'}"
        )
    if "cached" in table.index and "default" in table.index:
        gain = table.loc["cached", "test_accuracy"] - table.loc["default", "test_accuracy"]
        print(f"best trial vs default FineTuner, held-out accuracy: {gain:+.3f}")

    from bench.common import bench_command, write_results

    write_results("tuning", rows, bench_command("bench.tuning"), setup=vars(args))


if __name__ == "__main__":
    main()

"""`tune`: a KerasTuner search over the whole two-phase fine-tuning recipe."""

import inspect
import os
from collections.abc import Mapping, Sequence

import keras_tuner

from transferkit import defaults
from transferkit.features import FeatureCache
from transferkit.tuning import distributed
from transferkit.tuning.budget import budgeted, default_first
from transferkit.tuning.failures import logged_failures
from transferkit.tuning.hypermodel import MULTI_LABEL_OBJECTIVES, FineTunerHyperModel
from transferkit.tuning.inputs import resolve_class_weight, resolve_data
from transferkit.tuning.near_default import near_default
from transferkit.tuning.project import check_same_search, search_settings, write_settings
from transferkit.tuning.results import TuneResult, raise_if_no_success
from transferkit.utils.log import logger

# Random search is the default: `tune`'s docstring says why.
TUNERS = {
    "random": keras_tuner.RandomSearch,
    "bayesian": keras_tuner.BayesianOptimization,
    "hyperband": keras_tuner.Hyperband,
    "grid": keras_tuner.GridSearch,
}


def tune(
    data,
    labels=None,
    *,
    backbones: str | Sequence[str] = defaults.BACKBONE,
    validation_data=None,
    validation_split: float = defaults.VALIDATION_SPLIT,
    epochs: int = 5,
    max_trials: int = 10,
    tuner: "str | type[keras_tuner.Tuner]" = "random",
    search_space: Mapping | None = None,
    objective: str = "val_accuracy",
    weights: "str | os.PathLike | None | Mapping" = "imagenet",
    input_shape: tuple[int, int, int] | int | None = None,
    optimizer: str = defaults.OPTIMIZER,
    augmentation=defaults.AUGMENTATION,
    cached_views: int | None = None,
    cache_features: "bool | FeatureCache" = True,
    batch_size: int = defaults.BATCH_SIZE,
    class_weight: "dict | str | None" = None,
    callbacks: list | None = None,
    directory: str | os.PathLike = "transferkit_tuning",
    project_name: str = "search",
    overwrite: bool = False,
    seed: int | None = 0,
    tuner_options: Mapping | None = None,
    time_budget: float | None = None,
    confirmation_split: float = defaults.CONFIRMATION_SPLIT,
    finalists: int = 3,
    change_rate: float = defaults.CHANGE_RATE,
    verbose: int = 1,
) -> TuneResult:
    """Searches the fine-tuning recipe's hyperparameters with KerasTuner.

    Resolves the data once (one scan, stratified splits with `seed`), so
    every trial trains and validates on the same images, then runs a
    KerasTuner search of a `FineTunerHyperModel`: the backbone among
    `backbones`, the head's depth, width and dropout, its learning rate,
    whether and after how many frozen epochs the backbone unfreezes, how many
    of its blocks and the fine-tuning learning rate (see
    `FineTunerHyperModel` for each default and range). Trial one is the
    default recipe and, when the image size is a choice of sizes (and the tuner
    not grid search), trial two the default recipe at the larger size (see
    `transferkit.tuning.budget.DefaultFirst`). Each later trial is the
    default recipe with a few changes: every hyperparameter is drawn at random
    with probability `change_rate` and otherwise keeps its default (see
    `transferkit.tuning.near_default`). Trials that share a backbone compute
    its features once: a search over the head costs about one pass of the
    backbone over the data, not one per trial and epoch. Each trial clears the
    Keras session when it ends.

    The search is KerasTuner's own, in `directory/project_name`: with
    `overwrite=False` (the default) running the same call again continues an
    interrupted search, redoing no finished trial (a different search in the
    same folder is an error). Any KerasTuner tuner runs it. The default is
    random search. With the features cached, a head trial's cost hardly
    depends on its epochs (measured with MobileNet at 160 px: about 1 s to
    build the model with its weights, about 1 s to train the head 3 epochs
    on 3200 cached feature vectors), so Hyperband's saving of epochs buys
    little there, while random search runs exactly `max_trials` distinct
    configurations, needs no extra package and never holds a worker of a
    distributed search idle (Hyperband's oracle does while its last brackets
    finish). Bayesian optimisation samples at random until it has `3 x`
    (number of hyperparameters) results (27 for the default space with one
    backbone, 18 for a head search), so in a search of that size it is random
    search that also needs scikit-learn. KerasTuner's Hyperband takes no
    `max_trials`; here it caps Hyperband's trials. `bench/tuning.py
    --compare-tuners` runs the tuners side by side on the same budget.

    Selection that holds up: trial one of every search is the default recipe
    (every hyperparameter at its default). `confirmation_split` of the data is
    held out of the search; when the search ends, the finalists (the default
    recipe, the default recipe at each larger size, and the `finalists - 1`
    best other trials on validation, at full budget) are measured on those
    images. The default recipe stays the choice unless a larger size is right
    on more of the validation and confirmation images together (it was named
    before the search, so its validation score is not a pick's), or the best
    of the other trials beats the choice so far clearly on the confirmation
    images (see `transferkit.tuning.selection`). `TuneResult.finalists` lists them, and
    `TuneResult.gain_survived` says how much of the validation gain held on
    the confirmation images. `best_finetuner(refit=True)` then trains the
    chosen recipe on every image.

    Budget: `time_budget` seconds bound the search (the confirmation that
    follows is one prediction pass per finalist). No trial starts that the
    time left cannot pay for (at the mean cost of the trials so far, scaled
    by the pixels of trial two's larger image size), and a trial still
    running when the budget ends is stopped and recorded as failed. With
    `tuner="hyperband"`, KerasTuner's successive halving runs most trials for
    a few epochs and only the best for all `epochs`.

    Distributed: set `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT` and
    `KERASTUNER_TUNER_ID` (`chief`, `worker0`, `worker1`, ...) and run this
    same call in every process; see `transferkit.tuning.distributed`.

    Args:
        data: The labelled training images, in any form `FineTuner.fit`
            accepts (a folder, a DataFrame, paths with `labels`, arrays, an
            `ImageSource`).
        labels: array-like or None. Labels for a list of paths or an array.
        backbones: str or sequence of str. Backbone names to choose among.
            Defaults to `"resnet50"`.
        validation_data: Validation images in any such form, or None to hold
            out `validation_split` of `data`. Defaults to `None`.
        validation_split: float. Fraction of each class held out for
            validation when `validation_data` is None. Defaults to `0.2`.
        epochs: int. Epochs per trial, frozen ones included (Hyperband's
            `max_epochs`). Defaults to `5`.
        max_trials: int. Trials to run at most, >= 1 (on a resumed search:
            in total). Defaults to `10`.
        tuner: str or a `keras_tuner.Tuner` subclass. `"random"`,
            `"bayesian"` (needs scikit-learn), `"hyperband"` or `"grid"`, or a
            tuner class. Defaults to `"random"`.
        search_space: dict or None. Overrides by hyperparameter name (a value
            fixes it, a list makes it a choice, a dict changes its default
            range's arguments, a keras_tuner hyperparameter replaces it);
            `{"unfreeze": False}` searches the head alone. Defaults to `None`.
        objective: str. The history column to optimise: `"val_accuracy"`
            (maximised), `"val_loss"` (minimised), `"accuracy"` or `"loss"`;
            for multi-label data `"val_pr_auc"` (the mean precision-recall
            AUC over classes, maximised), which `"val_accuracy"` becomes
            there (the log says so), or `"val_binary_accuracy"`. Defaults to
            `"val_accuracy"`.
        weights: str, path, None or dict. As `FineTuner`'s; a dict maps
            backbone names to weights. Defaults to `"imagenet"`.
        input_shape: tuple or int or None. As `FineTuner`'s.
        optimizer: str. As `FineTuner`'s. Defaults to `"adam"`.
        augmentation: str, layer or None. As `FineTuner`'s. Defaults to
            `"flip"`.
        cached_views: int or None. As `FineTuner`'s. Defaults to `None`.
        cache_features: bool or `FeatureCache`. `True` shares the process's
            feature cache between trials; `False` runs the backbone in every
            frozen epoch, as plain KerasTuner would. Defaults to `True`.
        batch_size: int. Defaults to `32`.
        class_weight: dict, `"balanced"` or None. Class index (or class name)
            -> weight, applied in every trial; `"balanced"` weighs each class
            by the inverse of its share of the training images (the log
            reports the weights; a class without training images is an error).
            Single-label data only. Defaults to `None`.
        callbacks: list or None. Keras callbacks for every trial (deep-copied
            per trial by KerasTuner). Defaults to `None`.
        directory: str or path. KerasTuner's folder for the search. Defaults
            to `"transferkit_tuning"`.
        project_name: str. The search's sub-folder. Defaults to `"search"`.
        overwrite: bool. Start afresh, deleting a previous search in the same
            folder. Defaults to `False` (continue it).
        seed: int or None. Seeds the split, the tuner and every trial's
            FineTuner. Defaults to `0`.
        tuner_options: dict or None. More arguments for the tuner class, e.g.
            `{"factor": 3}` for Hyperband or `{"executions_per_trial": 2}`.
        time_budget: float or None. Seconds for the search; `None` bounds it
            by `max_trials` alone. Defaults to `None`.
        confirmation_split: float. Fraction of each class held out of the
            search to measure the finalists on; `0` chooses on validation
            alone. Defaults to `0.2`.
        finalists: int. The default recipe and the best other trials
            measured on the confirmation split; the default recipe at a
            larger size is measured beside them. Defaults to `3`.
        change_rate: float in (0, 1]. The chance that a trial changes each
            hyperparameter from its default; `1` draws every one at random
            (plain random search). Defaults to `0.25`.
        verbose: int. `0` silent, `1` KerasTuner's summary of each trial, `2`
            also Keras's line per epoch. Defaults to `1`.

    Returns:
        A `TuneResult`: `results` (a DataFrame, one row per trial),
        `finalists`, `gain_survived`, `best_hyperparameters`,
        `best_finetuner()` and `plot()`.

    Raises:
        ValueError: for an empty search space, an unknown hyperparameter,
            backbone or tuner name, `max_trials` < 1, a `time_budget` that is
            not a positive number, or data that can't be validated on.
        RuntimeError: if the search ends with no successful trial (KerasTuner
            itself only prints failed trials), with the first error; or if
            `time_budget` ran out before the first trial ended.

    Example:

    ```python
    import transferkit as tk
    result = tk.tune("data/train", backbones=["mobilenetv2", "efficientnetb0"],
                     epochs=4, max_trials=12)
    result.results.sort_values("val_accuracy", ascending=False).head()
    ft = result.best_finetuner()
    ft.save("best.keras")
    result.plot("search.png")
    ```
    """
    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
        raise ValueError(
            "`max_trials` must be an integer >= 1: the number of trials to run at most. "
            f"Received: max_trials={max_trials!r}"
        )
    tuner_class = _tuner_class(tuner)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be an integer >= 1. Received: batch_size={batch_size!r}"
        )
    if verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 0, 1 or 2. Received: verbose={verbose!r}")
    if time_budget is not None and (
        isinstance(time_budget, bool)
        or not isinstance(time_budget, (int, float))
        or time_budget <= 0
    ):
        raise ValueError(
            "`time_budget` must be a number of seconds > 0, or None for no limit. "
            f"Received: time_budget={time_budget!r}"
        )
    if isinstance(finalists, bool) or not isinstance(finalists, int) or finalists < 1:
        raise ValueError(
            "`finalists` must be an integer >= 1 (the default recipe counts as one). "
            f"Received: finalists={finalists!r}"
        )
    if not (
        isinstance(change_rate, (int, float))
        and not isinstance(change_rate, bool)
        and 0 < change_rate <= 1
    ):
        raise ValueError(
            "`change_rate` must be a fraction in (0, 1]: the chance that a trial changes each "
            "hyperparameter from its default (1: plain random search). "
            f"Received: change_rate={change_rate!r}"
        )
    if not (isinstance(confirmation_split, (int, float)) and 0 <= confirmation_split < 1):
        raise ValueError(
            "`confirmation_split` must be a fraction in [0, 1) (0: no confirmation split). "
            f"Received: confirmation_split={confirmation_split!r}"
        )
    role = distributed.role()
    if role != "single" and time_budget is not None:
        raise ValueError(
            "time_budget is for a search in one process; a distributed search is bounded by "
            "max_trials. Pass time_budget=None."
        )
    if role != "single" and seed is None and validation_data is None:
        raise ValueError(
            "A distributed search with seed=None would draw a different validation split in "
            "every process. Pass seed=<int> (the same everywhere) or validation_data=..."
        )

    train, validation, confirmation = resolve_data(
        data, labels, validation_data, validation_split, seed, confirmation_split
    )
    class_weight = resolve_class_weight(class_weight, train)
    if train.multi_label and objective in MULTI_LABEL_OBJECTIVES:
        logger.info(
            f"multi-label data: the objective {objective!r} becomes "
            f"{MULTI_LABEL_OBJECTIVES[objective]!r} (accuracy over every class of every image "
            "is flattered by the many negatives)"
        )
        objective = MULTI_LABEL_OBJECTIVES[objective]
    hypermodel = FineTunerHyperModel(
        train.class_names,
        backbones,
        epochs=epochs,
        search_space=search_space,
        weights=weights,
        input_shape=input_shape,
        optimizer=optimizer,
        augmentation=augmentation,
        cached_views=cached_views,
        cache_features=cache_features,
        objective=objective,
        seed=seed,
        multi_label=train.multi_label,
    )
    settings = search_settings(
        hypermodel, train, validation, tuner_class, batch_size, class_weight
    )
    project_dir = os.path.join(os.fspath(directory), project_name)
    if role == "worker":
        overwrite = False  # only the chief may delete the search's records
    elif not overwrite:
        check_same_search(project_dir, settings)

    search = make_tuner(
        logged_failures(budgeted(tuner_class)),
        hypermodel,
        max_trials=max_trials,
        epochs=epochs,
        seed=seed,
        directory=directory,
        project_name=project_name,
        overwrite=overwrite,
        options=tuner_options,
        change_rate=change_rate,
    )
    if role != "worker":
        write_settings(search.project_dir, settings)
    search.time_budget = time_budget

    fit_options = {"batch_size": batch_size, "class_weight": class_weight}
    search_kwargs = dict(fit_options, validation_data=validation, epochs=epochs)
    search_kwargs["callbacks"] = list(callbacks or [])
    if verbose == 2:
        search_kwargs["verbose"] = 2  # KerasTuner hands it on to fit
    elif role != "worker":
        search.oracle.verbose = verbose
    try:
        search.search(train, **search_kwargs)
    except RuntimeError as error:
        if "consecutive failures" not in str(error):
            raise
        limit = getattr(search.oracle, "max_consecutive_failed_trials", 3)
        raise RuntimeError(
            "The search stopped: trials failed one after another (KerasTuner stops after "
            f"{limit} in a row). The last error:\n{error}"
        ) from error
    finally:
        search.release_stderr()

    result = TuneResult(search, hypermodel, train, validation, fit_options, confirmation)
    if role == "worker":
        return result
    if search.stopped_by_budget:
        logger.info(
            f"time_budget={time_budget:g}s: the search stopped after {len(result.trials)} "
            "trial(s), with no time left for another"
        )
        if not result.completed:
            raise RuntimeError(
                f"time_budget={time_budget:g}s is too small for one trial: the first trial "
                "(the default recipe) was still training when it ran out. Give the search "
                "more time, fewer epochs or smaller images (input_shape)."
            )
    raise_if_no_success(result)
    if confirmation is not None:
        result.confirm(finalists)
    return result


def _tuner_class(tuner):
    if isinstance(tuner, type) and issubclass(tuner, keras_tuner.Tuner):
        return tuner
    if isinstance(tuner, str) and tuner.lower() in TUNERS:
        return TUNERS[tuner.lower()]
    raise ValueError(
        f"Unknown tuner {tuner!r}. Use one of {sorted(TUNERS)} or a keras_tuner.Tuner "
        "subclass such as keras_tuner.Hyperband."
    )


def make_tuner(
    tuner_class,
    hypermodel: FineTunerHyperModel,
    *,
    max_trials: int,
    epochs: int,
    seed: int | None,
    directory,
    project_name: str,
    overwrite: bool,
    options: Mapping | None = None,
    change_rate: float = 1.0,
) -> keras_tuner.Tuner:
    """Builds a KerasTuner tuner of `tuner_class` around the hypermodel.

    Its oracle draws the default recipe first, then (with `change_rate` < 1)
    near the default.
    """
    parameters = inspect.signature(tuner_class.__init__).parameters
    kwargs = {
        "hypermodel": hypermodel,
        "objective": hypermodel.objective,
        # KerasTuner's oracles take a seed of 0 for no seed at all.
        "seed": None if seed is None else seed + 1,
        "directory": os.fspath(directory),
        "project_name": project_name,
        "overwrite": overwrite,
    }
    if "max_trials" in parameters:
        kwargs["max_trials"] = max_trials
    if "max_epochs" in parameters:
        kwargs["max_epochs"] = epochs
    kwargs.update(options or {})
    try:
        tuner = tuner_class(**kwargs)
    except ImportError as error:
        raise ImportError(
            f"{tuner_class.__name__} needs a package that is not installed: {error}. Install "
            "it (BayesianOptimization needs scikit-learn and scipy: pip install "
            "scikit-learn), or use tuner='random'."
        ) from error
    if "max_trials" not in parameters:
        # Hyperband takes no max_trials; its oracle's base class honours the cap.
        tuner.oracle.max_trials = max_trials
    default_first(tuner.oracle)
    near_default(tuner.oracle, change_rate)
    return tuner

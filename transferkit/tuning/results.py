"""What a search returns: one row per trial, and the best trial as a ready FineTuner."""

import gc
import glob
import os

import keras
import numpy as np
import pandas as pd
from keras_tuner import HyperParameters
from keras_tuner.engine import oracle as oracle_module
from keras_tuner.engine.trial import Trial

from transferkit.data import ImageSource
from transferkit.finetuner import FineTuner
from transferkit.tuning import selection
from transferkit.tuning.budget import at_larger_sizes
from transferkit.tuning.hypermodel import HISTORY_FILE, FineTunerHyperModel
from transferkit.tuning.inputs import join_sources
from transferkit.utils.log import logger

COMPLETED = "COMPLETED"
# Where KerasTuner's Tuner saves a trial's best-epoch weights (Keras 3), in the trial folder.
CHECKPOINT_FILE = "checkpoint.weights.h5"
_BOOKKEEPING = ("best_epoch", "seconds")


def search_trials(tuner) -> list[Trial]:
    """The tuner's trials in the order they started.

    The chief (or a lone tuner) asks its oracle; a worker, whose oracle is a
    client of the chief's, reads the trial files in the project folder.
    """
    oracle = tuner.oracle
    if isinstance(oracle, oracle_module.Oracle):
        order = list(oracle.start_order) + [
            trial_id for trial_id in oracle.trials if trial_id not in oracle.start_order
        ]
        return [oracle.trials[trial_id] for trial_id in order]
    files = glob.glob(os.path.join(tuner.project_dir, "trial_*", "trial.json"))
    return sorted((Trial.load(path) for path in files), key=lambda trial: trial.trial_id)


def results_frame(trials: list[Trial], hypermodel: FineTunerHyperModel) -> pd.DataFrame:
    """One row per trial: `trial_id`, `status`, the hyperparameters, the metrics, bookkeeping.

    Columns: `trial_id`, `status`, one column per hyperparameter that some
    trial used (search space order, then KerasTuner's own such as
    `tuner/epochs`), the objective (its best value), the other metrics at
    that epoch (`val_*` first), `best_epoch` (1-based) and `seconds`. A
    hyperparameter a trial did not use (inactive) is missing (NaN or None);
    so are the metrics of a failed trial.
    """
    objective = hypermodel.objective.name
    rows = []
    for trial in trials:
        row = {"trial_id": trial.trial_id, "status": trial.status}
        row.update(trial.hyperparameters.values)
        names = trial.metrics.metrics.keys()
        for name in names:
            row[name] = trial.metrics.get_last_value(name)
        if trial.status == COMPLETED and trial.score is not None:
            row[objective] = float(trial.score)
        rows.append(row)
    frame = pd.DataFrame(rows)
    space = [name for name in hypermodel.space.hyperparameters if name in frame.columns]
    metrics = [objective] + sorted(
        (
            column
            for column in frame.columns
            if column not in ("trial_id", "status", objective, *_BOOKKEEPING)
            and any(column in trial.metrics.metrics for trial in trials)
        ),
        key=lambda column: (not column.startswith("val_"), column),
    )
    others = sorted(
        column
        for column in frame.columns
        if column not in ("trial_id", "status", *space, *metrics, *_BOOKKEEPING)
    )
    columns = ["trial_id", "status", *space, *others, *metrics, *_BOOKKEEPING]
    frame = frame.reindex(columns=columns)
    frame["best_epoch"] = frame["best_epoch"].astype("Int64")
    return frame.reset_index(drop=True)


class TuneResult:
    """What `transferkit.tune` returns: the trials, the finalists, the chosen one, a plot.

    Attributes:
        results: `pandas.DataFrame`. One row per trial, in the order they
            started: `trial_id`, `status` (`"COMPLETED"`, or `"FAILED"` with
            NaN metrics), the hyperparameters (missing where a trial did not
            use one), the objective's best value (e.g. `val_accuracy`), the
            other metrics of that epoch, `best_epoch` (1-based) and `seconds`.
        finalists: `pandas.DataFrame` or None. With a confirmation split, one
            row per finalist (the default recipe, the default recipe at each
            larger image size, and the best other trials at full budget):
            `trial_id`, `default`, `anchor` (the default recipe at a larger
            size), its validation score, its score on the confirmation split
            (e.g. `confirmation_accuracy`), `validation_gain` and
            `confirmation_gain` over the default, `chosen`, and `reason` (why it
            was kept or passed over, e.g. "not clearly better than trial 00:
            right on 3 of the 5 confirmation images where they disagree (4
            needed)"). None without a confirmation split.
        objective: str. The column the search maximised (or minimised).
        stopped_by_budget: bool. Whether the time budget ended the search.
        tuner: the `keras_tuner.Tuner` that ran the search (its `oracle`,
            `project_dir`, `results_summary()`...).
        hypermodel: the `FineTunerHyperModel`.
        class_names: list of str. The classes, in output order.
    """

    def __init__(
        self,
        tuner,
        hypermodel: FineTunerHyperModel,
        train: ImageSource,
        validation: ImageSource,
        fit_options: dict,
        confirmation: ImageSource | None = None,
    ):
        self.tuner = tuner
        self.hypermodel = hypermodel
        self.objective = hypermodel.objective.name
        self.class_names = list(hypermodel.class_names)
        self._train = train
        self._validation = validation
        self._confirmation = confirmation
        self._fit_options = dict(fit_options)
        self.trials = search_trials(tuner)
        self.results = results_frame(self.trials, hypermodel)
        self.stopped_by_budget = bool(getattr(tuner, "stopped_by_budget", False))
        self.finalists = None
        self._chosen = None

    @property
    def completed(self) -> list[Trial]:
        return [trial for trial in self.trials if trial.status == COMPLETED]

    def _full_budget(self, trial: Trial) -> bool:
        """Whether a trial trained every epoch (Hyperband's early rounds train fewer)."""
        epochs = trial.hyperparameters.values.get("tuner/epochs", self.hypermodel.epochs)
        return epochs >= self.hypermodel.epochs

    @property
    def default_trial(self) -> Trial | None:
        """The completed trial of the default recipe at full budget, if the search ran it."""
        defaults = self.hypermodel.space.declare(HyperParameters())
        for trial in self.completed:
            if _searched_values(trial) == defaults and self._full_budget(trial):
                return trial
        return None

    @property
    def anchor_trials(self) -> list[Trial]:
        """The completed trials at full budget of the default recipe at a larger image size.

        One per larger size, the first started (a tuner may draw the same values
        again later, for their validation score), smallest size first: these
        are the trials `transferkit.tuning.budget.DefaultFirst` names before the
        search begins.
        """
        space = self.hypermodel.space
        defaults = space.declare(HyperParameters())
        anchors = []
        for values in at_larger_sizes(defaults, space.hyperparameters.get("image_size")):
            matching = (trial for trial in self.trials if _searched_values(trial) == values)
            trial = next(matching, None)
            if trial is not None and trial.status == COMPLETED and self._full_budget(trial):
                anchors.append(trial)
        return anchors

    @property
    def validation_best_trial(self) -> Trial:
        """The completed trial with the best objective on validation (the first on a tie).

        Raises:
            ValueError: if no trial completed.
        """
        completed = self.completed
        if not completed:
            raise ValueError(_no_success_message(self.trials, self.tuner))
        scores = np.array([trial.score for trial in completed], dtype="float64")
        best = scores.argmax() if self.hypermodel.objective.direction == "max" else scores.argmin()
        return completed[int(best)]

    @property
    def best_trial(self) -> Trial:
        """The chosen trial: the confirmation split's choice, else the best on validation.

        Raises:
            ValueError: if no trial completed.
        """
        if self._chosen is not None:
            return next(trial for trial in self.trials if trial.trial_id == self._chosen)
        return self.validation_best_trial

    @property
    def best_hyperparameters(self) -> dict:
        """The chosen trial's hyperparameter values (only those it used)."""
        return dict(self.best_trial.hyperparameters.values)

    # === Selection on the confirmation split ===
    def _validation_metric(self) -> str:
        return "val_pr_auc" if self.hypermodel.multi_label else "val_accuracy"

    def _confirmation_metric(self) -> str:
        return "mean_average_precision" if self.hypermodel.multi_label else "accuracy"

    def confirm(self, finalists: int = 3) -> pd.DataFrame:
        """Measures the finalists on the confirmation split and chooses the winner.

        The finalists are the default recipe, the default recipe at each
        larger image size, and the `finalists - 1` best other trials on
        validation, every one at full budget. The default recipe stays the winner
        unless a larger size is right on more of the validation and
        confirmation images together, or the best of the others beats the
        winner so far clearly on the confirmation split (see
        `transferkit.tuning.selection`). `tune` calls this when it holds out a
        confirmation split.

        Args:
            finalists: int. The default recipe and the best other trials,
                >= 1; the default recipe at a larger size is measured beside
                them (with `finalists=1`, the default recipe alone). Defaults
                to `3`.

        Returns:
            The `finalists` DataFrame (also kept as `self.finalists`).

        Raises:
            ValueError: without a confirmation split, or if no trial completed.
        """
        if self._confirmation is None:
            raise ValueError(
                "This search held out no confirmation split: run tune(..., "
                "confirmation_split=0.2) to measure the finalists on images the search did "
                "not choose on."
            )
        if not self.completed:
            raise ValueError(_no_success_message(self.trials, self.tuner))
        default = self.default_trial
        anchors = self.anchor_trials if default is not None else []
        full = [trial for trial in self.completed if self._full_budget(trial)]
        if not full:
            full = self.completed
        reverse = self.hypermodel.objective.direction == "max"
        others = sorted(
            (trial for trial in full if trial is not default and trial not in anchors),
            key=lambda trial: trial.score,
            reverse=reverse,
        )
        if default is None:
            logger.warning(
                "the default recipe has no completed trial at full budget in this search, so "
                "the finalists are compared with each other only"
            )
            chosen_trials = others[: max(1, finalists)]
        elif finalists > 1:
            chosen_trials = [default, *anchors, *others[: finalists - 1]]
        else:
            chosen_trials = [default]
        measured = []
        batch_size = self._fit_options.get("batch_size", 32)
        for trial in chosen_trials:
            finetuner = self._load_trial(trial)
            report = finetuner.evaluate(self._confirmation, batch_size=batch_size)
            correct = None
            if not self.hypermodel.multi_label:
                predictions = report.predictions
                correct = (predictions["label"] == predictions["true_label"]).to_numpy()
            validation = trial.metrics.get_last_value(self._validation_metric())
            measured.append(
                selection.Finalist(
                    trial_id=trial.trial_id,
                    default=trial is default,
                    validation=float("nan") if validation is None else float(validation),
                    confirmation=float(report.metrics[self._confirmation_metric()]),
                    correct=correct,
                    anchor=trial in anchors,
                )
            )
            del finetuner
            keras.backend.clear_session()
            gc.collect()
        images = {
            "validation_images": _count(self._validation),
            "confirmation_images": len(self._confirmation),
        }
        winner = selection.choose(measured, self.hypermodel.multi_label, **images)
        self._chosen = winner.trial_id
        why = selection.reasons(measured, self.hypermodel.multi_label, **images, chosen=winner)
        self.finalists = selection.finalists_frame(
            measured, winner, self._validation_metric(), self._confirmation_metric(), why
        )
        logger.info(
            f"finalists on {len(self._confirmation)} confirmation images: "
            + ", ".join(
                f"trial {f.trial_id}{' (default)' if f.default else ''} {f.confirmation:.4f}"
                for f in measured
            )
            + f"; chosen: trial {winner.trial_id}"
        )
        return self.finalists

    def _validation_pick(self) -> pd.Series | None:
        """The finalists' row of the trial best on validation (what a search alone would pick)."""
        if self.finalists is None or not self.finalists["default"].any():
            return None
        metric = self._validation_metric()
        return self.finalists.loc[self.finalists[metric].idxmax()]

    @property
    def validation_gain(self) -> float | None:
        """How much the trial best on validation beat the default there (None: not measured)."""
        row = self._validation_pick()
        return None if row is None else float(row["validation_gain"])

    @property
    def confirmed_gain(self) -> float | None:
        """How much that same trial beat the default on the confirmation split."""
        row = self._validation_pick()
        return None if row is None else float(row["confirmation_gain"])

    @property
    def gain_survived(self) -> float | None:
        """The share of the validation gain left on the confirmation split (1: all of it).

        None when not measured, or when no trial beat the default on validation.
        """
        gain, confirmed = self.validation_gain, self.confirmed_gain
        if gain is None or not gain > 0:
            return None
        return confirmed / gain

    # === The chosen model ===
    def _load_trial(self, trial: Trial) -> FineTuner:
        """A trial as a FineTuner with the weights it saved at its best epoch."""
        hp = trial.hyperparameters.copy()
        finetuner = self.hypermodel.make_finetuner(hp)
        folder = os.path.join(self.tuner.project_dir, f"trial_{trial.trial_id}")
        path = os.path.join(folder, CHECKPOINT_FILE)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"Trial {trial.trial_id} saved no weights at {path!r} (a worker on another "
                "machine ran it, or the folder was cleaned). Call best_finetuner(retrain=True) "
                "to train it again with its hyperparameters."
            )
        finetuner.build(self.class_names)
        finetuner.model.load_weights(path)
        history = os.path.join(folder, HISTORY_FILE)
        if os.path.exists(history):
            finetuner.history = pd.read_csv(history)
        logger.info(f"loaded trial {trial.trial_id}'s best-epoch weights from {path}")
        if finetuner.model.head.multi_label and self._validation is not None:
            # The weights file holds no thresholds: choose them for these weights, as the
            # trial's fit did, on the search's validation images.
            finetuner.choose_thresholds(
                self._validation, batch_size=self._fit_options.get("batch_size", 32)
            )
        return finetuner

    def best_finetuner(self, retrain: bool = False, refit: bool = False) -> FineTuner:
        """The chosen trial as a `FineTuner`, ready to `predict`, `evaluate` and `save`.

        By default it is rebuilt from the trial's hyperparameters and given
        the weights the trial saved at its best epoch: exactly the model whose
        validation score the search reported, at no cost. Its `history` is the
        trial's. With `retrain=True` it is trained again from scratch with
        those hyperparameters on the same data and split; use this when the
        weights are not at hand (a worker on another machine ran the trial).
        With `refit=True` it is trained again on every image the search had:
        training, validation and confirmation images together, for the trial's
        epochs, with no validation of its own (so the last epoch's weights are
        kept). Its settings (backbone, head, schedule, augmentation, image
        size) are a `FineTuner`'s, so they travel with `save`.

        Args:
            retrain: bool. Train again on the search's split instead of
                loading the saved weights. Defaults to `False`.
            refit: bool. Train again on training + validation (+ confirmation)
                images. Defaults to `False`.

        Returns:
            A built `FineTuner`.

        Raises:
            FileNotFoundError: if the trial's weights are missing and neither
                `retrain` nor `refit` is set.
            ValueError: if both `retrain` and `refit` are set, or `refit` with
                data given as a `tf.data.Dataset`.
        """
        if retrain and refit:
            raise ValueError(
                "Pass retrain=True (train again on the search's split) or refit=True (train "
                "again on all its images), not both."
            )
        trial = self.best_trial
        hp = trial.hyperparameters.copy()
        epochs = hp.values.get("tuner/epochs", self.hypermodel.epochs)
        if refit:
            finetuner = self.hypermodel.make_finetuner(hp)
            finetuner.validation_split = 0.0
            everything = join_sources(self._train, self._validation, self._confirmation)
            logger.info(
                f"refitting trial {trial.trial_id} on {len(everything)} images for {epochs} "
                "epochs (training, validation and confirmation images together)"
            )
            finetuner.fit(everything, epochs=epochs, verbose=0, **self._fit_options)
            return finetuner
        if retrain:
            finetuner = self.hypermodel.make_finetuner(hp)
            finetuner.fit(
                self._train,
                validation_data=self._validation,
                epochs=epochs,
                verbose=0,
                **self._fit_options,
            )
            return finetuner
        return self._load_trial(trial)

    def plot(self, path: str | os.PathLike | None = None):
        """Plots the search: the objective per trial and against each hyperparameter.

        Args:
            path: str, path or None. Where to save the figure as a PNG.
                Defaults to `None`.

        Returns:
            The `matplotlib.figure.Figure` (see `transferkit.plots.plot_search`).
        """
        from transferkit.plots import plot_search

        # best_epoch is bookkeeping, not a hyperparameter to plot against.
        frame = self.results.drop(columns=list(_BOOKKEEPING), errors="ignore")
        return plot_search(frame, metric=self.objective, path=path)

    def __repr__(self) -> str:
        completed = self.completed
        if not completed:
            return f"TuneResult({len(self.trials)} trials, none completed)"
        best = self.best_trial
        return (
            f"TuneResult({len(self.trials)} trials, {len(completed)} completed; best "
            f"{self.objective}={best.score:.4f} in trial {best.trial_id}: "
            f"{best.hyperparameters.values})"
        )


def _count(source: ImageSource) -> int:
    """The images of a source, or 0 when a tf.data.Dataset does not tell without iterating."""
    try:
        return len(source)
    except TypeError:
        return 0


def _searched_values(trial: Trial) -> dict:
    """A trial's hyperparameter values without KerasTuner's own (`tuner/epochs`...)."""
    return {
        name: value
        for name, value in trial.hyperparameters.values.items()
        if not name.startswith("tuner/")
    }


def _no_success_message(trials: list[Trial], tuner) -> str:
    failed = [trial for trial in trials if trial.status != COMPLETED]
    message = (
        f"The search ended with no successful trial ({len(trials)} trial(s) in "
        f"{tuner.project_dir}). "
    )
    reasons = [trial.message for trial in failed if trial.message]
    if reasons:
        last_line = reasons[0].strip().splitlines()[-1]
        message += (
            f"Trial {failed[0].trial_id} failed with: {last_line}\nIts traceback:\n{reasons[0]}"
        )
    else:
        message += "No trial ran: is max_trials already reached in this project (overwrite=True)?"
    return message


def raise_if_no_success(result: TuneResult) -> None:
    """KerasTuner records a failed trial and goes on; a search with no success is an error.

    Raises:
        RuntimeError: with the first failure's error and traceback.
    """
    if not result.completed:
        raise RuntimeError(_no_success_message(result.trials, result.tuner))
    failed = [trial for trial in result.trials if trial.status != COMPLETED]
    if failed:
        reason = (failed[0].message or "").strip().splitlines()[-1:] or ["no message"]
        logger.warning(
            f"{len(failed)} of {len(result.trials)} trials failed (trial "
            f"{failed[0].trial_id}: {reason[0]}); results has them with status FAILED"
        )

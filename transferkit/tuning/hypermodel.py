"""FineTunerHyperModel: the whole two-phase recipe as a KerasTuner `HyperModel`.

`build(hp)` builds a `FineTuner`'s model from the trial's hyperparameters and
`fit(hp, model, ...)` runs the FineTuner's own `fit`, so each trial trains the
head on cached backbone features while the backbone is frozen: trials that share
a backbone (the same weights, data and input size) compute its features once.
"""

import gc
import os
import time
from collections.abc import Mapping, Sequence

import keras
import keras_tuner
import pandas as pd

from transferkit import defaults
from transferkit.features import FeatureCache
from transferkit.finetuner import FineTuner
from transferkit.heads import ClassificationHead
from transferkit.schedules import Freeze, FreezeUnfreeze, Schedule
from transferkit.tuning.budget import StopAtDeadline
from transferkit.tuning.space import UNFREEZE_BLOCKS, SearchSpace
from transferkit.tuning.trials import schedule_from, trial_callbacks
from transferkit.utils.log import logger

# Columns of a FineTuner history that are not metrics.
_NOT_METRICS = ("epoch", "phase", "learning_rate", "seconds")
# The metrics a FineTuner's history has: it compiles with metrics=["accuracy"], or for
# multi-label data with binary accuracy and the precision-recall AUC.
OBJECTIVES = (
    "val_accuracy",
    "val_loss",
    "accuracy",
    "loss",
    "val_pr_auc",
    "val_binary_accuracy",
    "pr_auc",
    "binary_accuracy",
)
# Single-label objectives, and what replaces them for multi-label data.
MULTI_LABEL_OBJECTIVES = {
    "val_accuracy": "val_pr_auc",
    "accuracy": "pr_auc",
}
HISTORY_FILE = "history.csv"


def objective_direction(objective: str) -> str:
    """`"min"` for losses and errors, `"max"` for everything else (accuracy, AUC...)."""
    return "min" if ("loss" in objective or "error" in objective) else "max"


class FineTunerHyperModel(keras_tuner.HyperModel):
    """The two-phase fine-tuning recipe as a KerasTuner `HyperModel`.

    Searches, by default, the backbone among `backbones`, the head's depth,
    width and dropout, the head's learning rate, label smoothing, the strength of added
    augmentation (random shifts and zooms), whether and after how many frozen
    epochs the backbone unfreezes, how many of its top blocks unfreeze, the
    fine-tuning learning rate and the layer-wise decay of the backbone's rates
    (`lowest_block_multiplier`); the image size when `input_shape` is given
    (that side and one about 25 % larger) or `search_space` lists sizes.
    Every default is what `FineTuner` does
    when left alone, so the default trial is the default recipe:

    | name | default | range |
    | --- | --- | --- |
    | `backbone` | first of `backbones` | `backbones` |
    | `image_size` | the side of `input_shape` (when given) | it and ~1.25x it, or listed sizes |
    | `head_depth` | `0` (linear head) | int 0-2 |
    | `head_units` | `256` (when `head_depth` > 0) | 64, 128, 256, 512 |
    | `dropout` | `0.2` | 0.0-0.5, step 0.1 |
    | `learning_rate` | `1e-2` | 1e-4 to 1e-1, log |
    | `augmentation_strength` | `0.0` (`augmentation` alone) | 0.0-0.2, step 0.1 |
    | `label_smoothing` | `0.0` | 0.0-0.2, step 0.1 |
    | `unfreeze` | `True` (`False` when `epochs` is 1) | True, False |
    | `frozen_epochs` | `1` (when `unfreeze`) | int 1 to `epochs - 1` |
    | `fine_tune_learning_rate` | `1e-4` (when `unfreeze`) | 1e-6 to 1e-3, log |
    | `lowest_block_multiplier` | `0.1` (when `unfreeze`) | 0.01 to 1, log |
    | `<backbone>/unfreeze_blocks` | all its blocks (see below) | int 1 to its blocks |

    Conditional hyperparameters are active only in their branch, so a trial
    carries just the values it uses: `head_units` in a `conditional_scope` of
    `head_depth` > 0, `frozen_epochs`, `fine_tune_learning_rate` and
    `lowest_block_multiplier` in one of `unfreeze`, and each backbone's own
    `<backbone>/unfreeze_blocks` (its range is that backbone's number of
    blocks) under both conditions: `unfreeze` and `backbone` being that
    backbone.

    Use it with any KerasTuner tuner (or through `transferkit.tune`, which
    resolves the data and reads the results for you). `fit` takes the data in
    any form `FineTuner.fit` accepts and returns the best value of the
    objective with the other metrics of that epoch, its `best_epoch` and the
    trial's `seconds`. It saves the whole model's weights at the best epoch
    to the trial's checkpoint (also during the frozen phase, where only the
    head runs), so KerasTuner's `get_best_models()` and Hyperband's
    continuation both work, and clears the Keras session when done.

    Args:
        class_names: sequence of str. The classes, in output order; the models
            are built before any data is seen.
        backbones: str or sequence of str. Backbone names to choose among.
            Defaults to `"resnet50"`.
        epochs: int. Epochs per trial, frozen ones included (Hyperband's
            `max_epochs`). Defaults to `5`.
        search_space: dict or None. Overrides by name: a value fixes a
            hyperparameter, a list makes it a choice among those values (the
            first is the default), a dict changes arguments of its default
            range (`{"max_value": 1e-2}`), a keras_tuner hyperparameter
            (`keras_tuner.engine.hyperparameters.Float(...)`) replaces it.
            `"unfreeze_blocks"` applies to every backbone. A head-only search
            is `{"unfreeze": False}`. Defaults to `None`.
        weights: str, path, None or dict. As `FineTuner`'s `weights`; a dict
            maps backbone names to their weights (a weights file fits one
            backbone). Defaults to `"imagenet"`.
        input_shape: tuple or int or None. As `FineTuner`'s. Defaults to each
            backbone's default size.
        optimizer: str. As `FineTuner`'s. Defaults to `"adam"`.
        augmentation: str, layer or None. As `FineTuner`'s. Defaults to
            `"flip"`.
        cached_views: int or None. As `FineTuner`'s. Defaults to `None`.
        cache_features: bool or `FeatureCache`. Whether frozen epochs train
            the head on cached features (shared by every trial in the process;
            pass a `FeatureCache(persist=True)` to share them across processes
            too). `False` runs the backbone in every frozen epoch, as plain
            KerasTuner would. Defaults to `True`.
        validation_split: float. Used only when `fit` gets no
            `validation_data`. Defaults to `0.2`.
        objective: str. The history column to optimise: `"val_accuracy"`
            (maximised), `"val_loss"` (minimised), `"accuracy"` or `"loss"`.
            Defaults to `"val_accuracy"`.
        seed: int or None. Seeds each trial's FineTuner, so trials that share a
            backbone start from the same weights (and, without pretrained
            weights, share cached features). Defaults to `0`.
        name: str or None. KerasTuner's name for the hypermodel.
        multi_label: bool. Whether the data is multi-label (a sigmoid per class,
            thresholds chosen on the validation data in each trial); `tune`
            sets it from the data. Defaults to `False`.

    Example:

    ```python
    import keras_tuner
    from transferkit.tuning import FineTunerHyperModel

    hypermodel = FineTunerHyperModel(["cat", "dog"], ["mobilenetv2", "efficientnetb0"], epochs=4)
    tuner = keras_tuner.RandomSearch(hypermodel, objective="val_accuracy", max_trials=10)
    tuner.search("data/train", validation_data="data/val", epochs=4)
    ```
    """

    def __init__(
        self,
        class_names: Sequence[str],
        backbones: str | Sequence[str] = defaults.BACKBONE,
        *,
        epochs: int = 5,
        search_space: Mapping | None = None,
        weights: "str | os.PathLike | None | Mapping" = "imagenet",
        input_shape: tuple[int, int, int] | int | None = None,
        optimizer: str = defaults.OPTIMIZER,
        augmentation=defaults.AUGMENTATION,
        cached_views: int | None = None,
        cache_features: "bool | FeatureCache" = True,
        validation_split: float = defaults.VALIDATION_SPLIT,
        objective: str = "val_accuracy",
        seed: int | None = 0,
        name: str | None = None,
        multi_label: bool = False,
    ):
        super().__init__(name=name)
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"`epochs` must be an integer >= 1. Received: epochs={epochs!r}")
        class_names = [str(name) for name in class_names]
        if len(class_names) < 2:
            raise ValueError(f"A classifier needs at least 2 classes. Received: {class_names}")
        if objective not in OBJECTIVES:
            raise ValueError(
                f"The objective must be a column of the FineTuner's history, one of "
                f"{list(OBJECTIVES)}. Received: objective={objective!r}"
            )
        if isinstance(input_shape, int):
            input_shape = (input_shape, input_shape, 3)
        self.class_names = class_names
        self.epochs = epochs
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self.space = SearchSpace(backbones, epochs, search_space, self.input_shape)
        self.backbones = self.space.backbones
        self.weights = _weights_by_backbone(weights, self.backbones)
        self.optimizer = optimizer
        self.augmentation = augmentation
        self.cached_views = cached_views
        self.cache_features = cache_features
        self.validation_split = validation_split
        self.objective = keras_tuner.Objective(objective, objective_direction(objective))
        self.seed = seed
        self.multi_label = bool(multi_label)
        # The FineTuner behind the model `build` returned last, for `fit`.
        self._finetuner = None
        self._built_at = None
        # Set by a time-budgeted tuner during its search: trials stop at the deadline.
        self.deadline = None
        self.time_budget = None
        # Every trial's FineTuner is this one with the trial's changes; making it
        # validates the settings here rather than in every trial.
        self.settings = FineTuner(
            self.backbones[0],
            weights=self.weights[self.backbones[0]],
            input_shape=self.input_shape,
            optimizer=optimizer,
            augmentation=augmentation,
            cached_views=cached_views,
            cache_features=cache_features,
            validation_split=validation_split,
            multi_label=self.multi_label or None,
            seed=seed,
        )
        self.make_finetuner(keras_tuner.HyperParameters())

    # === The search space ===
    def declare_hyperparameters(self, hp: keras_tuner.HyperParameters) -> None:
        """Declares the whole search space on `hp` (KerasTuner calls this first)."""
        self.space.declare(hp)

    def make_finetuner(self, hp: keras_tuner.HyperParameters) -> FineTuner:
        """An unbuilt `FineTuner` with a trial's hyperparameters (defaults for the others).

        Args:
            hp: `keras_tuner.HyperParameters`. The trial's; missing ones are
                declared with their defaults.

        Returns:
            A `FineTuner`, not yet built or trained.
        """
        values = self.space.declare(hp)
        return self.settings.with_settings(**self.trial_changes(values))

    def trial_changes(self, values: Mapping) -> dict:
        """The FineTuner settings a trial's hyperparameter `values` change."""
        backbone, size = values["backbone"], values.get("image_size")
        return {
            "backbone": backbone,
            "weights": self.weights[backbone],
            "head": ClassificationHead(
                hidden_units=[values.get("head_units") or 0] * values["head_depth"],
                dropout=values["dropout"],
                multi_label=self.multi_label,
                label_smoothing=values.get("label_smoothing", 0.0),
            ),
            "input_shape": self.input_shape if size is None else (size, size, 3),
            "schedule": self.schedule(values),
            "augmentation": with_strength(
                self.augmentation, values.get("augmentation_strength", 0.0), self.seed
            ),
        }

    def schedule(self, values: Mapping) -> Schedule:
        """The schedule a trial's values describe: `Freeze` or `FreezeUnfreeze`."""
        if not values["unfreeze"]:
            return Freeze(learning_rate=values["learning_rate"])
        backbone = values["backbone"]
        blocks = values[f"{backbone}/{UNFREEZE_BLOCKS}"]
        return FreezeUnfreeze(
            frozen_epochs=values["frozen_epochs"],
            # All blocks is what FreezeUnfreeze calls None (and names "unfrozen").
            unfreeze_blocks=None if blocks == self.space.num_blocks[backbone] else blocks,
            learning_rate=values["learning_rate"],
            fine_tune_learning_rate=values["fine_tune_learning_rate"],
            lowest_block_multiplier=values.get(
                "lowest_block_multiplier", defaults.LOWEST_BLOCK_MULTIPLIER
            ),
        )

    # === KerasTuner's HyperModel ===
    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """Builds the classifier of a trial (backbone, preprocessing and head)."""
        self._built_at = time.perf_counter()
        finetuner = self.make_finetuner(hp)
        finetuner.build(self.class_names)
        self._finetuner = finetuner
        return finetuner.model

    def fit(
        self,
        hp: keras_tuner.HyperParameters,
        model: keras.Model,
        data,
        labels=None,
        *,
        validation_data=None,
        epochs: int | None = None,
        initial_epoch: int = 0,
        batch_size: int = defaults.BATCH_SIZE,
        callbacks: list | None = None,
        class_weight: dict | None = None,
        shuffle: bool = True,
        verbose=0,
    ) -> dict:
        """Trains a trial's model with the FineTuner's two-phase `fit`.

        Args:
            hp: `keras_tuner.HyperParameters`. The trial's.
            model: `keras.Model`. What `build(hp)` returned (Hyperband may have
                loaded a previous trial's weights into it).
            data: The training images, in any form `FineTuner.fit` accepts.
            labels: array-like or None. Labels for a list of paths or an array.
            validation_data: Validation images in any such form; `None` holds
                out `validation_split` of `data`. Defaults to `None`.
            epochs: int or None. Epochs of the trial. Defaults to `epochs` of
                the hypermodel.
            initial_epoch: int. Epoch to continue from (Hyperband's later
                rounds): the schedule's phases are cut to start there.
                Defaults to `0`.
            batch_size: int. Defaults to `32`.
            callbacks: list or None. Callbacks, KerasTuner's included.
            class_weight: dict or None. Class index -> weight.
            shuffle: bool. Defaults to `True`.
            verbose: 0, 1, 2 or "auto". Keras's progress output. Defaults to
                `0`.

        Returns:
            A dict of the objective's best value and the other metrics of
            that epoch, plus `best_epoch` (1-based) and `seconds`, as
            KerasTuner records them.

        Raises:
            ValueError: if the history has no objective column (no validation
                data).
        """
        finetuner, started = self._finetuner, self._built_at
        self._finetuner = self._built_at = None
        if finetuner is None or finetuner.model is not model:
            # A model this hypermodel did not just build (KerasTuner's load_model, a user):
            # wrapped with the trial's settings (the shared feature cache among them).
            settings = self.make_finetuner(hp).settings()
            finetuner, started = FineTuner.from_model(model, **settings), time.perf_counter()
        epochs = self.epochs if epochs is None else epochs
        callbacks, checkpoint, trial = trial_callbacks(callbacks)
        if self.deadline is not None:
            callbacks.append(StopAtDeadline(self.deadline, self.time_budget))
        schedule = schedule_from(finetuner.schedule, initial_epoch)
        try:
            history = finetuner.fit(
                data,
                labels,
                validation_data=validation_data,
                epochs=epochs,
                batch_size=batch_size,
                callbacks=callbacks,
                schedule=schedule,
                class_weight=class_weight,
                shuffle=shuffle,
                verbose=verbose,
            )
            metrics = self._best_metrics(history)
            metrics["seconds"] = time.perf_counter() - started
            if checkpoint is not None:
                history.to_csv(
                    os.path.join(os.path.dirname(checkpoint), HISTORY_FILE), index=False
                )
            name = self.objective.name
            where = "" if trial is None else f"trial {trial.trial_id}"
            worker = os.environ.get("KERASTUNER_TUNER_ID")
            where += f" ({worker})" if worker and where else ""
            logger.info(
                f"{where or 'trial'}: best {name} {metrics[name]:.4f} at epoch "
                f"{metrics['best_epoch']} in {metrics['seconds']:.1f}s"
            )
            return metrics
        finally:
            # Nothing of this trial may outlive it (keras-tuner issues 873, 1031):
            # drop our references and Keras's global state.
            del finetuner, model
            keras.backend.clear_session()
            gc.collect()

    def _best_metrics(self, history: pd.DataFrame) -> dict:
        name = self.objective.name
        if name not in history.columns or history[name].isna().all():
            raise ValueError(
                f"The objective {name!r} is not in the training history (columns: "
                f"{list(history.columns)}). Give the search validation data "
                "(validation_data=... or validation_split > 0), or choose an objective "
                "among the history's columns."
            )
        values = history[name]
        # The first best epoch, as the checkpoint callback keeps it.
        best = values.idxmax() if self.objective.direction == "max" else values.idxmin()
        row = history.loc[best]
        metrics = {
            column: float(row[column])
            for column in history.columns
            if column not in _NOT_METRICS and pd.notna(row[column])
        }
        metrics["best_epoch"] = int(row["epoch"])
        return metrics


def with_strength(augmentation, strength: float, seed: int | None):
    """`augmentation`, followed by random shifts and zooms of up to `strength` of the image.

    A strength of 0 returns `augmentation` itself, so the default trial's
    augmentation is the FineTuner's default.
    """
    if not strength:
        return augmentation
    if augmentation is None or augmentation == "none":
        layers = []
    elif augmentation == "flip":
        layers = [keras.layers.RandomFlip("horizontal", seed=seed)]
    elif isinstance(augmentation, keras.layers.Layer):
        layers = [augmentation]
    else:
        layers = list(augmentation)
    return layers + [
        keras.layers.RandomTranslation(strength, strength, fill_mode="reflect", seed=seed),
        keras.layers.RandomZoom(strength, fill_mode="reflect", seed=seed),
    ]


def _weights_by_backbone(weights, backbones: list[str]) -> dict:
    if isinstance(weights, Mapping):
        missing = [name for name in backbones if name not in weights]
        if missing:
            raise ValueError(
                f"`weights` has no entry for backbone(s) {missing}. Received weights for "
                f"{sorted(weights)}."
            )
        return {name: weights[name] for name in backbones}
    if weights not in ("imagenet", None) and len(backbones) > 1:
        raise ValueError(
            f"A weights file fits one backbone, but the search has {backbones}. Pass a dict "
            "{backbone: weights}, e.g. weights={'mobilenet': 'mobilenet.weights.h5', "
            f"'resnet50': 'imagenet'}}. Received: weights={weights!r}"
        )
    return dict.fromkeys(backbones, weights)

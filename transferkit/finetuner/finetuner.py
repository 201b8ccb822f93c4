"""The FineTuner: a pretrained backbone fine-tuned into an image classifier.

The FineTuner composes; it holds no training loop of its own. Its settings are
checked in `transferkit.finetuner.settings`; a `fit` prepares a
`transferkit.training.Run` and hands each phase to a `transferkit.training.Trainer`,
with run hooks for the history, the best weights, checkpoints, calibration and
thresholds; predictions and reports come from `transferkit.evaluation`, and
`explain`, `calibrate` and `export` forward to the `ImageClassifier`.
"""

import contextlib
import inspect
import os

import keras
import pandas as pd

from transferkit import defaults
from transferkit import schedules as schedules_module
from transferkit.backbones import get_backbone_spec
from transferkit.data import ImageSource, as_image_source, stratified_split
from transferkit.evaluation import (
    EvaluationReport,
    check_multi_label,
    choose_classifier_thresholds,
    evaluate_classifier,
    predict_frame,
)
from transferkit.features import FeatureCache, default_cache
from transferkit.finetuner.config import finetuner_config, finetuner_kwargs
from transferkit.finetuner.settings import (
    check_batch_size,
    check_cacheable,
    check_class_names,
    check_same_classes,
    check_settings,
    check_training_classes,
    check_validation,
)
from transferkit.heads import ClassificationHead
from transferkit.interpret.calibration import CalibrationResult
from transferkit.interpret.gradcam import Explanation
from transferkit.interpret.thresholds import DEFAULT_THRESHOLD_METRIC
from transferkit.interpret.tta import tta_views
from transferkit.models import ImageClassifier
from transferkit.models.building import build_classifier
from transferkit.models.legacy import finetuner_settings
from transferkit.models.loading import load_classifier
from transferkit.optimizers import get_optimizer
from transferkit.precision import resolve_precision
from transferkit.training import Run, RunCheckpoint, Trainer, fit_hooks
from transferkit.training.checkpoint import load_checkpoint_model, resume_state
from transferkit.training.class_weights import resolve_class_weight
from transferkit.training.distribution import (
    agree,
    check_distribute,
    check_distributed_fit,
    is_chief,
    mirrored_copy,
    read_tf_config,
    resolve_strategy,
)
from transferkit.training.freezing import (
    Trainable,
    describe_trainable,
    set_trainable,
    unfreeze_top,
)
from transferkit.training.lr_finder import LRFinderResult
from transferkit.utils.files import atomic_path
from transferkit.utils.log import logger


class FineTuner:
    """Fine-tunes a pretrained backbone into an image classifier.

    The model (`self.model`, an `ImageClassifier`) takes raw RGB images (values
    0-255, any size): it resizes them and applies the backbone's own
    preprocessing, so predictions and saved models need no separate
    preprocessing step. Training follows a `Schedule`; the default warms the
    head up on a frozen backbone (training it on cached backbone features),
    then unfreezes the backbone at discriminative learning rates with
    BatchNorm kept in inference mode.

    As with scikit-learn estimators, the constructor only stores its arguments
    (each under its own name; `get_config()` returns them): the model is built
    by the first `fit` (or by `build()`), when the classes are known. `save`
    keeps the settings inside the `.keras` file, and `transferkit.load` gives
    back a FineTuner with the same settings and weights.

    Args:
        backbone: str or `keras.Model`. A name from
            `transferkit.backbones.list_backbones()` (such as `"resnet50"`,
            `"mobilenet"`, `"efficientnetv2b0"`) or your own feature extractor.
            Defaults to `"resnet50"`.
        num_classes: int or None. Number of classes; `None` takes it from the
            training data. When given, the data must agree. Defaults to `None`.
        weights: str, path or None. `"imagenet"` (Keras's own download and
            cache), `None` (random initialisation) or the path to a weights file
            for the backbone without its top. Defaults to `"imagenet"`.
        head: `ClassificationHead` or None. The head's settings (pooling, dense
            blocks, dropout); its `num_classes` is filled in from the data.
            `None` means `ClassificationHead()`. Defaults to `None`.
        input_shape: tuple or int or None. The backbone's input size, as
            `(height, width, 3)` or one int for a square. Images of any size are
            resized to it. Defaults to the backbone's default size.
        schedule: str or `Schedule`. Which part of the backbone trains when:
            `"freeze_unfreeze"`, `"freeze"`, `"gradual_unfreeze"`,
            `"no_freeze"` or a `transferkit.schedules.Schedule`. Defaults to
            `"freeze_unfreeze"`.
        optimizer: str. `"adam"`, `"adamw"` or `"sgd"` (each with per-layer
            learning-rate multipliers). Defaults to `"adam"`.
        augmentation: str, layer or None. Random augmentation of training
            batches: `"flip"` (horizontal flips), `None`, or Keras
            preprocessing layers. Defaults to `"flip"`.
        cached_views: int or None. Views of each training image kept in the
            feature cache: the plain image, then `cached_views - 1` augmented
            ones; each costs one pass of the backbone. `None` picks by the
            frozen phase's role: `2` when it ends the run (a head-only run, where
            the cached views are all the augmentation the head ever sees), `1`
            when the backbone unfreezes after it (a warm-up: the unfrozen epochs
            see fresh augmentation, and a second view would double the warm-up's
            cost; `python -m bench.keras_recipe`). Defaults to `None`.
        cache_features: bool or `FeatureCache`. Whether frozen phases train the
            head on features computed once rather than running the backbone in
            every epoch. `True` uses the cache shared by the whole process
            (`transferkit.features.default_cache()`: in memory up to 4 GiB, then
            on disk); pass a `FeatureCache` to choose its folder and budget.
            Defaults to `True`.
        jit_compile: bool. Whether Keras compiles training and feature
            extraction with XLA. On 2 CPU cores XLA made feature extraction
            several times slower (compilation dominates), so it is off by
            default. Defaults to `False`.
        precision: str. The dtype policy training computes in: `"float32"`,
            `"mixed_bfloat16"`, `"mixed_float16"` (with loss scaling) or
            `"auto"` (bfloat16 where the hardware computes it natively and the
            backbone is measured faster in it, float16 on GPUs without
            bfloat16, else float32; see `transferkit.precision`). Only `fit`,
            `fit_phase` and `find_lr` compute in it: the head's output, the
            cached features, `self.model` between runs and every saved or
            exported model stay float32. Defaults to `"float32"`.
        validation_split: float. Fraction of the training data held out
            (stratified, seeded) when `fit` gets no `validation_data`; `0`
            disables it. Defaults to `0.2`.
        path_column: str. Column of file paths in a DataFrame. Defaults to
            `"path"`.
        label_column: str or list of str. Column of labels in a DataFrame
            (for multi-label data, lists of classes or delimited text), or a
            list of 0/1 columns, one per class (multi-label). Defaults to
            `"label"`.
        multi_label: bool or None. Whether an image may belong to several
            classes at once (or to none): one sigmoid per class, binary
            cross-entropy, per-class decision thresholds chosen on validation
            data. `None` detects it from the training data (lists of classes,
            a column per class, multi-hot rows, a `label_delimiter`); `True`
            also reads single labels (a folder of class sub-folders) as
            multi-label; `False` with multi-label data is an error. Defaults
            to `None`.
        label_delimiter: str or None. Splits text labels such as
            `"cat|dog"` into classes (multi-label data in a DataFrame or a
            CSV); an empty text is an image of no class. Defaults to `None`.
        seed: int or None. Makes the split, shuffling, augmentation and
            initialisation repeatable. Defaults to `None`.
        distribute: str, `tf.distribute.Strategy` or None. Train on several
            devices or machines: `"auto"` (a `MultiWorkerMirroredStrategy`
            when `TF_CONFIG` names a cluster, a `MirroredStrategy` when the
            machine has several GPUs, else one device), `"mirrored"`,
            `"multi_worker"`, or your own strategy. `batch_size` is the global
            batch, split over the replicas, and the learning rates are those of
            one device at that batch size. Only the chief writes files. When
            `TF_CONFIG` names a cluster, the constructor joins it (TensorFlow
            requires the cluster before any other TensorFlow work: create the
            FineTuner, or `transferkit.resolve_strategy("auto")`, first). See
            the "Scaling out" guide. Defaults to `None` (one device).

    Example:

    ```python
    import transferkit as tk
    ft = tk.FineTuner("resnet50", num_classes=2)
    ft.fit("data/train", epochs=5)
    ft.predict(["cat.jpg", "dog.jpg"])   # a pandas DataFrame
    ```
    """

    def __init__(
        self,
        backbone: str | keras.Model = defaults.BACKBONE,
        num_classes: int | None = None,
        *,
        weights: str | os.PathLike | None = defaults.WEIGHTS,
        head: ClassificationHead | None = None,
        input_shape: tuple[int, int, int] | int | None = None,
        schedule: str | schedules_module.Schedule = "freeze_unfreeze",
        optimizer: str = defaults.OPTIMIZER,
        augmentation=defaults.AUGMENTATION,
        cached_views: int | None = None,
        cache_features: "bool | FeatureCache" = True,
        jit_compile: bool = False,
        precision: str = defaults.PRECISION,
        validation_split: float = defaults.VALIDATION_SPLIT,
        path_column: str = "path",
        label_column: str | list[str] = "label",
        multi_label: bool | None = None,
        label_delimiter: str | None = None,
        seed: int | None = None,
        distribute=None,
    ):
        arguments = _arguments(locals())
        check_distribute(distribute)
        if distribute in ("auto", "multi_worker") and read_tf_config() is not None:
            # A cluster must form before TensorFlow runs anything in the process, and
            # the checks below already do (a layer makes a variable): join it first.
            self._strategy, self._resolved = resolve_strategy(distribute), True
        settings = check_settings(**arguments)
        self.backbone = backbone
        self.num_classes = num_classes
        self.weights = weights
        self.head = head if head is not None else ClassificationHead()
        self.input_shape = settings["input_shape"]
        self.schedule = schedule
        self.optimizer = optimizer
        self.augmentation = augmentation
        self.cached_views = cached_views
        self.cache_features = cache_features
        self.jit_compile = bool(jit_compile)
        self.precision = precision
        self.validation_split = validation_split
        self.path_column = path_column
        self.label_column = settings["label_column"]
        self.multi_label = multi_label
        self.label_delimiter = label_delimiter
        self.seed = seed
        self.distribute = distribute

        self.model = None
        self.history = None
        self.skipped = pd.DataFrame(columns=["path", "reason"])

    # === Settings ===
    def get_config(self) -> dict:
        """The constructor's arguments, in JSON form (Keras objects serialized).

        Raises:
            ValueError: for a custom schedule that is not registered with Keras.
        """
        return finetuner_config(self)

    @classmethod
    def from_config(cls, config: dict) -> "FineTuner":
        """A FineTuner (not yet built) with the settings of `get_config()`.

        Raises:
            ValueError: for an unknown setting, or a schedule or layer that
                cannot be deserialized.
        """
        return cls(**finetuner_kwargs(cls, config))

    def settings(self) -> dict:
        """The constructor's arguments as they are (objects, not their JSON form).

        Returns:
            A dict from each constructor argument's name to its value here.
        """
        return {name: getattr(self, name) for name in inspect.signature(type(self)).parameters}

    def with_settings(self, **changes) -> "FineTuner":
        """A new FineTuner (not built) with these settings, `changes` replacing some of them.

        The settings are the objects themselves, not copies: a `FeatureCache`
        passed as `cache_features` is shared (so searches reuse its features).

        Args:
            **changes: Constructor arguments, such as `head=` or `schedule=`.

        Raises:
            ValueError: for a name that is not a constructor argument, or a value
                the constructor refuses.

        Example:

        ```python
        wider = ft.with_settings(head=tk.ClassificationHead(hidden_units=[256]))
        ```
        """
        settings = self.settings()
        unknown = sorted(set(changes) - set(settings))
        if unknown:
            raise ValueError(
                f"Unknown FineTuner setting(s) {unknown}. A FineTuner takes {list(settings)}."
            )
        return type(self)(**{**settings, **changes})

    # === Distribution ===
    _resolved = False
    _strategy = None

    @property
    def strategy(self):
        """The `tf.distribute.Strategy` that `distribute` resolves to (None: one device).

        Resolved on first use; with a multi-worker cluster, read it at the
        start of your script, before TensorFlow runs anything else.

        When a task of the cluster does not come up within
        `transferkit.defaults.WORKER_TIMEOUT` seconds (`TRANSFERKIT_WORKER_TIMEOUT`),
        the process stops with exit status 1 after saying which tasks it waited
        for: TensorFlow's wait cannot be interrupted from Python.

        Raises:
            ValueError: for a `TF_CONFIG` that does not parse, names an address
                twice or a task outside its cluster.
        """
        if not self._resolved:
            self._strategy = resolve_strategy(self.distribute)
            self._resolved = True
        return self._strategy

    @property
    def is_chief(self) -> bool:
        """Whether this process writes files (the model, checkpoints): False on other workers."""
        return is_chief(self.strategy)

    def _scope(self):
        strategy = self.strategy
        return strategy.scope() if strategy is not None else contextlib.nullcontext()

    @property
    def backbone_name(self) -> str:
        """The backbone's registry name, or your model's name."""
        return self.backbone if isinstance(self.backbone, str) else self.backbone.name

    # === Building ===
    @property
    def built(self) -> bool:
        """Whether the model exists (after `build()` or the first `fit`)."""
        return self.model is not None

    @property
    def class_names(self) -> list[str] | None:
        """The classes the model predicts, in output order (None before building)."""
        return None if self.model is None else self.model.class_names

    @property
    def image_size(self) -> tuple[int, int]:
        """The (height, width) images are resized to."""
        if self.model is not None:
            return self.model.image_size
        if self.input_shape is not None:
            return tuple(self.input_shape[:2])
        size = get_backbone_spec(self.backbone_name).default_size
        return (size, size)

    def build(
        self, class_names: list[str] | None = None, multi_label: bool | None = None
    ) -> ImageClassifier:
        """Builds the model (the first `fit` does this for you).

        Args:
            class_names: list of str or None. The classes, in output order;
                `None` names `num_classes` classes `"0"`, `"1"`, ... Defaults
                to `None`.
            multi_label: bool or None. Whether the head is multi-label; `None`
                takes the FineTuner's `multi_label` (or the head's). Defaults
                to `None`.

        Returns:
            The `ImageClassifier`, with its backbone frozen.
        """
        class_names = check_class_names(class_names, self.num_classes)
        if self.strategy is not None and isinstance(self.backbone, keras.Model):
            # Your own backbone's variables were made outside the scope: mirror a copy
            # (before seeding, so the head starts from the weights it would have anyway).
            # As without a strategy, your backbone setting is the model's backbone.
            self.backbone = mirrored_copy(self.backbone, self.strategy)
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        if multi_label is None:
            multi_label = bool(self.multi_label) or self.head.multi_label
        # Under a strategy every variable is created in its scope (mirrored on each replica).
        with self._scope():
            self.model = build_classifier(
                self.backbone,
                self.head,
                class_names,
                weights=self.weights,
                input_shape=self.input_shape,
                multi_label=multi_label,
                image_size=None if self.input_shape is None else tuple(self.input_shape[:2]),
            )
        try:
            self.model.finetuner_config = self.get_config()
        except ValueError:
            pass  # an unregistered custom schedule: `save` says so, with the fix
        set_trainable(self.model.backbone, 0)  # the first phase sets (and logs) what trains
        return self.model

    def _require_built(self, what):
        if self.model is None:
            raise ValueError(f"The FineTuner has no {what} yet: call fit() or build() first.")

    # === What trains ===
    def freeze(self) -> Trainable:
        """Freezes the whole backbone, recompiles, and says so in the log.

        Pass what it returns to `fit_phase(..., trainable=...)` to train the head
        alone (on cached features), or train `self.model` with Keras's `fit`.

        Returns:
            A `Trainable` saying what trains.
        """
        self._require_built("model")
        trainable = set_trainable(self.model.backbone, 0)
        self._recompile(trainable, defaults.LEARNING_RATE)
        return trainable

    def unfreeze(
        self,
        blocks: int | None = None,
        *,
        unit: str = "blocks",
        train_bn: bool = False,
        lowest_block_multiplier: float = defaults.LOWEST_BLOCK_MULTIPLIER,
    ) -> Trainable:
        """Makes the top `blocks` of the backbone trainable, recompiles, and says so.

        BatchNorm stays in inference mode unless `train_bn`; the trainable blocks
        learn at multipliers of the head's rate falling geometrically to
        `lowest_block_multiplier` (see `Schedule`). `self.model` is recompiled
        with a layer-wise optimizer carrying those multipliers (at the default
        fine-tuning rate), so Keras's own `fit` trains what this says; pass what
        it returns to `fit_phase(..., trainable=...)` to run a phase with it.

        Args:
            blocks: int or None. Blocks (or layers) from the top; `None`
                unfreezes the whole backbone. Defaults to `None`.
            unit: str. `"blocks"` or `"layers"`. Defaults to `"blocks"`.
            train_bn: bool. Defaults to `False`.
            lowest_block_multiplier: float. Defaults to `0.1`.

        Returns:
            A `Trainable` saying what trains, at which multipliers.
        """
        self._require_built("model")
        trainable = unfreeze_top(
            self.model.backbone,
            blocks,
            unit=unit,
            train_bn=train_bn,
            lowest_block_multiplier=lowest_block_multiplier,
        )
        self._recompile(trainable, defaults.FINE_TUNE_LEARNING_RATE)
        return trainable

    def _recompile(self, trainable: Trainable, learning_rate: float) -> None:
        """Recompiles `self.model` after a change of `trainable`, and logs both."""
        with self._scope():
            optimizer = get_optimizer(self.optimizer, learning_rate, trainable.lr_multipliers)
            self.model.compile(optimizer=optimizer, jit_compile=self.jit_compile)
        logger.info(f"{describe_trainable(trainable, self.backbone_name)}; recompiled")

    # === Precision ===
    @property
    def compute_precision(self) -> str:
        """The dtype policy `fit` computes in: `precision`, with `"auto"` resolved here."""
        family = None
        if isinstance(self.backbone, str):
            family = get_backbone_spec(self.backbone).family
        policy, reason = resolve_precision(self.precision, family)
        if self.precision == "auto" and getattr(self, "_logged_precision", None) != policy:
            logger.info(f"precision 'auto' -> {policy!r} for {self.backbone_name}: {reason}")
            self._logged_precision = policy
        return policy

    # === Data ===
    @property
    def is_multi_label(self) -> bool:
        """Whether the model is multi-label (before building: whether it was asked to be)."""
        if self.model is not None:
            return self.model.head.multi_label
        return bool(self.multi_label) or self.head.multi_label

    def _source(self, data, labels=None, *, class_names=None, require_labels=True) -> ImageSource:
        # Once built, the model says; before, the FineTuner's setting (None: detect).
        multi_label = (
            self.is_multi_label if self.built or self.head.multi_label else self.multi_label
        )
        source = as_image_source(
            data,
            labels,
            class_names=class_names,
            path_column=self.path_column,
            label_column=self.label_column,
            require_labels=require_labels,
            multi_label=multi_label,
            label_delimiter=self.label_delimiter,
        )
        if len(source.skipped):
            self.skipped = pd.concat([self.skipped, source.skipped], ignore_index=True)
        return source

    def _training_source(self, data, labels) -> ImageSource:
        """Labelled training data, encoded with the model's classes once it has them."""
        known = self.class_names if self.built and self._classes_from_data else None
        return check_training_classes(self._source(data, labels, class_names=known))

    def _build_for(self, source: ImageSource) -> None:
        """Builds the model for the source's classes, or checks they are the model's."""
        if not self.built:
            self.build(source.class_names, multi_label=source.multi_label or None)
            self._classes_from_data = source.class_names is not None
        else:
            check_same_classes(source, self.class_names)

    _classes_from_data = False

    def split(self, data, labels=None, validation_data=None, *, seed=None):
        """The training and validation sources `fit` uses, the model built for them.

        Args:
            data: The training images, in any form `fit` accepts.
            labels: array-like or None.
            validation_data: Held-out images in any such form, or None to hold
                out `validation_split` of `data` (stratified, seeded).
            seed: int or None. Seed of the split. Defaults to the FineTuner's.

        Returns:
            `(train, validation)`, two `ImageSource`s (validation may be None).
        """
        source = self._training_source(data, labels)
        if validation_data is not None:
            train = source
            try:
                validation = self._source(validation_data, class_names=source.class_names)
            except ValueError as error:
                raise ValueError(
                    f"The validation data does not fit the training data's classes "
                    f"{source.class_names}: {error} A class only in the validation data cannot "
                    "be learned: add its images to the training data, or drop it."
                ) from error
            check_validation(train, validation)
        elif self.validation_split and source.dataset is None:
            split_seed = self.seed if seed is None else seed
            train, validation = stratified_split(source, self.validation_split, seed=split_seed)
        else:
            train, validation = source, None
        self._build_for(source)
        return train, validation

    # === Training ===
    def fit(
        self,
        data,
        labels=None,
        *,
        validation_data=None,
        epochs: int = defaults.EPOCHS,
        batch_size: int = defaults.BATCH_SIZE,
        callbacks: list | None = None,
        schedule=None,
        class_weight: dict | str | None = None,
        shuffle: bool = True,
        checkpoint_dir: str | os.PathLike | None = None,
        restore_best_weights: bool = True,
        verbose="auto",
    ) -> pd.DataFrame:
        """Fine-tunes on `data` following the schedule.

        The recipe, as calls you can also make yourself: `prepare_run` (resume,
        `split` the data and build the model, weigh the classes, list the run's
        hooks), then `trainer().running(run)` and, for each remaining `Phase`
        of `schedule.plan(epochs)`, `trainer().fit_phase(run, phase)` (which
        sets what trains, recompiles and trains). The run hooks put back the
        best epoch's weights at the end and choose multi-label thresholds.

        Args:
            data: The training images: a folder with one sub-folder per class, a
                DataFrame with path and label columns, a list of paths (with
                `labels`), an array `(N, H, W, 3)` (with `labels`), an
                `(images, labels)` tuple or a `tf.data.Dataset`.
            labels: array-like or None. Labels for a list of paths or an array.
            validation_data: Held-out data in any of the same forms. `None`
                holds out `validation_split` of `data`. Defaults to `None`.
            epochs: int. Epochs of the whole run, all phases together.
                Defaults to `5`.
            batch_size: int. Defaults to `32`.
            callbacks: list of `keras.callbacks.Callback` or None. Your own
                callbacks, called in every phase. Defaults to `None`.
            schedule: str, `Schedule` or None. Overrides the FineTuner's
                schedule for this run. Defaults to `None`.
            class_weight: dict, str or None. Class index -> weight, as in
                Keras, or `"balanced"`: each class weighs `n_images /
                (num_classes * n_images_of_class)` in the loss, from the
                training part's counts (the log reports them), so that every
                class counts as much as the others. Single-label data only:
                multi-label data keeps its rare classes through per-class
                decision thresholds. Defaults to `None`.
            shuffle: bool. Whether to shuffle the training data each epoch.
                Defaults to `True`.
            checkpoint_dir: str, path or None. Save the full model and the
                schedule's state here after every epoch. If the folder already
                holds the checkpoint of an interrupted run with the same
                `epochs` and schedule, the run resumes from it at the right
                phase and epoch. Defaults to `None`.
            restore_best_weights: bool. With validation data, end the run with
                the weights of the epoch that had the lowest validation loss, so
                that unfreezing can never leave the model worse (on validation)
                than it was; the log says when it restores. Defaults to `True`.
            verbose: "auto", 0, 1 or 2. Keras's progress output.

        For multi-label data, the head has one sigmoid per class and trains
        with binary cross-entropy (the monitored validation loss), and the
        history shows `binary_accuracy` and `pr_auc` (the mean over classes of
        the area under the precision-recall curve). With validation data, each
        class's decision threshold is then chosen to maximise its F1 on the
        validation images (see `choose_thresholds`), saved in the model and
        used by `predict`, `evaluate`, the command line and exports.

        Note:
            Phases run as separate Keras `fit` calls, so your callbacks are
            reset at each phase (as Keras resets them at each `fit`): an
            `EarlyStopping` ends the phase it stops, and the next phase starts.
            In a frozen phase trained on cached features, Keras trains (and
            your callbacks see) the head alone; a `transferkit.training.RunHook`
            among your callbacks sees the whole run and its full model
            (`run.training_model`), and `checkpoint_dir` saves it.

        Returns:
            A `pandas.DataFrame` with one row per epoch: `epoch`, `phase`,
            `learning_rate`, `loss`, `accuracy`, `val_loss`, `val_accuracy`
            and `seconds`. It is also kept as `self.history`.
        """
        # fit's arguments are prepare_run's: the run decides, the trainer trains each phase.
        run = self.prepare_run(**_arguments(locals()))
        trainer = self.trainer()
        with trainer.running(run):
            for phase in run.remaining_phases():
                trainer.fit_phase(run, phase)
        self.history = run.history()
        return self.history

    def prepare_run(
        self,
        data,
        labels=None,
        *,
        validation_data=None,
        epochs: int = defaults.EPOCHS,
        batch_size: int = defaults.BATCH_SIZE,
        callbacks: list | None = None,
        schedule=None,
        class_weight: dict | str | None = None,
        shuffle: bool = True,
        checkpoint_dir: str | os.PathLike | None = None,
        restore_best_weights: bool = True,
        verbose="auto",
    ) -> Run:
        """Decides what a `fit` with these arguments trains, before any training.

        Resumes from `checkpoint_dir` when it holds this run's checkpoint, splits
        the data (building the model for its classes), weighs the classes and
        lists the run's hooks: your `callbacks` first, then the history, the
        best weights (with validation data and `restore_best_weights`), the
        checkpoint, the calibration reset and the multi-label thresholds. The
        arguments are `fit`'s.

        Returns:
            A `transferkit.training.Run`, for `trainer().running(run)` and
            `trainer().fit_phase(run, phase)`.
        """
        schedule = schedules_module.get(schedule if schedule is not None else self.schedule)
        phases = schedule.plan(epochs)
        check_batch_size(batch_size)
        strategy = self.strategy  # first: a cluster must form before other TensorFlow work
        if strategy is not None:
            check_distributed_fit(strategy, batch_size, self.seed)
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        state, split_seed = self._resume(checkpoint_dir, epochs, schedule)
        train, validation = self.split(data, labels, validation_data, seed=split_seed)
        agree(strategy, len(train) if train.dataset is None else 0, "the training images")
        checkpoint = None
        if checkpoint_dir is not None and self.is_chief:
            fixed = {"epochs": epochs, "schedule": _schedule_config(schedule)}
            checkpoint = RunCheckpoint(checkpoint_dir, {**fixed, "split_seed": split_seed})
        hooks = fit_hooks(restore_best_weights and validation is not None, checkpoint, batch_size)
        return Run(
            model=self.model,
            schedule=schedule,
            phases=phases,
            train=train,
            validation=validation,
            batch_size=batch_size,
            class_weight=resolve_class_weight(class_weight, train, self.class_names),
            split_seed=split_seed,
            shuffle=shuffle,
            verbose=verbose,
            callbacks=[*(callbacks or []), *hooks],
            rows=list(state["history"]) if state else [],
            epochs_done=state["epochs_done"] if state else 0,
            checkpoint_dir=checkpoint_dir,
        )

    def _resume(self, checkpoint_dir, epochs: int, schedule) -> tuple[dict | None, int | None]:
        """The checkpoint state a run resumes from (its model loaded) and the split's seed."""
        state, split_seed = resume_state(
            checkpoint_dir, epochs, _schedule_config(schedule), self.seed, self.strategy
        )
        if state is not None:
            with self._scope():
                self.model = load_checkpoint_model(state)
            self._classes_from_data = self.model.head.class_names is not None
        return state, split_seed

    def trainer(self) -> Trainer:
        """The `transferkit.training.Trainer` of this FineTuner's model and settings.

        Its strategy, training precision (`"auto"` resolved), feature cache,
        cached views, augmentation, seed and XLA setting are this FineTuner's.
        """
        self._require_built("model")
        names = ("optimizer", "strategy", "cached_views", "augmentation", "seed", "jit_compile")
        return Trainer(
            self.model,
            precision=self.compute_precision,
            feature_cache=self._feature_cache(),
            backbone_name=self.backbone_name,
            **{name: getattr(self, name) for name in names},
        )

    def fit_phase(
        self,
        phase: schedules_module.Phase,
        train: ImageSource,
        validation: ImageSource | None = None,
        *,
        schedule: schedules_module.Schedule | None = None,
        batch_size: int = defaults.BATCH_SIZE,
        callbacks: list | None = None,
        class_weight: dict | None = None,
        shuffle: bool = True,
        verbose="auto",
        initial_epoch: int | None = None,
        last: bool = True,
        trainable: Trainable | None = None,
    ) -> None:
        """Runs one phase: sets what trains, recompiles (and says so), and trains.

        A frozen phase trains the head on cached backbone features (unless
        `cache_features=False` or the data is a `tf.data.Dataset`); any other
        trains the whole classifier end to end.

        Args:
            phase: `Phase`. Its epochs, trainable blocks and learning rate.
            train: `ImageSource`. From `split`.
            validation: `ImageSource` or None.
            schedule: `Schedule` or None. Gives the learning rate's shape, the
                block multipliers and the BatchNorm mode. Defaults to the
                FineTuner's schedule.
            batch_size, callbacks, class_weight, shuffle, verbose: as in `fit`.
            initial_epoch: int or None. Where to start inside the phase.
                Defaults to `phase.start_epoch`.
            last: bool. Whether the phase ends the run (a frozen phase that
                ends the run caches more augmented views). Defaults to `True`.
            trainable: `Trainable` or None. What `freeze()` or `unfreeze()`
                returned: the phase trains that, at its multipliers, whatever
                `phase.trainable_blocks` says. `None` sets it from the phase and
                the schedule. Defaults to `None`.
        """
        self._require_built("model")
        run = Run(
            model=self.model,
            schedule=schedules_module.get(schedule if schedule is not None else self.schedule),
            phases=[phase],
            train=train,
            validation=validation,
            batch_size=batch_size,
            class_weight=class_weight,
            shuffle=shuffle,
            verbose=verbose,
            callbacks=list(callbacks or []),
        )
        trainer = self.trainer()
        with trainer.running(run):
            trainer.fit_phase(
                run, phase, trainable=trainable, initial_epoch=initial_epoch, last=last
            )

    def _feature_cache(self) -> FeatureCache | None:
        """The cache frozen phases use: the FineTuner's own, the shared one, or none."""
        if isinstance(self.cache_features, FeatureCache):
            return self.cache_features
        return default_cache() if self.cache_features else None

    def find_lr(
        self,
        data,
        labels=None,
        *,
        start_learning_rate: float = 1e-7,
        end_learning_rate: float = 1.0,
        steps: int = 100,
        batch_size: int = defaults.BATCH_SIZE,
    ) -> LRFinderResult:
        """Finds a learning rate for the head on the frozen backbone (a range test).

        Trains the head on backbone features (kept in the feature cache unless
        `cache_features=False`) for `steps` batches at rates growing
        exponentially from `start_learning_rate` to `end_learning_rate`,
        stopping early once the loss blows up, then restores the weights: the
        model is left as it was.

        Args:
            data: Training images in any form `fit` accepts.
            labels: array-like or None. Labels for a list of paths or an array.
            start_learning_rate: float. Defaults to `1e-7`.
            end_learning_rate: float. Defaults to `1.0`.
            steps: int. Batches in the test. Defaults to `100`.
            batch_size: int. Defaults to `32`.

        Returns:
            An `LRFinderResult`: `frame` (learning rate, loss, smoothed loss per
            step), `suggestion` (where the loss fell fastest) and `plot()`.

        Example:

        ```python
        result = ft.find_lr("data/train")
        ft.fit("data/train", schedule=tk.FreezeUnfreeze(learning_rate=result.suggestion))
        ```
        """
        source = self._training_source(data, labels)
        check_cacheable(source, "find_lr")
        self._build_for(source)
        self.freeze()
        return self.trainer().find_lr(
            source, start_learning_rate, end_learning_rate, steps, batch_size
        )

    # === Inference ===
    def predict(self, images, batch_size: int = defaults.BATCH_SIZE, *, tta=False) -> pd.DataFrame:
        """Predicts the class of each image.

        Args:
            images: A path, a list of paths, a folder, a DataFrame with a path
                column, an array `(N, H, W, 3)` of values 0-255, or a
                `tf.data.Dataset` of images (single or batched).
            batch_size: int. Defaults to `32`.
            tta: bool or sequence of str. Test-time augmentation: average the
                probabilities over fixed views of each image. `True` uses the
                image and its mirror; or name the views from
                `transferkit.interpret.TTA_VIEWS` (`"original"`, `"flip"`,
                `"zoom"`, `"zoom_flip"`). Each view costs one more pass of the
                model. Defaults to `False`.

        Returns:
            A `pandas.DataFrame` with one row per usable image: `path` (when the
            images came from files), `label`, `probability`, and one
            `prob_<class>` column per class. `label` is the most probable
            class, or for a two-class model with a decision threshold (see
            `calibrate`), the second class wherever its probability reaches
            the threshold. For a multi-label model: `path`, `labels` (the list
            of classes whose probability reaches the class's threshold,
            possibly empty) and one `prob_<class>` column per class.
            Unreadable files are left out, reported in the log and listed in
            `self.skipped`.
        """
        self._require_built("model")
        views = tta_views(tta)
        source = self._source(images, require_labels=False)
        return predict_frame(self.model, source, batch_size, views)

    def evaluate(
        self, data, labels=None, batch_size: int = defaults.BATCH_SIZE, *, tta=False
    ) -> EvaluationReport:
        """Measures the model on labelled data.

        Args:
            data: Labelled images in any form `fit` accepts.
            labels: array-like or None. Labels for a list of paths or an array.
            batch_size: int. Defaults to `32`.
            tta: bool or sequence of str. Test-time augmentation, as in
                `predict`. Defaults to `False`.

        Returns:
            An `EvaluationReport`: `metrics` (loss, accuracy, macro precision,
            recall and F1, expected calibration error), `per_class` precision
            and recall, the `confusion_matrix`, the `predictions` and the
            `calibration` table, all pandas; `top_losses(k)` and
            `most_confused()` list the mistakes. For a multi-label model:
            per-class precision, recall, F1, average precision and threshold,
            micro and macro F1 and mean average precision (see
            `EvaluationReport`).

        Raises:
            ValueError: if the data has a label the model was never trained on.
        """
        self._require_built("model")
        views = tta_views(tta)
        source = self._source(data, labels, class_names=self.class_names)
        return evaluate_classifier(self.model, source, batch_size, views)

    # === Understanding the model ===
    def explain(
        self,
        images,
        class_name: str | list[str] | None = None,
        *,
        layer: str | None = None,
        batch_size: int = defaults.BATCH_SIZE,
    ) -> Explanation:
        """Shows where the model looks: a Grad-CAM heat map per image.

        The map is computed at the backbone's last spatial feature map (see
        `transferkit.interpret.find_feature_map`), through the head as it runs
        in the model.

        Args:
            images: Images in any form `predict` accepts; also the DataFrame
                of `EvaluationReport.top_losses` (for images read from files).
            class_name: str, list of str or None. The class to explain: `None`
                for each image's predicted class, one name for all images, or
                one name per image. Defaults to `None`.
            layer: str or None. A backbone layer to read instead. Defaults to
                `None`.
            batch_size: int. Defaults to `32`.

        Returns:
            An `Explanation`: `heatmaps` `(N, height, width)` in `[0, 1]` at the
            model's image size, the `images` as the model saw them, the
            `predictions` (with the `explained` class) and the `layer` used;
            `explanation.plot(path)` draws the overlays.

        Raises:
            ValueError: for an unknown class, or a backbone with no spatial
                feature map (a dense backbone, pooling inside).

        Example:

        ```python
        explanation = ft.explain(["cat.jpg", "dog.jpg"])
        explanation.plot("gradcam.png")
        ```
        """
        self._require_built("model")
        source = self._source(images, require_labels=False)
        return self.model.explain(source, class_name, layer=layer, batch_size=batch_size)

    def choose_thresholds(
        self,
        validation_data,
        labels=None,
        *,
        metric: str = DEFAULT_THRESHOLD_METRIC,
        batch_size: int = defaults.BATCH_SIZE,
    ) -> pd.DataFrame:
        """Chooses each class's decision threshold on held-out data (multi-label models).

        For every class, the threshold on its probability that maximises
        `metric` on `validation_data`; a class with no positive (or no
        negative) image there keeps 0.5, and the log says so. The thresholds
        are kept in the model's head (`model.head.thresholds`), so they are
        saved and loaded with it, and `predict`, `evaluate`, the command line
        and exports use them. `fit` calls this on its validation data. Use
        images the model did not train on, never the test images you report.

        Args:
            validation_data: Labelled held-out images in any form `fit` accepts.
            labels: array-like or None. Labels for a list of paths or an array.
            metric: str. `"f1"` (of each class), `"balanced_accuracy"`,
                `"accuracy"` or `"macro_f1"`. Defaults to `"f1"`.
            batch_size: int. Defaults to `32`.

        Returns:
            A `pandas.DataFrame` indexed by class: `threshold`, `positives`,
            `metric_at_0.5`, `metric_at_threshold` and `note`.

        Raises:
            ValueError: for a single-label model (use `calibrate(...,
                threshold_metric=...)` for two classes), data without labels,
                or an unknown metric.

        Example:

        ```python
        train, validation = ft.split("data/train.csv")
        table = ft.choose_thresholds(validation)
        ```
        """
        self._require_built("model")
        check_multi_label(self.model)
        source = self._source(validation_data, labels, class_names=self.class_names)
        return choose_classifier_thresholds(self.model, source, metric, batch_size)

    def calibrate(
        self,
        validation_data,
        labels=None,
        *,
        threshold_metric: str | None = None,
        batch_size: int = defaults.BATCH_SIZE,
    ) -> CalibrationResult:
        """Makes the probabilities trustworthy: fits temperature scaling on held-out data.

        Divides the model's logits by the one number (the temperature) that
        minimises the cross-entropy on `validation_data`: the predicted class
        never changes, the confidence does. The temperature is a weight of the
        head, so the calibration is saved, loaded and exported with the model.
        A later `fit` resets it. Use images the model did not train on (its
        validation split), never the test images you report.

        Args:
            validation_data: Labelled held-out images in any form `fit` accepts.
            labels: array-like or None. Labels for a list of paths or an array.
            threshold_metric: str or None. For a two-class model: also choose
                the decision threshold (on the second class's calibrated
                probability) that maximises this metric on `validation_data`:
                `"accuracy"`, `"balanced_accuracy"`, `"f1"` (of the second
                class) or `"macro_f1"`. It is saved with the model, and
                `predict` and `evaluate` use it. `None` keeps the plain rule
                (the most probable class). Defaults to `None`.
            batch_size: int. Defaults to `32`.

        Returns:
            A `CalibrationResult`: the temperature, the expected calibration
            error and loss before and after, and the threshold.

        Raises:
            ValueError: for data without labels or with a class the model does
                not know, a multi-label model, or a threshold metric for more
                than two classes.

        Example:

        ```python
        train, validation = ft.split("data/train")
        ft.calibrate(validation, threshold_metric="f1")
        ```
        """
        self._require_built("model")
        try:
            source = self._source(validation_data, labels, class_names=self.class_names)
        except ValueError as error:
            raise ValueError(
                f"calibrate needs labelled held-out images of the model's classes "
                f"{self.class_names}: {error}"
            ) from error
        return self.model.calibrate(
            source, threshold_metric=threshold_metric, batch_size=batch_size
        )

    # === Saving ===
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Saves the model, its class names and these settings to a `.keras` file.

        The file is written beside its destination and renamed onto it only once
        complete, so a crash mid-save leaves an existing file intact.

        Args:
            path: str or path. Must end in `.keras`.
            overwrite: bool. Whether to replace an existing file. Defaults to
                `False`.

        Under a multi-worker strategy only the chief writes the file; on the
        other workers `save` logs that and returns.

        Raises:
            FileExistsError: if `path` exists and `overwrite` is `False`.
            ValueError: for a path not ending in `.keras`, or a custom schedule
                that is not registered with Keras (it could not be loaded).
        """
        self._require_built("model")
        if not str(path).endswith(".keras"):
            raise ValueError(f"The path must end in '.keras'. Received: path={str(path)!r}")
        if not self.is_chief:
            logger.info(f"not saving {path}: this worker is not the chief, which writes it")
            return
        self.model.finetuner_config = self.get_config()
        with atomic_path(path, overwrite=overwrite) as tmp:
            self.model.save(tmp)
        logger.info(f"saved {path}")

    def export(
        self,
        path: str | os.PathLike,
        format: str = defaults.EXPORT_FORMAT,
        *,
        quantize: str | None = None,
        representative_data=None,
        check=None,
        tolerance: float | None = None,
        overwrite: bool = False,
        batch_size: int = defaults.BATCH_SIZE,
    ) -> pd.DataFrame | None:
        """Exports the model to where models run: TF Serving, LiteRT or ONNX Runtime.

        Every export takes raw RGB images (values 0-255, any size: the resizing
        and the backbone's scaling are inside), runs in inference mode (no
        dropout, BatchNorm on its moving statistics) and returns one
        probability per class. It carries its class names and input contract
        (`transferkit.export.read_export_info` reads them back):

        - `"saved_model"`: a folder for TensorFlow Serving, with signatures
          `serving_default` (float images) and `serving_bytes` (encoded
          JPEG/PNG files), both returning `probabilities`, `class_index` and
          `class_name` (for a multi-label model: `probabilities`, `predicted`,
          one bool per class from the model's thresholds, and `class_name`,
          the predicted classes joined by commas). Multi-label exports carry
          the per-class thresholds in their description (`thresholds`).
        - `"litert"`: a `.tflite` file of LiteRT built-in ops, with
          `model.tflite.json` beside it; optionally quantized.
        - `"onnx"`: an `.onnx` file for ONNX Runtime (needs the `export` extra).

        The export is written beside `path` and moved onto it only once
        complete (and, with `check`, only once it passed), so a failure
        leaves nothing behind and an existing file intact.

        Args:
            path: str or path. A folder for `"saved_model"`, a file ending in
                `.tflite` or `.onnx` for the others.
            format: str. `"saved_model"`, `"litert"` or `"onnx"`. Defaults to
                `"saved_model"`.
            quantize: str or None. LiteRT only: `"float16"` (half-size
                weights), `"dynamic_range"` (int8 weights), `"full_integer"`
                (int8 throughout, uint8 pixels in; needs
                `representative_data`), or None for float32. Defaults to `None`.
            representative_data: Images in any form `fit` accepts (labels
                unused), such as the training folder: a random sample of them
                (`transferkit.defaults.REPRESENTATIVE_IMAGES`) calibrates
                `"full_integer"`. Defaults to `None`.
            check: Images in any form `predict` accepts, labelled or not: the
                export is run in its own runtime on them and compared with this
                model (see `transferkit.export.check_parity`). Defaults to `None`.
            tolerance: float or None. For a float32 export, the largest
                probability difference the check accepts; for float16, the
                largest mean difference, beside at least 99.9% agreement in the
                predicted class (`transferkit.defaults.FLOAT16_AGREEMENT`: float16
                weights alone move the largest difference further). Defaults to
                `None`: 1e-4 for float32, 1e-3 for float16 (integer quantization
                is reported, not judged).
            overwrite: bool. Whether to replace an existing export. Defaults to
                `False`.
            batch_size: int. Images per batch when reading the check images.
                Defaults to `32`.

        Returns:
            With `check`, the parity table: a `pandas.DataFrame` with a row for
            this model and one for the export (`max_abs_diff`, `agreement`,
            `accuracy`, `file_mb`, `latency_ms`, ...). Otherwise None.

        Raises:
            ValueError: for an unknown format or quantization, a path without
                the format's suffix, `"full_integer"` without
                `representative_data`, or an argument that does not apply.
            FileExistsError: if `path` exists and `overwrite` is `False`.
            ImportError: if the format needs a package of the `export` extra
                that is not installed.
            transferkit.export.ConversionError: if the format cannot represent
                an op of the model (naming the op and its layer).
            transferkit.export.ParityError: if the export differs from this
                model beyond the tolerance (its `table` shows how).

        Example:

        ```python
        ft.export("exported/cats", format="saved_model")
        table = ft.export("exported/cats.tflite", format="litert", check="data/test")
        ft.export("exported/cats_int8.tflite", format="litert", quantize="full_integer",
                  representative_data="data/train")
        ```
        """
        arguments = _arguments(locals())
        self._require_built("model")
        return self.model.export(arguments.pop("path"), **arguments)

    @classmethod
    def from_model(cls, model: keras.Model, **settings) -> "FineTuner":
        """Wraps a classifier (for example a loaded one) in a FineTuner.

        The settings are those the model was saved with (`finetuner_config`);
        a classifier without them (built by hand, or saved by transferkit 0.1)
        gets the defaults around its own backbone, head and input size.

        Args:
            model: `ImageClassifier`, or a classifier saved by transferkit 0.1.
            **settings: FineTuner settings that replace those the model was
                saved with (such as a shared `cache_features`).

        Raises:
            ValueError: if `model` is neither.
        """
        model, config = finetuner_settings(model)
        finetuner = cls(**{**finetuner_kwargs(cls, config), **settings})
        finetuner.model = model
        finetuner._classes_from_data = model.head.class_names is not None
        return finetuner


def _arguments(values: dict) -> dict:
    """A method's arguments, from its `locals()` taken first thing: all but `self`.

    The public signatures stay explicit (for users, editors and the docs); the
    composer forwards them without restating every name.
    """
    return {name: value for name, value in values.items() if name != "self"}


def _schedule_config(schedule) -> dict:
    """A schedule's serialized form, as checkpoints compare it."""
    return keras.saving.serialize_keras_object(schedule)


def load(path: str | os.PathLike) -> FineTuner:
    """Loads a model saved by `FineTuner.save` as a `FineTuner` with the same settings.

    The FineTuner that comes back is equal in every setting to the one saved
    (`get_config()`), holds the saved weights, and fits on with the same
    schedule, optimizer, augmentation and seed. Models saved by transferkit 0.1
    load too (with default settings, which 0.1 did not save). Plain
    `keras.saving.load_model(path)` also works once transferkit is imported,
    and returns the `ImageClassifier`. Loading runs in Keras's safe mode: no
    code from the file is run.

    Args:
        path: str or path. A `.keras` file written by `FineTuner.save` (or
            `ImageClassifier.save`).

    Returns:
        A `FineTuner` ready to `predict`, `evaluate`, `save` or `fit` on.

    Raises:
        FileNotFoundError: if there is no file at `path`.
        ValueError: if the file is not a `.keras` file, cannot be loaded in
            safe mode, or holds a model transferkit did not write.
    """
    return FineTuner.from_model(load_classifier(path))

"""The FineTuner: a pretrained backbone fine-tuned into an image classifier."""

import contextlib
import os

import keras
import numpy as np
import pandas as pd

from transferkit import defaults
from transferkit import schedules as schedules_module
from transferkit.backbones import BACKBONES, build_backbone, get_backbone_spec
from transferkit.data import ImageSource, as_image_source, make_dataset, stratified_split
from transferkit.data.duplicates import warn_if_overlapping
from transferkit.features import FeatureCache, default_cache
from transferkit.finetuner.augmentation import augmentation_layer
from transferkit.finetuner.best_weights import BestWeights
from transferkit.finetuner.checkpoint import RunCheckpoint, check_same_run, read_state
from transferkit.finetuner.class_weights import resolve_class_weight
from transferkit.finetuner.config import finetuner_config, finetuner_kwargs
from transferkit.finetuner.distribution import (
    agree,
    check_distribute,
    is_chief,
    is_multi_worker,
    read_tf_config,
    reporting_lost_workers,
    resolve_strategy,
)
from transferkit.finetuner.freezing import (
    Trainable,
    apply_phase,
    backbone_units,
    describe_phase,
    describe_trainable,
    set_trainable,
)
from transferkit.finetuner.lr_finder import LRFinderResult, find_learning_rate
from transferkit.finetuner.multi_label_report import (
    multi_label_predictions_frame,
    multi_label_report,
)
from transferkit.finetuner.reports import (
    EvaluationReport,
    HistoryRecorder,
    evaluation_report,
    history_frame,
    predictions_frame,
)
from transferkit.finetuner.training import (
    PhaseRun,
    cached_features,
    fit_cached,
    fit_end_to_end,
    head_model,
)
from transferkit.heads import ClassificationHead
from transferkit.interpret.calibration import CalibrationResult
from transferkit.interpret.gradcam import Explanation
from transferkit.interpret.model import (
    calibrate_classifier,
    explain_images,
    outputs_with_views,
    reset_calibration,
)
from transferkit.interpret.thresholds import DEFAULT_THRESHOLD_METRIC, choose_thresholds
from transferkit.interpret.tta import tta_views
from transferkit.layers import BackbonePreprocessing
from transferkit.models import ImageClassifier
from transferkit.models.legacy import is_legacy_classifier, upgrade_legacy_classifier
from transferkit.models.loading import load_classifier
from transferkit.optimizers import get_optimizer
from transferkit.precision import (
    check_precision,
    copy_state,
    model_precision,
    resolve_precision,
    with_precision,
)
from transferkit.schedules.base import block_multipliers, check_multiplier
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
        check_distribute(distribute)
        if distribute in ("auto", "multi_worker") and read_tf_config() is not None:
            # A cluster must form before TensorFlow runs anything in the process, and
            # the checks below already do (a layer makes a variable): join it first.
            self._strategy, self._resolved = resolve_strategy(distribute), True
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
        ):
            raise ValueError(
                "`num_classes` must be an integer >= 2, or None to take it from the data. "
                f"Received: num_classes={num_classes!r}"
            )
        if head is not None and not isinstance(head, ClassificationHead):
            raise ValueError(
                f"`head` must be a transferkit.heads.ClassificationHead. Received: head={head!r}"
            )
        if isinstance(input_shape, int):
            input_shape = (input_shape, input_shape, 3)
        if input_shape is not None and (len(input_shape) != 3 or input_shape[-1] != 3):
            raise ValueError(
                "`input_shape` must be (height, width, 3) or a single int. "
                f"Received: input_shape={input_shape!r}"
            )
        if not 0 <= validation_split < 1:
            raise ValueError(
                "`validation_split` must be in [0, 1). "
                f"Received: validation_split={validation_split}"
            )
        if cached_views is not None and (
            isinstance(cached_views, bool) or not isinstance(cached_views, int) or cached_views < 1
        ):
            raise ValueError(
                "`cached_views` must be an integer >= 1, or None to choose by schedule. "
                f"Received: cached_views={cached_views!r}"
            )
        check_precision(precision)
        if multi_label is not None and not isinstance(multi_label, bool):
            raise ValueError(
                "`multi_label` must be True, False or None (detect it from the data). "
                f"Received: multi_label={multi_label!r}"
            )
        if head is not None and head.multi_label and multi_label is False:
            raise ValueError(
                "The head has multi_label=True but FineTuner(multi_label=False): set one of "
                "them, they must agree."
            )
        if label_delimiter is not None and (
            not isinstance(label_delimiter, str) or not label_delimiter
        ):
            raise ValueError(
                "`label_delimiter` must be a non-empty string such as '|', or None. "
                f"Received: label_delimiter={label_delimiter!r}"
            )
        if label_delimiter is not None and multi_label is False:
            raise ValueError(
                f"label_delimiter={label_delimiter!r} splits labels into several classes, "
                "which multi_label=False refuses. Pass multi_label=None or True."
            )
        if isinstance(label_column, (list, tuple)):
            label_column = [str(column) for column in label_column]
            if multi_label is False:
                raise ValueError(
                    "A list of label columns (one 0/1 column per class) is multi-label data, "
                    f"which multi_label=False refuses. Received: label_column={label_column}"
                )
        augmentation_layer(augmentation, seed)  # validates early
        schedules_module.get(schedule)
        get_optimizer(optimizer, 1e-3)
        if isinstance(backbone, str):
            get_backbone_spec(backbone)
        elif not isinstance(backbone, keras.Model):
            raise ValueError(
                "`backbone` must be a name from transferkit.list_backbones() or a keras.Model. "
                f"Received: backbone={backbone!r}"
            )

        self.backbone = backbone
        self.num_classes = num_classes
        self.weights = weights
        self.head = head if head is not None else ClassificationHead()
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self.schedule = schedule
        self.optimizer = optimizer
        self.augmentation = augmentation
        self.cached_views = cached_views
        self.cache_features = cache_features
        self.jit_compile = bool(jit_compile)
        self.precision = precision
        self.validation_split = validation_split
        self.path_column = path_column
        self.label_column = label_column
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

    def _into_strategy(self) -> None:
        """Re-creates a model built outside the strategy (such as a loaded one) inside it."""
        strategy = self.strategy
        if strategy is None or self.model is None:
            return
        if getattr(self.model, "distribute_strategy", None) is strategy:
            return
        weights = self.model.get_weights()
        finetuner_config = self.model.finetuner_config
        with strategy.scope():
            model = ImageClassifier.from_config(self.model.get_config())
            model.build((None, None, None, 3))
            model.set_weights(weights)
        model.finetuner_config = finetuner_config
        self.model = model

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
        if class_names is None:
            if self.num_classes is None:
                raise ValueError(
                    "Cannot build before the number of classes is known: pass num_classes= "
                    "to FineTuner, class_names= to build(), or call fit() with data."
                )
            class_names = [str(index) for index in range(self.num_classes)]
        if self.num_classes is not None and len(class_names) != self.num_classes:
            raise ValueError(
                f"FineTuner(num_classes={self.num_classes}) but the data has "
                f"{len(class_names)} classes: {list(class_names)}. Fix num_classes (or pass "
                "None to take it from the data) or the data."
            )
        backbone = self.backbone
        if self.strategy is not None and isinstance(backbone, keras.Model):
            # Your own backbone's variables were made outside the scope: mirror a copy
            # (before seeding, so the head starts from the weights it would have anyway).
            with self._scope():
                backbone = keras.models.clone_model(self.backbone)
                backbone.set_weights(self.backbone.get_weights())
            # As without a strategy, your backbone setting is the model's backbone.
            self.backbone = backbone
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        if multi_label is None:
            multi_label = bool(self.multi_label) or self.head.multi_label
        # Under a strategy every variable is created in its scope (mirrored on each replica).
        with self._scope():
            backbone, spec = build_backbone(
                backbone, weights=self.weights, input_shape=self.input_shape
            )
            head = self.head.with_classes(
                len(class_names), list(class_names), name="head", multi_label=multi_label
            )
            image_size = tuple(backbone.input_shape[1:3])
            if None in image_size:
                image_size = self.image_size
            preprocessor = BackbonePreprocessing(
                image_size=image_size, mode=spec.preprocessing, name="preprocessing"
            )
            self.model = ImageClassifier(backbone, head, preprocessor)
        try:
            self.model.finetuner_config = self.get_config()
        except ValueError:
            pass  # an unregistered custom schedule: `save` says so, with the fix
        set_trainable(backbone, 0)  # the first phase sets (and logs) what trains
        logger.info(
            f"built {spec.name} ({backbone.count_params():,} parameters, input "
            f"{image_size[0]}x{image_size[1]}, preprocessing {spec.preprocessing!r}) with a "
            f"{len(class_names)}-class {'multi-label ' if multi_label else ''}head "
            f"{list(class_names)}"
        )
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
        backbone = self.model.backbone
        count = len(backbone_units(backbone, unit)) if blocks is None else blocks
        multiplier = check_multiplier(lowest_block_multiplier)
        trainable = set_trainable(
            backbone,
            count,
            unit=unit,
            train_bn=train_bn,
            multipliers=block_multipliers(count, multiplier),
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

    @contextlib.contextmanager
    def _training_precision(self):
        """Trains a copy of the model in `compute_precision`, then copies it back.

        `self.model` is that copy inside the block (callbacks see it), and the
        same float32 model object again after it, holding the trained weights and
        trainable flags. Nested blocks (`fit` calling `fit_phase`) convert once.
        """
        policy = self.compute_precision
        if self._in_training_precision or model_precision(self.model) == policy:
            yield
            return
        float_model = self.model
        with self._scope():
            self.model = with_precision(float_model, policy)
        self._in_training_precision = True
        logger.info(f"training in {policy}")
        try:
            yield
        finally:
            copy_state(self.model, float_model)
            self.model = float_model
            self._in_training_precision = False

    _in_training_precision = False

    # === Data ===
    @property
    def is_multi_label(self) -> bool:
        """Whether the model is multi-label (before building: whether it was asked to be)."""
        if self.model is not None:
            return self.model.head.multi_label
        return bool(self.multi_label) or self.head.multi_label

    def _source(self, data, labels=None, *, class_names=None, require_labels=True) -> ImageSource:
        # Once built, the model says; before, the FineTuner's setting (None: detect).
        multi_label = self.is_multi_label if self.built or self.head.multi_label else None
        if multi_label is None:
            multi_label = self.multi_label
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
        source = self._source(data, labels, class_names=known)
        if source.class_names is not None and len(source.class_names) < 2:
            raise ValueError(
                f"Training needs at least 2 classes; the data has {source.class_names}."
            )
        return source

    def _build_for(self, source: ImageSource) -> None:
        """Builds the model for the source's classes, or checks they are the model's."""
        if not self.built:
            self.build(source.class_names, multi_label=source.multi_label or None)
            self._classes_from_data = source.class_names is not None
        elif source.class_names is not None and list(source.class_names) != self.class_names:
            raise ValueError(
                f"The data's classes {source.class_names} differ from the model's "
                f"{self.class_names}."
            )

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
            if validation.multi_label != source.multi_label:
                raise ValueError(
                    "The training data is "
                    f"{'multi-label' if source.multi_label else 'single-label'} but the "
                    "validation data is not: give both in the same form."
                )
            warn_if_overlapping(train, validation)
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

        The recipe, as calls you can also make yourself: `split` the data (and
        build the model), then for each `Phase` of `schedule.plan(epochs)`,
        `fit_phase` (which sets what trains, recompiles and trains), and at the
        end put back the best epoch's weights.

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
            your callbacks see) the head alone; use `checkpoint_dir` to save
            the full model.

        Returns:
            A `pandas.DataFrame` with one row per epoch: `epoch`, `phase`,
            `learning_rate`, `loss`, `accuracy`, `val_loss`, `val_accuracy`
            and `seconds`. It is also kept as `self.history`.
        """
        schedule = schedules_module.get(schedule if schedule is not None else self.schedule)
        phases = schedule.plan(epochs)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be an integer >= 1. Received: {batch_size!r}")
        strategy = self.strategy  # first: a cluster must form before other TensorFlow work
        if strategy is not None:
            self._check_distributed_fit(strategy, batch_size)
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)

        # === Resuming ===
        state = read_state(checkpoint_dir) if checkpoint_dir is not None else None
        # Every worker must resume from the same epoch (checkpoint_dir a shared folder).
        agree(strategy, state["epochs_done"] if state else 0, "the epochs done in checkpoint_dir")
        split_seed = self.seed
        if state is not None:
            check_same_run(state, checkpoint_dir, epochs, _schedule_config(schedule))
            split_seed = state["split_seed"]
            with self._scope():
                self.model = keras.saving.load_model(state["model_path"])
                if model_precision(self.model) != "float32":
                    # Checkpoints hold the model as it trained; between runs it is float32.
                    self.model = with_precision(self.model, "float32")
            self._classes_from_data = self.model.head.class_names is not None
            logger.info(
                f"resuming from {checkpoint_dir}: {state['epochs_done']}/{epochs} epochs done"
            )
        elif checkpoint_dir is not None and split_seed is None:
            # The validation split must be the same when the run resumes.
            split_seed = int(np.random.default_rng().integers(2**31))

        train, validation = self.split(data, labels, validation_data, seed=split_seed)
        self._into_strategy()
        agree(strategy, len(train) if train.dataset is None else 0, "the training images")
        # A calibration fitted to the weights before this run would not fit those after.
        reset_calibration(self.model.head)
        class_weight = resolve_class_weight(class_weight, train, self.class_names)

        # === Callbacks ===
        rows = list(state["history"]) if state else []
        done = state["epochs_done"] if state else 0
        recorder = HistoryRecorder(None, rows)
        own_callbacks = [recorder]
        best = BestWeights(self) if restore_best_weights and validation is not None else None
        if best is not None:
            own_callbacks.append(best)
        if checkpoint_dir is not None and self.is_chief:
            run_state = {
                "epochs": epochs,
                "schedule": _schedule_config(schedule),
                "split_seed": split_seed,
            }
            own_callbacks.append(RunCheckpoint(self, checkpoint_dir, run_state, rows))

        # === The phases ===
        with reporting_lost_workers(strategy, checkpoint_dir), self._training_precision():
            for phase in phases:
                if phase.end_epoch <= done:
                    continue
                recorder.start_phase(phase.name)
                self.fit_phase(
                    phase,
                    train,
                    validation,
                    schedule=schedule,
                    batch_size=batch_size,
                    callbacks=list(callbacks or []) + own_callbacks,
                    class_weight=class_weight,
                    shuffle=shuffle,
                    verbose=verbose,
                    initial_epoch=max(phase.start_epoch, done),
                    last=phase is phases[-1],
                )
            if best is not None:
                best.restore()
        if self.model.head.multi_label:
            if validation is not None:
                self.choose_thresholds(validation, batch_size=batch_size)
            else:
                logger.info(
                    "no validation data: every class keeps the decision threshold 0.5; call "
                    "choose_thresholds() with held-out images to tune them"
                )
        self.history = history_frame(rows)
        return self.history

    _classes_from_data = False

    def _check_distributed_fit(self, strategy, batch_size: int) -> None:
        """Refuses, before any training, what would make replicas or workers go different ways."""
        replicas = strategy.num_replicas_in_sync
        if batch_size < replicas:
            raise ValueError(
                f"`batch_size` is the global batch, split over {replicas} replicas: it must be "
                f"at least {replicas}. Received: batch_size={batch_size}"
            )
        if is_multi_worker(strategy) and self.seed is None:
            raise ValueError(
                "Training on several workers needs FineTuner(seed=...): every worker must "
                "draw the same validation split and shuffle the same way. Received: seed=None"
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
        with self._training_precision():
            self._fit_phase(
                phase,
                train,
                validation,
                schedule=schedule,
                batch_size=batch_size,
                callbacks=callbacks,
                class_weight=class_weight,
                shuffle=shuffle,
                verbose=verbose,
                initial_epoch=initial_epoch,
                last=last,
                trainable=trainable,
            )

    def _fit_phase(
        self,
        phase,
        train,
        validation,
        *,
        schedule,
        batch_size,
        callbacks,
        class_weight,
        shuffle,
        verbose,
        initial_epoch,
        last,
        trainable,
    ):
        schedule = schedules_module.get(schedule if schedule is not None else self.schedule)
        if trainable is None:
            trainable = apply_phase(self.model.backbone, phase, schedule)
        logger.info(describe_phase(phase, trainable, self.backbone_name))
        if self.seed is not None:
            # Reseed per phase: a cache hit skips the work that would otherwise
            # have consumed random numbers, and must not change the result.
            keras.utils.set_random_seed(self.seed + phase.start_epoch)
            reseed_layers(self.model, self.seed + phase.start_epoch)
        run = PhaseRun(
            phase=phase,
            schedule=schedule,
            trainable=trainable,
            optimizer=self.optimizer,
            train=train,
            validation=validation,
            batch_size=batch_size,
            callbacks=list(callbacks or []),
            class_weight=class_weight,
            shuffle=shuffle,
            augmentation=augmentation_layer(self.augmentation, self.seed),
            verbose=verbose,
            initial_epoch=phase.start_epoch if initial_epoch is None else initial_epoch,
            seed=self.seed,
            jit_compile=self.jit_compile,
            strategy=self.strategy,
        )
        if trainable.frozen and self.cache_features and train.dataset is None:
            fit_cached(self.model, run, self._feature_cache(), self._views(run, last))
        else:
            fit_end_to_end(self.model, run)
        if getattr(self.model, "stop_training", False):
            logger.info(f"a callback ended phase {phase.name!r} early")
            self.model.stop_training = False

    def _feature_cache(self) -> FeatureCache | None:
        """The cache frozen phases use: the FineTuner's own, the shared one, or none."""
        if isinstance(self.cache_features, FeatureCache):
            return self.cache_features
        return default_cache() if self.cache_features else None

    def _views(self, run: PhaseRun, last: bool) -> int:
        """How many views of each training image a cached phase computes.

        `cached_views=None` decides by the phase's role: a frozen phase that ends
        the run gives the head all the augmentation it will ever see (2 views);
        a warm-up before unfreezing only has to bring the head close, and the
        unfrozen epochs augment afresh, so it takes the plain images (1 view) at
        half the cost.
        """
        if run.augmentation is None:
            return 1
        if self.cached_views is not None:
            return self.cached_views
        return 2 if last else 1

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
        if source.dataset is not None:
            raise ValueError(
                "find_lr needs images it can cache: pass files or arrays, not a tf.data.Dataset."
            )
        self._build_for(source)
        self.freeze()
        with self._training_precision():
            features, feature_labels = cached_features(
                self.model,
                source,
                cache=self._feature_cache(),
                batch_size=batch_size,
                seed=self.seed,
                jit_compile=self.jit_compile,
            )
        if is_multi_worker(self.strategy):
            raise ValueError(
                "find_lr runs Keras's own fit, which fails on a multi-worker cluster: find the "
                "learning rate in one process (distribute=None), then train on the cluster."
            )
        # The head's variables live in the strategy's scope: its optimizer must too.
        with self._scope():
            return find_learning_rate(
                head_model(self.model.head, features.shape[1:]),
                np.asarray(features),
                np.asarray(feature_labels),
                self.model.head.default_loss(),
                start_learning_rate,
                end_learning_rate,
                steps,
                batch_size,
                self.seed,
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
        probabilities = self._probabilities(source, batch_size, views)
        if self.model.head.multi_label:
            mask = self.model.head.predicted_mask(probabilities)
            return multi_label_predictions_frame(
                probabilities, self.class_names, source.identifiers, mask
            )
        predicted = self.model.head.predicted_indices(probabilities)
        return predictions_frame(probabilities, self.class_names, source.identifiers, predicted)

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
        probabilities = self._probabilities(source, batch_size, views)
        if self.model.head.multi_label:
            head = self.model.head
            return multi_label_report(
                probabilities,
                self._labels(source, batch_size),
                self.class_names,
                source.identifiers,
                head.predicted_mask(probabilities),
                head.threshold_array(),
            )
        return evaluation_report(
            probabilities,
            self._labels(source, batch_size),
            self.class_names,
            source.identifiers,
            self.model.head.predicted_indices(probabilities),
        )

    def _labels(self, source, batch_size) -> np.ndarray:
        if source.labels is None and source.dataset is not None:
            # make_dataset turns one-hot and (batch, 1) labels into class indices.
            labelled = make_dataset(source, self.image_size, batch_size)
            return np.concatenate([np.asarray(y) for _, y in labelled])
        return source.labels

    def _probabilities(self, source, batch_size, views=None):
        dataset = make_dataset(source, self.image_size, batch_size, include_labels=False)
        outputs = outputs_with_views(self.model, dataset, views)
        return self.model.head.probabilities(outputs)

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
        return explain_images(self.model, source, class_name, layer, batch_size)

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
        if not self.model.head.multi_label:
            raise ValueError(
                "choose_thresholds is for a multi-label model; for two classes use "
                "calibrate(validation_data, threshold_metric=...)."
            )
        source = self._source(validation_data, labels, class_names=self.class_names)
        probabilities = self._probabilities(source, batch_size)
        table = choose_thresholds(
            probabilities, self._labels(source, batch_size), self.class_names, metric
        )
        self.model.head.thresholds = [float(value) for value in table["threshold"]]
        chosen = ", ".join(f"{name} {value:.3f}" for name, value in table["threshold"].items())
        logger.info(
            f"decision thresholds chosen on {len(probabilities)} images for {metric}: {chosen}"
        )
        kept = table[table["note"] != ""]
        if len(kept):
            logger.warning(
                "Classes %s have only one kind of image in the validation data: they keep the "
                "threshold 0.5.",
                list(kept.index),
            )
        return table

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
        return calibrate_classifier(
            self.model,
            make_dataset(source, self.image_size, batch_size, include_labels=False),
            self._labels(source, batch_size),
            threshold_metric,
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
        model = self.model
        if model_precision(model) != "float32":
            # Saved during training (from a callback): the file still computes in float32.
            model = with_precision(model, "float32")
        with atomic_path(path, overwrite=overwrite) as tmp:
            model.save(tmp)
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
            tolerance: float or None. The largest probability difference a
                float export may show in the check. Defaults to `None`: 1e-4
                for float32, 1e-2 for float16 (integer quantization is reported,
                not judged).
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
        self._require_built("model")
        from transferkit.export import export_model

        return export_model(
            self.model,
            path,
            format,
            quantize=quantize,
            representative_data=representative_data,
            check=check,
            tolerance=tolerance,
            overwrite=overwrite,
            batch_size=batch_size,
        )

    @classmethod
    def from_model(cls, model: keras.Model) -> "FineTuner":
        """Wraps a classifier (for example a loaded one) in a FineTuner.

        The settings are those the model was saved with (`finetuner_config`);
        a classifier without them (built by hand, or saved by transferkit 0.1)
        gets the defaults around its own backbone, head and input size.

        Args:
            model: `ImageClassifier`, or a classifier saved by transferkit 0.1.

        Raises:
            ValueError: if `model` is neither.
        """
        backbone_name = None
        if is_legacy_classifier(model):
            model, backbone_name = upgrade_legacy_classifier(model)
        if not isinstance(model, ImageClassifier):
            raise ValueError(
                f"A FineTuner wraps a transferkit.ImageClassifier. Received a "
                f"{type(model).__name__} named {model.name!r}."
            )
        config = dict(model.finetuner_config or {})
        if not config:
            head = model.head.get_config()
            # The decision threshold belongs to the trained model, not to the settings.
            head.update(
                num_classes=None, class_names=None, decision_threshold=None, thresholds=None
            )
            head.pop("name", None)
            config = {
                # A registry name keeps the log's and the CLI's wording; else the model.
                "backbone": backbone_name if backbone_name in BACKBONES else model.backbone,
                "num_classes": model.head.num_classes,
                "weights": None,
                "head": keras.saving.serialize_keras_object(ClassificationHead.from_config(head)),
                "input_shape": [*model.image_size, 3],
            }
        if isinstance(config.get("backbone"), dict):
            # The model holds the backbone (with its weights): no need to rebuild it.
            config["backbone"] = model.backbone
        finetuner = cls(**finetuner_kwargs(cls, config))
        finetuner.model = model
        finetuner._classes_from_data = model.head.class_names is not None
        return finetuner


def reseed_layers(model: keras.Model, seed: int) -> None:
    """Restarts the random state of the model's layers (Dropout and the like) from `seed`.

    Keras seeds these from the global seed when a layer is created, and a `.keras`
    file does not keep their state: without this, a loaded model would draw other
    dropout masks than the model it was saved from, and a fit after loading would
    not repeat a fit after fitting.
    """
    states = [v for v in model.non_trainable_variables if v.name == "seed_generator_state"]
    for index, state in enumerate(states):
        state.assign(np.array([seed + index, 0], dtype=state.dtype))


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

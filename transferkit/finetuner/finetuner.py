"""The FineTuner: a pretrained backbone fine-tuned into an image classifier."""

import os

import keras
import numpy as np
import pandas as pd

from transferkit import schedules as schedules_module
from transferkit.backbones import build_backbone, get_backbone_spec
from transferkit.data import ImageSource, as_image_source, make_dataset, stratified_split
from transferkit.data.duplicates import warn_if_overlapping
from transferkit.features import FeatureCache
from transferkit.finetuner.augmentation import augmentation_layer
from transferkit.finetuner.best_weights import BestWeights
from transferkit.finetuner.checkpoint import RunCheckpoint, check_same_run, read_state
from transferkit.finetuner.freezing import apply_phase, describe_phase
from transferkit.finetuner.lr_finder import LRFinderResult, find_learning_rate
from transferkit.finetuner.model import HEAD_NAME, build_classifier, classifier_parts
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
from transferkit.optimizers import get_optimizer
from transferkit.utils.files import atomic_path
from transferkit.utils.log import logger


class FineTuner:
    """Fine-tunes a pretrained backbone into an image classifier.

    The model takes raw RGB images (values 0-255, any size): it resizes them and
    applies the backbone's own preprocessing, so predictions and saved models
    need no separate preprocessing step. Training follows a `Schedule`; the
    default warms the head up on a frozen backbone (training it on cached
    backbone features), then unfreezes the backbone at discriminative learning
    rates with BatchNorm kept in inference mode.

    As with scikit-learn estimators, the constructor only stores its arguments:
    the model is built by the first `fit` (or by `build()`), when the classes
    are known.

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
            Defaults to `ClassificationHead()`.
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
        augment_copies: int or None. Views of each training image kept in the
            feature cache (the plain image plus `augment_copies - 1` augmented
            ones); each costs one pass of the backbone. `None` picks by the
            frozen phase's role: `2` when it ends the run (a head-only run, where
            the cached views are all the augmentation the head ever sees), `1`
            when the backbone unfreezes after it (a warm-up: the unfrozen epochs
            see fresh augmentation, and a second view would double the warm-up's
            cost; `bench/keras_recipe.py`). Defaults to `None`.
        cache_features: bool or `FeatureCache`. Whether frozen phases train the
            head on features computed once rather than running the backbone in
            every epoch. `True` uses the cache shared by the whole process
            (`transferkit.features.default_cache()`: in memory up to 4 GiB, then
            on disk); pass a `FeatureCache` to choose its folder and budget.
            Defaults to `True`.
        jit_compile: bool. Whether Keras compiles training and feature
            extraction with XLA. On 2 CPU cores XLA made feature extraction
            several times slower (compilation dominates; `bench/feature_cache.py`),
            so it is off by default. Defaults to `False`.
        validation_split: float. Fraction of the training data held out
            (stratified, seeded) when `fit` gets no `validation_data`; `0`
            disables it. Defaults to `0.2`.
        path_column: str. Column of file paths in a DataFrame. Defaults to
            `"path"`.
        label_column: str. Column of labels in a DataFrame. Defaults to
            `"label"`.
        seed: int or None. Makes the split, shuffling, augmentation and
            initialisation repeatable. Defaults to `None`.

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
        backbone: str | keras.Model = "resnet50",
        num_classes: int | None = None,
        *,
        weights: str | os.PathLike | None = "imagenet",
        head: ClassificationHead | None = None,
        input_shape: tuple[int, int, int] | int | None = None,
        schedule: str | schedules_module.Schedule = "freeze_unfreeze",
        optimizer: str = "adam",
        augmentation="flip",
        augment_copies: int | None = None,
        cache_features: "bool | FeatureCache" = True,
        jit_compile: bool = False,
        validation_split: float = 0.2,
        path_column: str = "path",
        label_column: str = "label",
        seed: int | None = None,
    ):
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
        if augment_copies is not None and (
            isinstance(augment_copies, bool)
            or not isinstance(augment_copies, int)
            or augment_copies < 1
        ):
            raise ValueError(
                "`augment_copies` must be an integer >= 1, or None to choose by schedule. "
                f"Received: augment_copies={augment_copies!r}"
            )
        augmentation_layer(augmentation, seed)  # validates early
        schedules_module.get(schedule)
        get_optimizer(optimizer, 1e-3)
        if isinstance(backbone, str):
            get_backbone_spec(backbone)

        self.backbone_name = backbone if isinstance(backbone, str) else backbone.name
        self._backbone_arg = backbone
        self.num_classes = num_classes
        self.weights = weights
        self.head_config = head if head is not None else ClassificationHead()
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self.schedule = schedule
        self.optimizer = optimizer
        self.augmentation = augmentation
        self.augment_copies = augment_copies
        self.cache_features = cache_features
        self.jit_compile = bool(jit_compile)
        self.validation_split = validation_split
        self.path_column = path_column
        self.label_column = label_column
        self.seed = seed

        self.model = None
        self.history = None
        self.skipped = pd.DataFrame(columns=["path", "reason"])

    # === Building ===
    @property
    def built(self) -> bool:
        """Whether the model exists (after `build()` or the first `fit`)."""
        return self.model is not None

    @property
    def class_names(self) -> list[str] | None:
        """The classes the model predicts, in output order (None before building)."""
        return None if self.model is None else self.head.labels

    @property
    def head(self) -> ClassificationHead:
        """The model's `ClassificationHead` layer (with its class names)."""
        self._require_built("head")
        return self.model.get_layer(HEAD_NAME)

    @property
    def backbone(self) -> keras.Model:
        """The nested backbone model inside `self.model`."""
        self._require_built("backbone")
        return classifier_parts(self.model)[1]

    @property
    def image_size(self) -> tuple[int, int]:
        """The (height, width) images are resized to."""
        if self.model is not None:
            return tuple(classifier_parts(self.model)[0].image_size)
        if self.input_shape is not None:
            return tuple(self.input_shape[:2])
        size = get_backbone_spec(self.backbone_name).default_size
        return (size, size)

    def build(self, class_names: list[str] | None = None) -> keras.Model:
        """Builds the model (the first `fit` does this for you).

        Args:
            class_names: list of str or None. The classes, in output order.
                Defaults to `"0"`, `"1"`, ... for `num_classes` classes.

        Returns:
            The `keras.Model`.
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
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        backbone, spec = build_backbone(
            self._backbone_arg, weights=self.weights, input_shape=self.input_shape
        )
        config = self.head_config.get_config()
        config.update(num_classes=len(class_names), class_names=list(class_names), name=HEAD_NAME)
        head = ClassificationHead.from_config(config)
        image_size = tuple(backbone.input_shape[1:3])
        if None in image_size:
            image_size = self.image_size
        self.model = build_classifier(backbone, spec.name, spec.preprocessing, image_size, head)
        backbone.trainable = False
        logger.info(
            f"built {spec.name} ({backbone.count_params():,} parameters, input "
            f"{image_size[0]}x{image_size[1]}, preprocessing {spec.preprocessing!r}) with a "
            f"{len(class_names)}-class head {list(class_names)}"
        )
        return self.model

    def _require_built(self, what):
        if self.model is None:
            raise ValueError(f"The FineTuner has no {what} yet: call fit() or build() first.")

    # === Data ===
    def _source(self, data, labels=None, *, class_names=None, require_labels=True) -> ImageSource:
        source = as_image_source(
            data,
            labels,
            class_names=class_names,
            path_column=self.path_column,
            label_column=self.label_column,
            require_labels=require_labels,
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
            self.build(source.class_names)
            self._classes_from_data = source.class_names is not None
        elif source.class_names is not None and list(source.class_names) != self.class_names:
            raise ValueError(
                f"The data's classes {source.class_names} differ from the model's "
                f"{self.class_names}."
            )

    # === Training ===
    def fit(
        self,
        data,
        labels=None,
        *,
        validation_data=None,
        epochs: int = 5,
        batch_size: int = 32,
        callbacks: list | None = None,
        schedule=None,
        class_weight: dict | None = None,
        shuffle: bool = True,
        checkpoint_dir: str | os.PathLike | None = None,
        restore_best_weights: bool = True,
        verbose="auto",
    ) -> pd.DataFrame:
        """Fine-tunes on `data` following the schedule.

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
            class_weight: dict or None. Class index -> weight, as in Keras.
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
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)

        # === Resuming ===
        schedule_config = keras.saving.serialize_keras_object(schedule)
        state = read_state(checkpoint_dir) if checkpoint_dir is not None else None
        split_seed = self.seed
        if state is not None:
            check_same_run(state, checkpoint_dir, epochs, schedule_config)
            split_seed = state["split_seed"]
            self.model = keras.saving.load_model(state["model_path"])
            self._classes_from_data = self.head.class_names is not None
            logger.info(
                f"resuming from {checkpoint_dir}: {state['epochs_done']}/{epochs} epochs done"
            )
        elif checkpoint_dir is not None and split_seed is None:
            # The validation split must be the same when the run resumes.
            split_seed = int(np.random.default_rng().integers(2**31))

        source = self._training_source(data, labels)
        if validation_data is not None:
            train = source
            validation = self._source(validation_data, class_names=source.class_names)
            warn_if_overlapping(train, validation)
        elif self.validation_split and source.dataset is None:
            train, validation = stratified_split(source, self.validation_split, seed=split_seed)
        else:
            train, validation = source, None

        self._build_for(source)

        rows = list(state["history"]) if state else []
        done = state["epochs_done"] if state else 0
        extra_callbacks = [HistoryRecorder(None, rows)]
        best = BestWeights(self) if restore_best_weights and validation is not None else None
        if best is not None:
            extra_callbacks.append(best)
        if checkpoint_dir is not None:
            run_state = {"epochs": epochs, "schedule": schedule_config, "split_seed": split_seed}
            extra_callbacks.append(RunCheckpoint(self, checkpoint_dir, run_state, rows))
        for phase in phases:
            if phase.end_epoch <= done:
                continue
            extra_callbacks[0].phase_name = phase.name
            change = apply_phase(self.backbone, phase, schedule)
            logger.info(describe_phase(phase, change, self.backbone_name, schedule.train_bn))
            cached = phase.frozen and self.cache_features and train.dataset is None
            if self.seed is not None:
                # Reseed per phase: a cache hit skips the work that would otherwise
                # have consumed random numbers, and must not change the result.
                keras.utils.set_random_seed(self.seed + phase.start_epoch)
            run = PhaseRun(
                phase=phase,
                schedule=schedule,
                change=change,
                train=train,
                validation=validation,
                batch_size=batch_size,
                callbacks=list(callbacks or []) + extra_callbacks,
                class_weight=class_weight,
                shuffle=shuffle,
                augmentation=augmentation_layer(self.augmentation, self.seed),
                verbose=verbose,
                initial_epoch=max(phase.start_epoch, done),
                last=phase is phases[-1],
            )
            (fit_cached if cached else fit_end_to_end)(self, run)
            if getattr(self.model, "stop_training", False):
                logger.info(f"a callback ended phase {phase.name!r} early")
                self.model.stop_training = False
        if best is not None:
            best.restore()
        self.history = history_frame(rows)
        return self.history

    _classes_from_data = False

    def find_lr(
        self,
        data,
        labels=None,
        *,
        start_learning_rate: float = 1e-7,
        end_learning_rate: float = 1.0,
        steps: int = 100,
        batch_size: int = 32,
    ) -> LRFinderResult:
        """Finds a learning rate for the head on the frozen backbone (a range test).

        Trains the head on cached backbone features for `steps` batches at rates
        growing exponentially from `start_learning_rate` to `end_learning_rate`,
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
        self.backbone.trainable = False
        features, feature_labels = cached_features(self, source, batch_size, None, 1)
        return find_learning_rate(
            head_model(self.head, features.shape[1:]),
            np.asarray(features),
            np.asarray(feature_labels),
            self.head.default_loss(),
            start_learning_rate,
            end_learning_rate,
            steps,
            batch_size,
            self.seed,
        )

    # === Inference ===
    def predict(self, images, batch_size: int = 32) -> pd.DataFrame:
        """Predicts the class of each image.

        Args:
            images: A path, a list of paths, a folder, a DataFrame with a path
                column, an array `(N, H, W, 3)` of values 0-255, or a
                `tf.data.Dataset` of images.
            batch_size: int. Defaults to `32`.

        Returns:
            A `pandas.DataFrame` with one row per usable image: `path` (when the
            images came from files), `label`, `probability`, and one
            `prob_<class>` column per class. Unreadable files are left out,
            reported in the log and listed in `self.skipped`.
        """
        self._require_built("model")
        source = self._source(images, require_labels=False)
        probabilities = self._probabilities(source, batch_size)
        return predictions_frame(probabilities, self.class_names, source.identifiers)

    def evaluate(self, data, labels=None, batch_size: int = 32) -> EvaluationReport:
        """Measures the model on labelled data.

        Args:
            data: Labelled images in any form `fit` accepts.
            labels: array-like or None. Labels for a list of paths or an array.
            batch_size: int. Defaults to `32`.

        Returns:
            An `EvaluationReport`: `metrics` (loss, accuracy, macro precision,
            recall and F1), `per_class` precision and recall, the
            `confusion_matrix` and the `predictions`, all pandas.

        Raises:
            ValueError: if the data has a label the model was never trained on.
        """
        self._require_built("model")
        source = self._source(data, labels, class_names=self.class_names)
        probabilities = self._probabilities(source, batch_size)
        source_labels = source.labels
        if source_labels is None and source.dataset is not None:
            # make_dataset turns one-hot and (batch, 1) labels into class indices.
            labelled = make_dataset(source, self.image_size, batch_size)
            source_labels = np.concatenate([np.asarray(y) for _, y in labelled])
        return evaluation_report(
            probabilities, source_labels, self.class_names, source.identifiers
        )

    def _probabilities(self, source, batch_size):
        dataset = make_dataset(source, self.image_size, batch_size, include_labels=False)
        outputs = self.model.predict(dataset, verbose=0)
        return self.head.probabilities(outputs)

    # === Saving ===
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Saves the model (with its preprocessing and class names) to a `.keras` file.

        The file is written beside its destination and renamed onto it only once
        complete, so a crash mid-save leaves an existing file intact.

        Args:
            path: str or path. Must end in `.keras`.
            overwrite: bool. Whether to replace an existing file. Defaults to
                `False`.

        Raises:
            FileExistsError: if `path` exists and `overwrite` is `False`.
        """
        self._require_built("model")
        if not str(path).endswith(".keras"):
            raise ValueError(f"The path must end in '.keras'. Received: path={str(path)!r}")
        with atomic_path(path, overwrite=overwrite) as tmp:
            self.model.save(tmp)
        logger.info(f"saved {path}")

    @classmethod
    def from_model(cls, model: keras.Model) -> "FineTuner":
        """Wraps a classifier built by transferkit (for example a loaded one)."""
        preprocessing, backbone, head, backbone_name = classifier_parts(model)
        head_config = head.get_config()
        head_config.update(num_classes=None, class_names=None)
        head_config.pop("name", None)
        finetuner = cls.__new__(cls)
        finetuner.__init__(
            backbone=backbone,
            num_classes=head.num_classes,
            weights=None,
            head=ClassificationHead.from_config(head_config),
            input_shape=(*preprocessing.image_size, 3),
        )
        finetuner.backbone_name = backbone_name
        finetuner.model = model
        finetuner._classes_from_data = head.class_names is not None
        return finetuner


def load(path: str | os.PathLike) -> FineTuner:
    """Loads a model saved by `FineTuner.save` as a `FineTuner`.

    Plain `keras.saving.load_model(path)` works too once transferkit is
    imported; this also restores the class names and settings around it.

    Args:
        path: str or path. A `.keras` file written by `FineTuner.save`.

    Returns:
        A `FineTuner` ready to `predict`, `evaluate`, `save` or `fit` on.

    Raises:
        FileNotFoundError: if there is no file at `path`.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"No saved model at {path!r}.")
    model = keras.saving.load_model(path)
    return FineTuner.from_model(model)

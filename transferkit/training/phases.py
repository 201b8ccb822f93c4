"""Running one phase of a schedule: end to end, or on cached backbone features.

A phase is prepared in one of two ways, `end_to_end_inputs` (the whole
classifier on raw images) or `cached_inputs` (the head alone on features
computed once, while the backbone is frozen), and trained by one loop,
`train_phase`: it compiles for the phase (a fresh layer-wise optimizer with the
phase's learning-rate schedule, the head's loss and metrics) and runs Keras's
`fit`, or under a `tf.distribute` strategy the custom distributed step of
`transferkit.training.distributed`, with the same callbacks.
"""

import dataclasses
import functools
import math
import os

import keras
import numpy as np
import tensorflow as tf

from transferkit.data import ImageSource, make_dataset
from transferkit.features import (
    FeatureCache,
    extract_features,
    feature_batches,
    model_fingerprint,
    view_labels,
)
from transferkit.features import source_fingerprint as fingerprint_source
from transferkit.models import ImageClassifier
from transferkit.optimizers import get_optimizer
from transferkit.precision import dtype_policy_scope, model_precision
from transferkit.schedules import Phase, Schedule
from transferkit.training.augmentation import augmentation_key
from transferkit.training.distributed import DistributedSteps
from transferkit.training.freezing import Trainable


@dataclasses.dataclass
class PhaseRun:
    """One phase of a run: what trains, on which data, with which Keras `fit` settings.

    Args:
        phase: `Phase`. The epochs, the number of trainable blocks and the peak
            learning rate.
        schedule: `Schedule`. Gives the learning rate's shape within the phase.
        trainable: `Trainable`. What `set_trainable` made trainable, with the
            learning-rate multipliers of the backbone's layers.
        optimizer: str. `"adam"`, `"adamw"` or `"sgd"`.
        train, validation: `ImageSource`s (validation may be None).
        batch_size, callbacks, class_weight, shuffle, verbose: as in Keras's
            `fit`.
        augmentation: Keras layer or None. Random augmentation of training
            batches.
        initial_epoch: int. Where the phase starts (later than
            `phase.start_epoch` when a run resumes inside it).
        seed: int or None. Seeds shuffling, augmentation and cached views.
        jit_compile: bool. Whether Keras compiles with XLA.
        strategy: `tf.distribute.Strategy` or None. The strategy the model was
            built under; None trains with Keras's `fit` on one device.
    """

    phase: Phase
    schedule: Schedule
    trainable: Trainable
    optimizer: str
    train: ImageSource
    validation: ImageSource | None
    batch_size: int
    callbacks: list
    class_weight: dict | None
    shuffle: bool
    augmentation: keras.layers.Layer | None
    verbose: object
    initial_epoch: int
    seed: int | None
    jit_compile: bool
    strategy: tf.distribute.Strategy | None = None


def compile_for_phase(
    model: keras.Model, loss: str, run: PhaseRun, steps_per_epoch: int, metrics=None
) -> None:
    """Compiles `model` with a fresh optimizer carrying the phase's rates and multipliers.

    `metrics` defaults to `["accuracy"]`; a multi-label head passes its own
    (`ClassificationHead.default_metrics`).
    """
    phase = run.phase
    learning_rate = run.schedule.learning_rate_schedule(phase, steps_per_epoch)
    optimizer = get_optimizer(run.optimizer, learning_rate, run.trainable.lr_multipliers)
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=metrics or ["accuracy"],
        jit_compile=run.jit_compile,
    )
    if run.initial_epoch > phase.start_epoch:
        # Resuming inside a phase: its learning-rate schedule goes on where it was.
        optimizer.build(model.trainable_variables)
        optimizer.iterations.assign((run.initial_epoch - phase.start_epoch) * steps_per_epoch)


@dataclasses.dataclass
class PhaseInputs:
    """What a phase trains and on what, in the form its training loop takes.

    Args:
        target: `keras.Model`. The whole classifier, or the head alone on
            cached features (it shares its weights with the classifier).
        x: Keras `fit`'s `x`: a batched `(images, labels)` dataset, an array
            of features, or `DiskFeatures`; under a strategy always a batched
            `(x, y)` dataset.
        validation: Keras `fit`'s `validation_data`, or None.
        steps: int. Steps per epoch.
        y: Keras `fit`'s `y` (features in memory), or None.
        batch_size: int or None. Keras `fit`'s `batch_size` (features in memory).
        shuffle: bool. Keras `fit`'s `shuffle`: whether Keras shuffles `x`
            itself (datasets here are shuffled, seeded, where they are made).
    """

    target: keras.Model
    x: object
    validation: object
    steps: int
    y: object = None
    batch_size: int | None = None
    shuffle: bool = False


def end_to_end_inputs(model: ImageClassifier, run: PhaseRun) -> PhaseInputs:
    """The whole classifier on raw images (batched, shuffled and augmented per epoch)."""
    dataset = make_dataset(
        run.train,
        model.image_size,
        run.batch_size,
        shuffle=run.shuffle,
        seed=run.seed,
        augmentation=run.augmentation,
    )
    validation = None
    if run.validation is not None:
        validation = make_dataset(run.validation, model.image_size, run.batch_size)
    return PhaseInputs(model, dataset, validation, _steps(run.train, run.batch_size, dataset))


def cached_inputs(
    model: ImageClassifier, run: PhaseRun, cache: FeatureCache | None, views: int
) -> PhaseInputs:
    """The head alone on backbone features computed once (looked up in `cache`).

    Numerically this is the end-to-end phase with a frozen backbone in inference
    mode (the head's weights are shared with the whole classifier), minus the
    cost of running the backbone again in every epoch.

    Args:
        model: `ImageClassifier`. Its backbone must be frozen.
        run: `PhaseRun`.
        cache: `FeatureCache` or None. Where features are looked up and kept.
        views: int. Views of each training image to compute (the plain image,
            then augmented ones).
    """
    augmentation = run.augmentation if views > 1 else None
    # Bars only where Keras draws bars too; logs and pipes (verbose=2) get the summary line.
    progress = 1 if run.verbose in (1, "auto") else 0
    # Hashing the backbone's weights costs a pass over them (100 MB for ResNet50): once.
    digest = model_fingerprint(model.backbone)
    # One extractor for the training and the validation images: each new one traces anew.
    extract = dict(
        cache=cache,
        batch_size=run.batch_size,
        seed=run.seed,
        jit_compile=run.jit_compile,
        extractor=functools.cache(lambda: feature_extractor(model, run.jit_compile)),
    )
    features, labels = cached_features(
        model,
        run.train,
        views=views,
        augmentation=augmentation,
        verbose=progress,
        backbone_digest=digest,
        **extract,
    )
    validation = None
    if run.validation is not None:
        validation = cached_features(model, run.validation, backbone_digest=digest, **extract)
    steps = math.ceil(len(features) / run.batch_size)
    if run.strategy is not None:
        # The head's variables live in the strategy's scope: so does its functional model.
        with run.strategy.scope():
            head = head_model(model.head, features.shape[1:])
        train = _feature_dataset(features, labels, run.batch_size, run.shuffle, run.seed)
        if validation is not None:
            validation = _feature_dataset(*validation, run.batch_size)
        return PhaseInputs(head, train, validation, steps)
    head = head_model(model.head, features.shape[1:])
    if isinstance(features, np.memmap):
        # Spilled to disk: read batch by batch. Keras would load whole arrays into memory.
        if validation is not None and isinstance(validation[0], np.memmap):
            validation = DiskFeatures(*validation, run.batch_size)
        train = DiskFeatures(features, labels, run.batch_size, run.shuffle, run.seed)
        return PhaseInputs(head, train, validation, steps)
    return PhaseInputs(
        head, features, validation, steps, labels, run.batch_size, shuffle=run.shuffle
    )


def train_phase(inputs: PhaseInputs, head, run: PhaseRun) -> None:
    """Compiles `inputs.target` for the phase and trains it for the phase's epochs.

    One loop for every path: Keras's `fit` on one device, the distributed steps
    of `transferkit.training.distributed` under a strategy (where Keras's `fit`
    fails on several workers). Both compile the head's loss and metrics and call
    the same callbacks, so a run's history has the same columns on one device
    and under a strategy.
    """
    target, loss, metrics = inputs.target, head.default_loss(), head.default_metrics()
    if run.strategy is None:
        compile_for_phase(target, loss, run, inputs.steps, metrics)
        target.fit(
            inputs.x,
            inputs.y,
            batch_size=inputs.batch_size,
            validation_data=inputs.validation,
            initial_epoch=run.initial_epoch,
            epochs=run.phase.end_epoch,
            callbacks=run.callbacks,
            class_weight=run.class_weight,
            shuffle=inputs.shuffle,
            verbose=run.verbose,
        )
        return
    with run.strategy.scope():
        compile_for_phase(target, loss, run, inputs.steps, metrics)
        if not target.optimizer.built:
            # Built here, not lazily by the first step: a tf.function may not create variables.
            target.optimizer.build(target.trainable_variables)
    DistributedSteps(run.strategy, target, loss, metrics, run.class_weight).fit(
        inputs.x,
        inputs.validation,
        initial_epoch=run.initial_epoch,
        epochs=run.phase.end_epoch,
        callbacks=run.callbacks,
        verbose=run.verbose,
        steps=inputs.steps,
    )


class DiskFeatures(keras.utils.PyDataset):
    """Batches of features spilled to disk, read row by row (shuffled per epoch if asked).

    Rows are read with plain file reads rather than through the memory map, so an
    epoch over features larger than memory keeps no more than a batch resident.

    Args:
        features: `np.memmap` of shape `(rows, dim)`, as the feature cache returns.
        labels: array or None. One label per row.
        batch_size: int.
        shuffle: bool. Whether each epoch visits the rows in a new order.
            Defaults to `False`.
        seed: int or None. Seeds the order. Defaults to `None`.
    """

    def __init__(self, features, labels, batch_size, shuffle=False, seed=None):
        super().__init__()
        self.path, self.offset = features.filename, features.offset
        self.rows, self.dim = features.shape
        self.row_bytes = self.dim * features.dtype.itemsize
        self.labels = None if labels is None else np.asarray(labels)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(self.rows) if shuffle else np.arange(self.rows)
        self.file = open(self.path, "rb")  # noqa: SIM115 (read for the dataset's life)

    def __len__(self):
        return math.ceil(self.rows / self.batch_size)

    def __getitem__(self, index):
        rows = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        batch = np.empty((len(rows), self.dim), dtype="float32")
        descriptor = self.file.fileno()
        for position, row in enumerate(rows):
            data = os.pread(descriptor, self.row_bytes, self.offset + int(row) * self.row_bytes)
            batch[position] = np.frombuffer(data, dtype="float32")
        if self.labels is None:
            return (batch,)
        return batch, self.labels[rows]

    def on_epoch_end(self):
        if self.shuffle:
            self.order = self.rng.permutation(self.rows)

    def __del__(self):
        file = getattr(self, "file", None)
        if file is not None:
            file.close()


def _feature_dataset(features, labels, batch_size, shuffle=False, seed=None):
    """Batches of `(features, labels)`, reshuffled each epoch (the same way on every worker).

    Features spilled to disk (`np.memmap`) are read batch by batch through
    `DiskFeatures`, never loaded whole.
    """
    if isinstance(features, np.memmap):
        batches = DiskFeatures(features, labels, batch_size, shuffle, seed)

        def generate():
            for index in range(len(batches)):
                yield batches[index]
            batches.on_epoch_end()

        labels = np.asarray(labels)
        return tf.data.Dataset.from_generator(
            generate,
            output_signature=(
                tf.TensorSpec((None, *features.shape[1:]), tf.float32),
                tf.TensorSpec((None, *labels.shape[1:]), tf.as_dtype(labels.dtype)),
            ),
        )
    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffle:
        dataset = dataset.shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size)


def cached_features(
    model: ImageClassifier,
    source: ImageSource,
    *,
    cache: FeatureCache | None,
    batch_size: int,
    seed: int | None,
    jit_compile: bool = False,
    views: int = 1,
    augmentation: keras.layers.Layer | None = None,
    verbose: int = 0,
    backbone_digest: str | None = None,
    extractor=None,
):
    """`(features, labels)` of a source: from `cache`, computed on a miss.

    Args:
        model: `ImageClassifier` whose frozen backbone computes the features.
        source: `ImageSource`.
        cache: `FeatureCache` or None. `None` computes the features without
            keeping them anywhere.
        batch_size, seed, jit_compile: as for the run.
        views: int. Views of each image (the plain one, then augmented ones).
        augmentation: Keras layer or None. Makes the augmented views.
        verbose: int. 1 draws a progress bar.
        backbone_digest: str or None. `model_fingerprint(model.backbone)` when
            the caller has it already.
        extractor: callable or None. Gives the compiled feature extractor to
            compute with on a miss (called only then); `None` makes one.
    """
    key = None
    precision = model_precision(model)
    if cache is not None:
        key = cache.make_key(
            fingerprint_source(source),
            backbone_digest or model_fingerprint(model.backbone),
            model.image_size,
            views,
            None if augmentation is None else augmentation_key(augmentation),
            seed,
            # Features computed in another precision differ slightly; float32 keys
            # stay those of the cache's entries before precisions existed.
            *([] if precision == "float32" else [precision]),
        )
        entry = cache.get(key)
        if entry is not None:
            return entry
    extractor = feature_extractor(model, jit_compile) if extractor is None else extractor()
    rows, dim = len(source) * views, extractor.output_shape[-1]
    arguments = (extractor, source, model.image_size, batch_size, augmentation, views, seed)
    if cache is not None and not cache.fits_in_memory(rows * dim * 4):
        # Larger than the memory budget: written to disk batch by batch, never whole.
        batches = feature_batches(*arguments, verbose=verbose)
        return cache.put_batches(key, (rows, dim), batches, view_labels(source, views))
    features, labels = extract_features(*arguments, verbose=verbose)
    return (features, labels) if cache is None else cache.put(key, features, labels)


def feature_extractor(model: ImageClassifier, jit_compile: bool) -> keras.Model:
    """The classifier's compiled feature extractor (raw images -> pooled features)."""
    extractor = model.feature_extractor()
    extractor.compile(jit_compile=jit_compile)
    return extractor


def head_model(head, feature_shape) -> keras.Model:
    """The head alone, from pooled features; it shares its weights with the classifier."""
    # Built in the head's dtype policy, so Keras's compile adds loss scaling to a
    # mixed_float16 head as it does to the whole classifier.
    with dtype_policy_scope(head.dtype_policy.name):
        inputs = keras.Input(shape=feature_shape, name="features")
        return keras.Model(inputs, head.classify(inputs), name="head_only")


def _steps(source, batch_size, dataset):
    try:
        return math.ceil(len(source) / batch_size)
    except TypeError:  # a batched tf.data.Dataset of unknown length
        return max(1, int(dataset.cardinality()))

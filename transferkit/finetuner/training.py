"""Running one phase of a schedule: end to end, or on cached backbone features.

`FineTuner.fit` plans the phases and sets the trainable flags; this module
compiles for a phase (a fresh layer-wise optimizer with the phase's learning
rate schedule) and runs Keras's `fit` for its epochs, either on the full model
or, while the backbone is frozen, on the head alone over features computed once.
"""

import dataclasses
import math

import keras

from transferkit.data import ImageSource, make_dataset
from transferkit.features import (
    FeatureCache,
    default_cache,
    extract_features,
    model_fingerprint,
    source_fingerprint,
)
from transferkit.finetuner.augmentation import augmentation_key
from transferkit.finetuner.model import classifier_parts
from transferkit.optimizers import get_optimizer
from transferkit.schedules import Phase, Schedule


@dataclasses.dataclass
class PhaseRun:
    """Everything one phase of a run needs."""

    phase: Phase
    schedule: Schedule
    change: dict  # what `apply_phase` changed, with the learning-rate multipliers
    train: ImageSource
    validation: ImageSource | None
    batch_size: int
    callbacks: list
    class_weight: dict | None
    shuffle: bool
    augmentation: keras.layers.Layer | None
    verbose: object
    initial_epoch: int
    last: bool = True  # whether this phase ends the run


def cached_views(finetuner, run: PhaseRun) -> int:
    """How many views of each training image a cached phase computes.

    `FineTuner(augment_copies=None)` decides by the phase's role: a frozen phase
    that ends the run gives the head all the augmentation it will ever see (2
    views); a warm-up before unfreezing only has to bring the head close, and the
    unfrozen epochs augment afresh, so it takes the plain images (1 view) at half
    the cost.
    """
    if run.augmentation is None:
        return 1
    if finetuner.augment_copies is not None:
        return finetuner.augment_copies
    return 2 if run.last else 1


def compile_for_phase(finetuner, model, run: PhaseRun, steps_per_epoch: int) -> None:
    """Compiles `model` with a fresh optimizer carrying the phase's rates and multipliers."""
    phase = run.phase
    learning_rate = run.schedule.learning_rate_schedule(phase, steps_per_epoch)
    optimizer = get_optimizer(finetuner.optimizer, learning_rate, run.change["lr_multipliers"])
    model.compile(
        optimizer=optimizer,
        loss=finetuner.head.default_loss(),
        metrics=["accuracy"],
        jit_compile=finetuner.jit_compile,
    )
    if run.initial_epoch > phase.start_epoch:
        # Resuming inside a phase: its learning-rate schedule goes on where it was.
        optimizer.build(model.trainable_variables)
        optimizer.iterations.assign((run.initial_epoch - phase.start_epoch) * steps_per_epoch)


def fit_end_to_end(finetuner, run: PhaseRun) -> None:
    """Trains the full model (raw images in) for the phase's epochs."""
    dataset = make_dataset(
        run.train,
        finetuner.image_size,
        run.batch_size,
        shuffle=run.shuffle,
        seed=finetuner.seed,
        augmentation=run.augmentation,
    )
    validation = None
    if run.validation is not None:
        validation = make_dataset(run.validation, finetuner.image_size, run.batch_size)
    compile_for_phase(finetuner, finetuner.model, run, _steps(run.train, run.batch_size, dataset))
    finetuner.model.fit(
        dataset,
        validation_data=validation,
        initial_epoch=run.initial_epoch,
        epochs=run.phase.end_epoch,
        callbacks=run.callbacks,
        class_weight=run.class_weight,
        # The dataset is already shuffled (seeded) by make_dataset.
        shuffle=False,
        verbose=run.verbose,
    )


def fit_cached(finetuner, run: PhaseRun) -> None:
    """Trains the head alone on cached backbone features for the phase's epochs.

    Numerically this is the end-to-end phase with a frozen backbone in inference
    mode (the head's weights are shared with the full model), minus the cost of
    running the backbone again in every epoch.
    """
    views = cached_views(finetuner, run)
    augmentation = run.augmentation if views > 1 else None
    # Bars only where Keras draws bars too; logs and pipes (verbose=2) get the summary line.
    progress = 1 if run.verbose in (1, "auto") else 0
    # Hashing the backbone's weights costs a pass over them (100 MB for ResNet50): once.
    digest = model_fingerprint(finetuner.backbone)
    features, labels = cached_features(
        finetuner, run.train, run.batch_size, augmentation, views, progress, digest
    )
    validation = None
    if run.validation is not None:
        validation = cached_features(
            finetuner, run.validation, run.batch_size, None, 1, backbone_digest=digest
        )
    model = head_model(finetuner.head, features.shape[1:])
    compile_for_phase(finetuner, model, run, math.ceil(len(features) / run.batch_size))
    model.fit(
        features,
        labels,
        batch_size=run.batch_size,
        validation_data=validation,
        initial_epoch=run.initial_epoch,
        epochs=run.phase.end_epoch,
        callbacks=run.callbacks,
        class_weight=run.class_weight,
        shuffle=run.shuffle,
        verbose=run.verbose,
    )
    finetuner.model.stop_training = model.stop_training


def cached_features(
    finetuner, source, batch_size, augmentation, views, verbose=0, backbone_digest=None
):
    """`(features, labels)` of a source from the cache, computing them on a miss.

    `backbone_digest` is `model_fingerprint(finetuner.backbone)` when the caller has it.
    """
    cache = finetuner.cache_features
    if not isinstance(cache, FeatureCache):
        cache = default_cache()
    key = cache.make_key(
        source_fingerprint(source),
        backbone_digest or model_fingerprint(finetuner.backbone),
        finetuner.image_size,
        views,
        None if augmentation is None else augmentation_key(augmentation),
        finetuner.seed,
    )
    entry = cache.get(key)
    if entry is None:
        extractor = feature_model(finetuner.model, finetuner.image_size)
        extractor.compile(jit_compile=finetuner.jit_compile)
        features, labels = extract_features(
            extractor,
            source,
            finetuner.image_size,
            batch_size,
            augmentation,
            views,
            finetuner.seed,
            verbose=verbose,
        )
        entry = cache.put(key, features, labels)
    return entry


def head_model(head, feature_shape) -> keras.Model:
    """The head alone, from pooled features; it shares its weights with the full model."""
    inputs = keras.Input(shape=feature_shape, name="features")
    return keras.Model(inputs, head.classify(inputs), name="head_only")


def feature_model(model: keras.Model, image_size) -> keras.Model:
    """Raw images -> pooled backbone features, with the backbone in inference mode."""
    preprocessing, backbone, head, _ = classifier_parts(model)
    inputs = keras.Input(shape=(*image_size, 3))
    pooled = head.pool(backbone(preprocessing(inputs), training=False))
    return keras.Model(inputs, pooled, name="features")


def _steps(source, batch_size, dataset):
    try:
        return math.ceil(len(source) / batch_size)
    except TypeError:  # a batched tf.data.Dataset of unknown length
        return max(1, int(dataset.cardinality()))

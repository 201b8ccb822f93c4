"""Computing a frozen backbone's pooled features once, to train the head on them.

While the backbone is frozen and in inference mode its output for an image
never changes, yet a plain `model.fit` runs the whole backbone again in every
epoch. Here the features are computed once per image (and per augmented view)
and kept, keyed by everything they depend on, so the head's epochs cost almost
nothing and a second `fit` on the same data reuses them.
"""

import hashlib
import time

import keras
import numpy as np

from transferkit.data import ImageSource, make_dataset
from transferkit.data.pipeline import padded_batches
from transferkit.utils.log import logger


def source_fingerprint(source: ImageSource) -> str:
    """A digest of exactly which images (and labels) a source holds."""
    digest = hashlib.sha256()
    if source.paths is not None:
        import os

        for path in source.paths:
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    elif source.images is not None:
        digest.update(str(source.images.shape).encode())
        digest.update(np.ascontiguousarray(source.images).tobytes())
    else:
        raise ValueError(
            "A tf.data.Dataset source has no fingerprint; its features are not cached."
        )
    if source.labels is not None:
        digest.update(np.asarray(source.labels, dtype="int64").tobytes())
    return digest.hexdigest()


def model_fingerprint(model: keras.Model) -> str:
    """A digest of a model's weights, so features of other weights are never reused."""
    digest = hashlib.sha256(model.name.encode())
    for weight in model.weights:
        value = np.asarray(weight.numpy())
        digest.update(weight.path.encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


class _Progress(keras.callbacks.Callback):
    """Prints images per second while features are computed."""

    def __init__(self, total: int, batch_size: int, label: str):
        super().__init__()
        self.bar = keras.utils.Progbar(total, unit_name="image")
        self.batch_size = batch_size
        self.total = total
        self.label = label
        self.seen = 0
        self.started = time.perf_counter()

    def on_predict_batch_end(self, batch, logs=None):
        self.seen = min(self.total, self.seen + self.batch_size)
        rate = self.seen / max(1e-9, time.perf_counter() - self.started)
        self.bar.update(self.seen, values=[("images/s", rate)])


def _view_datasets(source, image_size, batch_size, augmentation, views, seed):
    """The images of `source` once per view: plain first, then `views - 1` augmented ones.

    Every batch has `batch_size` rows (`padded_batches`): one trace of the model.
    """
    for view in range(views):
        dataset = make_dataset(
            source,
            image_size,
            batch_size,
            augmentation=augmentation if view else None,
            include_labels=False,
            seed=None if seed is None else seed + view,
        )
        yield padded_batches(dataset, batch_size)


def extract_features(
    feature_model: keras.Model,
    source: ImageSource,
    image_size: tuple[int, int],
    batch_size: int,
    augmentation: keras.layers.Layer | None = None,
    views: int = 1,
    seed: int | None = None,
    verbose: int = 1,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Runs `feature_model` over a source: the plain images, then `views - 1` augmented views.

    Returns:
        `(features, labels)`: features of shape `(len(source) * views, dim)`
        (view-major: all plain images first), and the labels repeated to match
        (or `None` for an unlabeled source).
    """
    outputs = []
    started = time.perf_counter()
    for dataset in _view_datasets(source, image_size, batch_size, augmentation, views, seed):
        callbacks = [_Progress(len(source), batch_size, "features")] if verbose else []
        predicted = feature_model.predict(dataset, verbose=0, callbacks=callbacks)
        outputs.append(predicted[: len(source)])
    features = np.concatenate(outputs, axis=0)
    seconds = time.perf_counter() - started
    logger.info(
        f"computed {len(features)} feature vectors ({views} view(s) of {len(source)} images) "
        f"in {seconds:.1f}s, {len(features) / max(seconds, 1e-9):.0f} images/s"
    )
    return features, view_labels(source, views)


def view_labels(source: ImageSource, views: int) -> np.ndarray | None:
    """The labels of `views` views of `source`, view-major as the features (None if unlabeled).

    Multi-hot rows repeat whole: `np.tile` would widen them instead.
    """
    if source.labels is None:
        return None
    return np.concatenate([np.asarray(source.labels)] * views)


def feature_batches(
    feature_model: keras.Model,
    source: ImageSource,
    image_size: tuple[int, int],
    batch_size: int,
    augmentation: keras.layers.Layer | None = None,
    views: int = 1,
    seed: int | None = None,
    verbose: int = 1,
):
    """`extract_features`, one batch at a time: yields float32 arrays `(batch, dim)`.

    The rows come in the order `extract_features` returns them, and are equal to
    them, but only one batch is held at a time: for features larger than memory,
    written to disk as they come (`FeatureCache.put_batches`).
    """
    started, seen = time.perf_counter(), 0
    bar = keras.utils.Progbar(len(source) * views, unit_name="image") if verbose else None
    for dataset in _view_datasets(source, image_size, batch_size, augmentation, views, seed):
        left = len(source)
        for images in dataset:
            batch = np.asarray(feature_model.predict_on_batch(images), dtype="float32")
            batch, left = batch[:left], left - len(batch)
            seen += len(batch)
            if bar is not None:
                rate = seen / max(1e-9, time.perf_counter() - started)
                bar.update(seen, values=[("images/s", rate)])
            yield batch
    seconds = time.perf_counter() - started
    logger.info(
        f"computed {seen} feature vectors ({views} view(s) of {len(source)} images) "
        f"in {seconds:.1f}s, {seen / max(seconds, 1e-9):.0f} images/s"
    )

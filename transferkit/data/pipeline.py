"""Builds the tf.data pipeline that feeds an `ImageSource` to a model."""

import keras
import numpy as np
import tensorflow as tf

from transferkit.data.source import ImageSource
from transferkit.data.tensor_inputs import dataset_layout

AUTOTUNE = tf.data.AUTOTUNE


def make_dataset(
    source: ImageSource,
    image_size: tuple[int, int],
    batch_size: int = 32,
    *,
    shuffle: bool = False,
    seed: int | None = None,
    augmentation: keras.layers.Layer | None = None,
    include_labels: bool = True,
    one_hot: int | None = None,
) -> tf.data.Dataset:
    """Makes a batched `tf.data.Dataset` of resized images (and labels).

    Files are streamed from disk, decoded and resized in parallel; they are
    never all loaded into memory. Images come out as float32 of shape
    `(batch, height, width, 3)` with values 0-255 (resized bilinearly), as the
    backbones' own preprocessing expects. Without `shuffle` the order is that
    of `source`, so predictions line up with `source.identifiers`.

    Args:
        source: `ImageSource`. The images, from `as_image_source`.
        image_size: tuple of 2 ints. `(height, width)` to resize to.
        batch_size: int. Images per batch. Ignored for a `tf.data.Dataset`
            source that is already batched. Defaults to 32.
        shuffle: bool. Whether to shuffle the images, anew each epoch. A
            `tf.data.Dataset` source is passed through in its own order.
            Defaults to False.
        seed: int or None. Shuffle seed: the same seed gives the same order
            each run. Defaults to None.
        augmentation: `keras.layers.Layer` or None. Applied to each batch of
            images with `training=True`. Defaults to None.
        include_labels: bool. Whether to yield `(images, labels)` rather than
            images alone (unlabeled sources always yield images alone).
            Defaults to True.
        one_hot: int or None. When set, labels are one-hot float32 rows of this
            many classes instead of int64 class indices (multi-label sources
            always yield their float32 multi-hot rows). Defaults to None.

    Returns:
        A `tf.data.Dataset` of `images` or `(images, labels)` batches.

    Raises:
        ValueError: for a bad `image_size`, `batch_size` or `one_hot`.

    Example:
        >>> dataset = make_dataset(as_image_source("data/train"), (224, 224),
        ...                        shuffle=True, seed=0)  # doctest: +SKIP
    """
    image_size = _check_arguments(source, image_size, batch_size, one_hot)
    with_labels = include_labels and source.labeled

    def finish_labels(labels):
        if source.multi_label:
            return tf.cast(labels, tf.float32)  # multi-hot rows, as binary cross-entropy wants
        labels = tf.cast(labels, tf.int64)
        return tf.one_hot(labels, one_hot, dtype=tf.float32) if one_hot else labels

    if source.dataset is not None:
        dataset = _from_user_dataset(
            source.dataset, image_size, batch_size, with_labels, source.multi_label
        )
    elif source.paths is not None:
        dataset = _from_files(source, image_size, batch_size, shuffle, seed, with_labels)
    else:
        dataset = _from_arrays(source, image_size, batch_size, shuffle, seed, with_labels)

    if with_labels:
        dataset = dataset.map(lambda x, y: (x, finish_labels(y)), num_parallel_calls=AUTOTUNE)
    if augmentation is not None:
        # Sequential on purpose: random layers draw from one seed generator, and
        # parallel calls would draw in a different order each run, breaking `seed`.
        if with_labels:
            dataset = dataset.map(lambda x, y: (augmentation(x, training=True), y))
        else:
            dataset = dataset.map(lambda x: augmentation(x, training=True))
    return dataset.prefetch(AUTOTUNE)


def padded_batches(dataset: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """The image batches of `dataset`, each of exactly `batch_size` rows.

    A shorter last batch repeats its last image. Keras traces a predict step
    once per batch shape: with every batch alike, a model's predictions trace
    once, not twice (once more for the remainder, with a warning after a few
    models). Drop the predictions of the added rows: keep the first
    `len(source)` of them.
    """
    images_spec = dataset.element_spec

    def pad(images):
        missing = batch_size - tf.shape(images)[0]
        padded = tf.concat([images, tf.repeat(images[-1:], missing, axis=0)], axis=0)
        return tf.ensure_shape(padded, [batch_size, *images_spec.shape[1:]])

    return dataset.map(pad)


def _check_arguments(source, image_size, batch_size, one_hot) -> tuple[int, int]:
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) != 2
        or not all(isinstance(side, (int, np.integer)) and side > 0 for side in image_size)
    ):
        raise ValueError(
            "image_size must be (height, width), two positive ints, e.g. (224, 224). "
            f"Received: image_size={image_size!r}."
        )
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive int. Received: {batch_size=!r}.")
    num_known = len(source.class_names) if source.class_names is not None else 0
    if one_hot is not None and (not isinstance(one_hot, (int, np.integer)) or one_hot < num_known):
        raise ValueError(
            f"one_hot must be the number of classes, at least the {num_known} in "
            f"class_names={source.class_names}. Received: one_hot={one_hot!r}."
        )
    return int(image_size[0]), int(image_size[1])


def _from_files(source, image_size, batch_size, shuffle, seed, with_labels) -> tf.data.Dataset:
    def load(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return tf.image.resize(image, image_size, method="bilinear")

    if with_labels:
        dataset = tf.data.Dataset.from_tensor_slices((source.paths, source.labels))
    else:
        dataset = tf.data.Dataset.from_tensor_slices(source.paths)
    if shuffle:
        # Shuffling the file names, not the decoded images, keeps a full-size
        # buffer (a perfect shuffle) to a few bytes per image.
        dataset = dataset.shuffle(len(source.paths), seed=seed, reshuffle_each_iteration=True)
    if with_labels:
        dataset = dataset.map(
            lambda path, label: (load(path), label),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
    else:
        dataset = dataset.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size)


def _from_arrays(source, image_size, batch_size, shuffle, seed, with_labels) -> tf.data.Dataset:
    # Batches are gathered by index from the array, so a shuffle buffer holds
    # indices rather than a second copy of every image.
    images = tf.constant(source.images)
    labels = tf.constant(source.labels) if with_labels else None

    def load(indices):
        batch = tf.image.resize(tf.gather(images, indices), image_size, method="bilinear")
        return (batch, tf.gather(labels, indices)) if with_labels else batch

    dataset = tf.data.Dataset.range(len(source.images))
    if shuffle:
        dataset = dataset.shuffle(len(source.images), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).map(load, num_parallel_calls=AUTOTUNE, deterministic=True)


def _from_user_dataset(
    dataset, image_size, batch_size, with_labels, multi_label=False
) -> tf.data.Dataset:
    layout = dataset_layout(dataset)

    def images_of(images):
        images = tf.cast(images, tf.float32)
        if images.shape[-1] == 1:
            images = tf.image.grayscale_to_rgb(images)
        elif images.shape[-1] is None:
            images = tf.cond(
                tf.shape(images)[-1] == 1,
                lambda: tf.image.grayscale_to_rgb(images),
                lambda: images,
            )
        return tf.image.resize(images, image_size, method="bilinear")

    def labels_of(labels):
        if multi_label:
            return labels  # multi-hot rows pass through (cast by finish_labels)
        # One-hot (or Keras's binary (B, 1)) labels become class indices.
        if labels.shape.rank == 2:
            labels = labels[:, 0] if labels.shape[-1] == 1 else tf.argmax(labels, axis=-1)
        return tf.cast(labels, tf.int64)

    parallel = {"num_parallel_calls": AUTOTUNE, "deterministic": True}
    if not layout.batched:
        # Resize before batching: single images may differ in size.
        if layout.labeled:
            dataset = dataset.map(lambda x, y: (images_of(x), y), **parallel)
        else:
            dataset = dataset.map(images_of, **parallel)
        dataset = dataset.batch(batch_size)
    resize = (lambda x: x) if not layout.batched else images_of
    if layout.labeled and with_labels:
        return dataset.map(lambda x, y: (resize(x), labels_of(y)), **parallel)
    if layout.labeled:
        return dataset.map(lambda x, y: resize(x), **parallel)
    return dataset.map(resize, **parallel)

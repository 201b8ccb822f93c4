"""Reads in-memory inputs: numpy image arrays and user `tf.data.Dataset`s."""

from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from transferkit.data.labels import check_class_names
from transferkit.data.multi_labels import encode_any_labels
from transferkit.utils.log import logger


def read_arrays(
    images: np.ndarray | tf.Tensor,
    labels: Any,
    require_labels: bool,
    class_names: list[str] | None,
    multi_label: bool | None = None,
    delimiter: str | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None, bool]:
    """Checks an image array and its labels.

    Returns:
        A tuple `(images, labels, class_names, multi_label)`: images of shape
        `(N, H, W, 3)` (grayscale repeated to RGB), int64 labels (multi-hot
        float32 rows for multi-label data) or None, class names or None.
    """
    array = np.asarray(images)
    if array.dtype.kind not in "uif":
        raise ValueError(
            f"Image arrays must hold numbers (values 0-255). Received an array of dtype "
            f"{array.dtype} and shape {array.shape}."
        )
    # (H, W, 3) is far likelier than a batch of grayscale images 3 pixels wide.
    if array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[-1] < min(array.shape[:2]):
        raise ValueError(
            f"Received an array of shape {array.shape}, which looks like one image; a batch of "
            f"images is expected, shape (N, H, W, 3). For one image, add a batch axis: "
            "images[np.newaxis]."
        )
    if array.ndim == 3:
        array = array[..., np.newaxis]
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        hint = " Drop the alpha channel: images[..., :3]." if array.shape[-1:] == (4,) else ""
        raise ValueError(
            f"Image arrays must have shape (N, H, W, 3) for RGB or (N, H, W, 1) / (N, H, W) for "
            f"grayscale. Received shape {np.shape(images)}.{hint}"
        )
    if len(array) == 0:
        raise ValueError(f"Received an empty image array of shape {array.shape}.")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.dtype.kind == "f" and array.size and float(np.nanmax(array)) <= 1.0:
        logger.warning(
            "The image array's values are all within [0, 1]; transferkit expects 0-255 (each "
            "backbone applies its own preprocessing). If the images were scaled, pass "
            "images * 255."
        )
    if labels is None:
        if require_labels:
            raise ValueError(
                f"Received {len(array)} images but no labels. Pass labels=... (one per image) "
                "or data=(images, labels)."
            )
        return array, None, class_names, bool(multi_label)
    if len(labels) != len(array):
        raise ValueError(
            f"Received {len(array)} images but {len(labels)} labels. Pass one label per image."
        )
    encoded, class_names, multi = encode_any_labels(
        labels, class_names, multi_label=multi_label, delimiter=delimiter
    )
    return array, encoded, class_names, multi


class DatasetLayout(NamedTuple):
    """What a user's dataset yields: batches or single images, with labels or without."""

    batched: bool
    labeled: bool


def dataset_layout(dataset: tf.data.Dataset) -> DatasetLayout:
    """Works out, from its `element_spec`, how a dataset's elements are laid out.

    Raises:
        ValueError: if the elements are neither images nor `(images, labels)`.
    """
    spec = dataset.element_spec
    if isinstance(spec, tf.TensorSpec):
        image_spec, label_spec = spec, None
    elif (
        isinstance(spec, tuple)
        and len(spec) in (1, 2)
        and all(isinstance(part, tf.TensorSpec) for part in spec)
    ):
        image_spec, label_spec = spec[0], (spec[1] if len(spec) == 2 else None)
    else:
        raise ValueError(
            "A tf.data.Dataset must yield images, or (images, labels) tuples. Received "
            f"elements with element_spec={spec}."
        )
    rank = image_spec.shape.rank
    channels = image_spec.shape[-1] if rank else None
    if rank not in (3, 4) or channels not in (1, 3, None):
        raise ValueError(
            "A tf.data.Dataset must yield images of shape (H, W, 3) or batches (B, H, W, 3) "
            f"(or 1 channel for grayscale). Received images with shape {image_spec.shape}. "
            "If the shape is unknown, set it with dataset.map(lambda x, y: "
            "(tf.ensure_shape(x, (None, None, 3)), y))."
        )
    batched = rank == 4
    if label_spec is not None and label_spec.shape.rank not in ((1, 2) if batched else (0, 1)):
        raise ValueError(
            f"Labels in a tf.data.Dataset must be class indices or one-hot rows. Received "
            f"labels with shape {label_spec.shape} for images with shape {image_spec.shape}."
        )
    return DatasetLayout(batched=batched, labeled=label_spec is not None)


def read_dataset(
    dataset: tf.data.Dataset,
    require_labels: bool,
    class_names: list[str] | None,
    multi_label: bool | None = None,
) -> tuple[list[str] | None, bool]:
    """Checks a user's dataset.

    Multi-label is detected from the first element's labels (rows with other
    than a single 1) when `multi_label` is None.

    Returns:
        A tuple `(class_names, multi_label)`: the class names (given, or the
        dataset's `class_names`, or `"0"`, `"1"`, ... for multi-hot rows).

    Raises:
        ValueError: for labels that contradict `multi_label`, or multi-hot
            values other than 0 and 1 in the first element.
    """
    layout = dataset_layout(dataset)
    if require_labels and not layout.labeled:
        raise ValueError(
            f"Labels are required, but the tf.data.Dataset yields images only "
            f"(element_spec={dataset.element_spec}). Make it yield (images, labels) tuples."
        )
    if class_names is None and getattr(dataset, "class_names", None) is not None:
        class_names = check_class_names(dataset.class_names)
    multi = False
    if layout.labeled:
        label_spec = dataset.element_spec[1]
        rows = label_spec.shape.rank == (2 if layout.batched else 1)
        width = label_spec.shape[-1] if rows else None
        if rows and width not in (None, 1):
            multi = _dataset_multi_label(dataset, multi_label)
            if multi and class_names is None:
                class_names = [str(index) for index in range(width)]
        elif multi_label:
            raise ValueError(
                "multi_label=True, but the tf.data.Dataset yields class indices "
                f"(labels of shape {label_spec.shape}). Yield multi-hot rows of 0 and 1, one "
                "column per class."
            )
    elif multi_label:
        multi = True
    return class_names, multi


def _dataset_multi_label(dataset: tf.data.Dataset, multi_label: bool | None) -> bool:
    """Reads the first element's labels: multi-hot rows, or one-hot?"""
    first = next(iter(dataset.take(1)), None)
    if first is None:
        return bool(multi_label)
    labels = np.asarray(first[1], dtype=np.float64).reshape(-1, first[1].shape[-1])
    if not np.isin(labels, (0.0, 1.0)).all():
        bad = float(labels[~np.isin(labels, (0.0, 1.0))][0])
        raise ValueError(
            f"The tf.data.Dataset's label rows must be one-hot or multi-hot, of 0 and 1. "
            f"Received the value {bad:g} in its first element."
        )
    one_hot = bool((labels.sum(axis=1) == 1).all())
    if multi_label is False and not one_hot:
        raise ValueError(
            "multi_label=False, but the tf.data.Dataset yields multi-hot rows (rows with "
            "other than a single 1). Pass multi_label=True (or None, to detect it)."
        )
    return bool(multi_label) or not one_hot

"""Test-time augmentation: the model's average over a few fixed views of each image.

The views are deterministic (a mirror, a central zoom), so a prediction with TTA
is repeatable and needs nothing the saved model does not hold: it works the same
on a freshly loaded model.
"""

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

# The central crop of the "zoom" views: 87.5% of each side (ImageNet's classic
# evaluation crop, 224 of 256), resized back to the image's size.
ZOOM = 0.875
TTA_VIEWS = ("original", "flip", "zoom", "zoom_flip")
# What `tta=True` means: the image and its mirror.
DEFAULT_TTA_VIEWS = ("original", "flip")


def tta_views(tta) -> tuple[str, ...] | None:
    """The views that `tta` names: None for no TTA.

    Args:
        tta: bool, str or sequence of str. `False` (or None): no TTA; `True`:
            `DEFAULT_TTA_VIEWS`; a view name or names from `TTA_VIEWS`.

    Raises:
        ValueError: for an unknown view or an empty list.
    """
    if tta is None or tta is False:
        return None
    if tta is True:
        return DEFAULT_TTA_VIEWS
    views = (tta,) if isinstance(tta, str) else tta
    if not isinstance(views, Sequence) or not views:
        raise ValueError(
            f"`tta` must be True, False, or view names from {list(TTA_VIEWS)}. Received: "
            f"tta={tta!r}"
        )
    unknown = [view for view in views if view not in TTA_VIEWS]
    if unknown:
        raise ValueError(
            f"Unknown test-time augmentation view {unknown[0]!r}; the views are "
            f"{list(TTA_VIEWS)}. Received: tta={tta!r}"
        )
    return tuple(dict.fromkeys(views))


def view(images: tf.Tensor, name: str) -> tf.Tensor:
    """One view of a batch of images `(batch, height, width, 3)`.

    `"original"` is the batch itself, `"flip"` its left-right mirror, `"zoom"`
    the central 87.5% resized back to the batch's size, `"zoom_flip"` the
    mirrored zoom.
    """
    if name.startswith("zoom"):
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        crop_height = tf.cast(tf.round(tf.cast(height, tf.float32) * ZOOM), tf.int32)
        crop_width = tf.cast(tf.round(tf.cast(width, tf.float32) * ZOOM), tf.int32)
        top, left = (height - crop_height) // 2, (width - crop_width) // 2
        crop = images[:, top : top + crop_height, left : left + crop_width, :]
        # Back to the batch's size: every view then has one shape, and Keras traces
        # its predict step once.
        images = tf.image.resize(crop, tf.stack([height, width]), method="bilinear")
    if name.endswith("flip"):
        images = tf.reverse(images, axis=[2])
    return images


def tta_outputs(model, dataset: tf.data.Dataset, views: Sequence[str]) -> np.ndarray:
    """The model's outputs averaged over `views` of every batch of `dataset`.

    Probabilities are averaged (not logits): the mean of calibrated
    probabilities stays a probability, and a sigmoid output stays one column.

    Args:
        model: `keras.Model` taking raw image batches.
        dataset: `tf.data.Dataset` of image batches (no labels).
        views: sequence of view names from `TTA_VIEWS`.

    Returns:
        The averaged outputs, as `model.predict` returns them.
    """
    total = None
    for name in views:
        outputs = model.predict(dataset.map(lambda images, n=name: view(images, n)), verbose=0)
        total = outputs.astype("float64") if total is None else total + outputs
    return (total / len(views)).astype("float32")

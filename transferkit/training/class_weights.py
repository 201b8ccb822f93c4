"""Class weights for imbalanced data: `class_weight="balanced"` from the training counts."""

import numpy as np

from transferkit.data import ImageSource
from transferkit.utils.log import logger

# The one named rule `class_weight` accepts besides a dict.
BALANCED = "balanced"


def balanced_class_weight(counts: np.ndarray) -> np.ndarray:
    """Each class's weight `n_images / (num_classes * n_images_of_class)`.

    The rule of scikit-learn's `class_weight="balanced"`: every class then
    contributes as much to the loss as any other, and the weights average to 1
    over the images.

    Args:
        counts: array `(num_classes,)`. Training images per class, all > 0.

    Returns:
        A float array `(num_classes,)`.
    """
    counts = np.asarray(counts, dtype="float64")
    return counts.sum() / (len(counts) * counts)


def resolve_class_weight(class_weight, train: ImageSource, class_names: list[str]) -> dict | None:
    """The `class_weight` dict Keras gets: as given, or computed for `"balanced"`.

    Raises:
        ValueError: for multi-label data, an unknown rule, a `"balanced"` class
            without training images, or a dataset whose labels can't be counted.
    """
    if class_weight is None:
        return None
    if train.multi_label:
        raise ValueError(
            "class_weight is for single-label data: Keras would weigh each multi-hot row by "
            "one class only. For rare classes in multi-label data, rely on the per-class "
            "decision thresholds fit() chooses on validation data. Received: "
            f"class_weight={class_weight!r}"
        )
    if isinstance(class_weight, dict):
        return class_weight
    if class_weight != BALANCED:
        raise ValueError(
            f'class_weight must be a dict (class index -> weight), "{BALANCED}" or None. '
            f"Received: class_weight={class_weight!r}"
        )
    if train.labels is None:
        raise ValueError(
            'class_weight="balanced" counts the training images of each class, which a '
            "tf.data.Dataset does not tell without reading it: pass files or arrays, or a "
            "dict of weights."
        )
    counts = np.bincount(np.asarray(train.labels, dtype="int64"), minlength=len(class_names))
    empty = [name for name, count in zip(class_names, counts, strict=True) if count == 0]
    if empty:
        raise ValueError(
            f'class_weight="balanced" cannot weigh classes {empty}: they have no training '
            f"image (counts {dict(zip(class_names, counts.tolist(), strict=True))}). Add "
            "images of them, or pass a dict of weights."
        )
    weights = balanced_class_weight(counts)
    described = ", ".join(
        f"{name} {weight:.3f} ({count} images)"
        for name, weight, count in zip(class_names, weights, counts, strict=True)
    )
    logger.info(f'class_weight="balanced" from the training counts: {described}')
    return {index: float(weight) for index, weight in enumerate(weights)}

"""The data of a search, resolved once so every trial sees the same images and weights."""

from collections.abc import Mapping

import numpy as np

from transferkit.data import ImageSource, as_image_source, stratified_split


def resolve_data(
    data, labels, validation_data, validation_split: float, seed: int | None
) -> tuple[ImageSource, ImageSource]:
    """The training and validation images of a search, resolved once for every trial."""
    source = as_image_source(data, labels)
    if validation_data is not None:
        return source, as_image_source(validation_data, class_names=source.class_names)
    if not validation_split:
        raise ValueError(
            "A search compares trials on validation data: pass validation_data=... or a "
            f"validation_split between 0 and 1. Received: validation_split={validation_split!r}"
        )
    return stratified_split(source, validation_split, seed=seed)


def resolve_class_weight(class_weight, train: ImageSource) -> dict | None:
    """Class weights keyed by class index, from indices, class names or `"balanced"`."""
    if class_weight is None:
        return None
    names = list(train.class_names or [])
    if isinstance(class_weight, str) or train.multi_label:
        from transferkit.finetuner.class_weights import resolve_class_weight as balanced

        # The FineTuner's own rule: weights from the training counts, reported in the
        # log; a class with no training image, or multi-label data, is an error.
        return balanced(class_weight, train, names)
    if not isinstance(class_weight, Mapping):
        raise ValueError(
            "`class_weight` must be a dict {class index or name: weight}, 'balanced' or None. "
            f"Received: class_weight={class_weight!r}"
        )
    weights = {}
    for key, weight in class_weight.items():
        index = names.index(key) if key in names else key
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(names):
            raise ValueError(
                f"`class_weight` has the key {key!r}, which is neither a class name {names} nor "
                f"a class index from 0 to {len(names) - 1}."
            )
        weights[int(index)] = float(weight)
    return weights

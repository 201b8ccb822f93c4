"""The data of a search, resolved once so every trial sees the same images and weights."""

import dataclasses
from collections.abc import Mapping

import numpy as np

from transferkit.data import ImageSource, as_image_source, stratified_split


def _resolve_search_data(
    source, validation_data, validation_split: float, seed: int | None
) -> tuple[ImageSource, ImageSource]:
    """The training and validation images of a search, resolved once for every trial."""
    if validation_data is not None:
        return source, as_image_source(validation_data, class_names=source.class_names)
    if not validation_split:
        raise ValueError(
            "A search compares trials on validation data: pass validation_data=... or a "
            f"validation_split between 0 and 1. Received: validation_split={validation_split!r}"
        )
    return stratified_split(source, validation_split, seed=seed)


def join_sources(*sources: ImageSource | None) -> ImageSource:
    """The images of several sources of the same classes, one after the other.

    Raises:
        ValueError: for a `tf.data.Dataset`, or sources of different kinds.
    """
    sources = [source for source in sources if source is not None]
    first = sources[0]
    if any(source.dataset is not None for source in sources):
        raise ValueError(
            "Refitting on the training and validation images together needs them as files or "
            "arrays, not a tf.data.Dataset. Use best_finetuner() (the trial's weights) or "
            "best_finetuner(retrain=True)."
        )
    if any(source.class_names != first.class_names for source in sources):
        raise ValueError("The sources to join have different class names.")
    if all(source.paths is not None for source in sources):
        originals = [source.original_paths or source.paths for source in sources]
        return dataclasses.replace(
            first,
            paths=[path for source in sources for path in source.paths],
            original_paths=[path for paths in originals for path in paths],
            labels=np.concatenate([source.labels for source in sources]),
        )
    if all(source.images is not None for source in sources):
        return dataclasses.replace(
            first,
            images=np.concatenate([source.images for source in sources]),
            labels=np.concatenate([source.labels for source in sources]),
        )
    raise ValueError("Can't join images from files with images from arrays.")


def resolve_data(
    data,
    labels,
    validation_data,
    validation_split: float,
    seed: int | None,
    confirmation_split: float = 0.0,
) -> tuple[ImageSource, ImageSource, ImageSource | None]:
    """The training, validation and confirmation images of a search, resolved once.

    The confirmation images (`confirmation_split` of `data`, stratified) are
    held out first: no trial trains or validates on them.
    """
    source = as_image_source(data, labels)
    confirmation = None
    if confirmation_split:
        if source.dataset is not None:
            raise ValueError(
                "A confirmation split can't be drawn from a tf.data.Dataset. Pass the images "
                "as a folder, DataFrame or arrays, or confirmation_split=0."
            )
        source, confirmation = stratified_split(source, confirmation_split, seed=seed)
    train, validation = _resolve_search_data(source, validation_data, validation_split, seed)
    return train, validation, confirmation


def resolve_class_weight(class_weight, train: ImageSource) -> dict | None:
    """Class weights keyed by class index, from indices, class names or `"balanced"`."""
    if class_weight is None:
        return None
    names = list(train.class_names or [])
    if isinstance(class_weight, str) or train.multi_label:
        from transferkit.training.class_weights import resolve_class_weight as balanced

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

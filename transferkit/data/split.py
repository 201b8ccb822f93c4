"""Splits labeled images into training and validation parts with the same class balance."""

import numbers

import numpy as np

from transferkit.data.duplicates import same_image_groups
from transferkit.data.source import ImageSource
from transferkit.utils.log import logger


def stratified_split(
    source: ImageSource, validation_split: float = 0.2, seed: int | None = None
) -> tuple[ImageSource, ImageSource]:
    """Splits each class separately, so both parts keep the class proportions.

    Images that are the same file (listed twice) or copies with the same
    content go to the same part, so no validation image is also a training
    image. Each class with at least 2 distinct images keeps at least one in
    each part; a class with a single one stays in training (with a warning).
    Within each part the images keep their order in `source`.

    Multi-label images are split class by class from the rarest class up
    (iterative stratification): each class with at least 2 distinct images
    keeps one or more in each part when its images allow it; the log names any
    class that cannot (a single image, or all its images already placed by
    rarer classes). Images of no class are split at the same fraction.

    Args:
        source: `ImageSource`. Labeled images (files or arrays).
        validation_split: float. Fraction of each class for validation, strictly
            between 0 and 1. Defaults to 0.2.
        seed: int or None. Seed for the random choice; the same seed gives the
            same split. Defaults to None (a different split each call).

    Returns:
        A tuple `(train, validation)` of `ImageSource`s.

    Raises:
        ValueError: if `validation_split` is not in (0, 1), `source` is
            unlabeled or a `tf.data.Dataset`, or no class has 2 images.

    Example:
        >>> train, validation = stratified_split(source, 0.2, seed=0)  # doctest: +SKIP
    """
    if (
        isinstance(validation_split, bool)
        or not isinstance(validation_split, numbers.Real)
        or not 0 < validation_split < 1
    ):
        raise ValueError(
            "validation_split must be a fraction strictly between 0 and 1, e.g. 0.2. "
            f"Received: validation_split={validation_split!r}."
        )
    if source.dataset is not None:
        raise ValueError(
            "A tf.data.Dataset can't be split into training and validation parts here. Pass "
            "the validation images explicitly: validation_data=..."
        )
    if source.labels is None:
        raise ValueError(
            "stratified_split needs labels to keep the class balance, but the images are "
            "unlabeled. Pass labeled data, or pass validation_data=... explicitly."
        )
    rng = np.random.default_rng(seed)
    if source.multi_label:
        return _multi_label_split(source, validation_split, rng)
    # Each image of a group (the same file, or copies) goes where the group's first goes.
    groups = same_image_groups(source)
    validation = []
    single = []
    for label in np.unique(source.labels):
        members = np.flatnonzero(source.labels == label)
        # The first image of each group stands for its group; without copies, every image.
        members = members[groups[members] == members]
        if len(members) < 2:
            if len(members):  # with none, all its images are copies of other classes' images
                single.append(_class_name(source, label))
            continue
        count = int(np.clip(round(len(members) * validation_split), 1, len(members) - 1))
        validation.extend(rng.choice(members, size=count, replace=False).tolist())
    if single:
        logger.warning(
            "Classes %s have a single image (counting copies once): it stays in training and "
            "the class is not validated. Add more images of these classes.",
            single,
        )
    if not validation:
        raise ValueError(
            "Can't make a validation split: every class has a single image (counting copies "
            "once). Add images, or pass validation_data=... explicitly."
        )
    in_validation = np.isin(groups, validation)
    return source.subset(~in_validation), source.subset(in_validation)


def _class_name(source: ImageSource, label: int) -> str:
    return source.class_names[label] if source.class_names is not None else str(label)


def _multi_label_split(source, validation_split, rng) -> tuple[ImageSource, ImageSource]:
    """Iterative stratification: each class, rarest first, places its unplaced images."""
    groups = same_image_groups(source)
    representatives = np.flatnonzero(groups == np.arange(len(groups)))
    labels = np.asarray(source.labels)[representatives] > 0.5
    part = np.full(len(representatives), -1)  # -1 unplaced, 0 training, 1 validation
    counts = labels.sum(axis=0)
    not_both = []
    for column in np.argsort(counts, kind="stable"):
        members = np.flatnonzero(labels[:, column])
        if len(members) < 2:
            if len(members):
                not_both.append(source.class_names[column])
            continue
        wanted = int(np.clip(round(len(members) * validation_split), 1, len(members) - 1))
        free = rng.permutation(members[part[members] == -1])
        in_validation = int((part[members] == 1).sum())
        in_training = int((part[members] == 0).sum())
        take = min(max(0, wanted - in_validation), len(free) - (1 if in_training == 0 else 0))
        part[free[: max(take, 0)]] = 1
        part[free[max(take, 0) :]] = 0
        placed = part[members]
        if not ((placed == 0).any() and (placed == 1).any()):
            not_both.append(source.class_names[column])
    free = np.flatnonzero(part == -1)  # images of no class
    count = int(round(len(free) * validation_split))
    part[free] = 0
    part[rng.choice(free, size=count, replace=False)] = 1
    if not_both:
        logger.warning(
            "Classes %s cannot be in both the training and the validation part: each has a "
            "single image (counting copies once), or every image of it also shows a rarer "
            "class placed first. They are not validated (nor given a tuned threshold). Add "
            "images of these classes, or pass validation_data=... explicitly.",
            not_both,
        )
    validation = representatives[part == 1]
    if not len(validation):
        raise ValueError(
            "Can't make a validation split: too few images. Add images, or pass "
            "validation_data=... explicitly."
        )
    in_validation = np.isin(groups, validation)
    return source.subset(~in_validation), source.subset(in_validation)

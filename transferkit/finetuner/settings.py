"""Checking a FineTuner's settings before any work: each error says what was received."""

import keras

from transferkit import schedules
from transferkit.backbones import get_backbone_spec
from transferkit.data import ImageSource
from transferkit.data.duplicates import warn_if_overlapping
from transferkit.heads import ClassificationHead
from transferkit.optimizers import get_optimizer
from transferkit.precision import check_precision
from transferkit.training.augmentation import augmentation_layer
from transferkit.training.distribution import check_distribute


def check_settings(
    *,
    backbone,
    num_classes,
    weights,
    head,
    input_shape,
    schedule,
    optimizer,
    augmentation,
    cached_views,
    cache_features,
    jit_compile,
    precision,
    validation_split,
    path_column,
    label_column,
    multi_label,
    label_delimiter,
    seed,
    distribute,
) -> dict:
    """Validates the FineTuner's arguments (all of them); returns those it normalises.

    `weights`, `cache_features`, `jit_compile` and `path_column` are checked
    where they are used (building the backbone, caching, compiling, reading a
    DataFrame), with errors that say so there.

    Returns:
        A dict with `input_shape` (a tuple or None) and `label_column` (a str,
        or a list of str).

    Raises:
        ValueError: naming the argument, the value received and what would do.
    """
    check_distribute(distribute)
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
    ):
        raise ValueError(
            "`num_classes` must be an integer >= 2, or None to take it from the data. "
            f"Received: num_classes={num_classes!r}"
        )
    if head is not None and not isinstance(head, ClassificationHead):
        raise ValueError(
            f"`head` must be a transferkit.heads.ClassificationHead. Received: head={head!r}"
        )
    if isinstance(input_shape, int):
        input_shape = (input_shape, input_shape, 3)
    if input_shape is not None and (len(input_shape) != 3 or input_shape[-1] != 3):
        raise ValueError(
            "`input_shape` must be (height, width, 3) or a single int. "
            f"Received: input_shape={input_shape!r}"
        )
    if not 0 <= validation_split < 1:
        raise ValueError(
            f"`validation_split` must be in [0, 1). Received: validation_split={validation_split}"
        )
    if cached_views is not None and (
        isinstance(cached_views, bool) or not isinstance(cached_views, int) or cached_views < 1
    ):
        raise ValueError(
            "`cached_views` must be an integer >= 1, or None to choose by schedule. "
            f"Received: cached_views={cached_views!r}"
        )
    check_precision(precision)
    label_column = _check_labels(head, multi_label, label_delimiter, label_column)
    augmentation_layer(augmentation, seed)
    schedules.get(schedule)
    get_optimizer(optimizer, 1e-3)
    if isinstance(backbone, str):
        get_backbone_spec(backbone)
    elif not isinstance(backbone, keras.Model):
        raise ValueError(
            "`backbone` must be a name from transferkit.list_backbones() or a keras.Model. "
            f"Received: backbone={backbone!r}"
        )
    return {
        "input_shape": None if input_shape is None else tuple(input_shape),
        "label_column": label_column,
    }


def _check_labels(head, multi_label, label_delimiter, label_column):
    """Checks that the multi-label settings agree; returns the label column(s)."""
    if multi_label is not None and not isinstance(multi_label, bool):
        raise ValueError(
            "`multi_label` must be True, False or None (detect it from the data). "
            f"Received: multi_label={multi_label!r}"
        )
    if head is not None and head.multi_label and multi_label is False:
        raise ValueError(
            "The head has multi_label=True but FineTuner(multi_label=False): set one of "
            "them, they must agree."
        )
    if label_delimiter is not None and (
        not isinstance(label_delimiter, str) or not label_delimiter
    ):
        raise ValueError(
            "`label_delimiter` must be a non-empty string such as '|', or None. "
            f"Received: label_delimiter={label_delimiter!r}"
        )
    if label_delimiter is not None and multi_label is False:
        raise ValueError(
            f"label_delimiter={label_delimiter!r} splits labels into several classes, "
            "which multi_label=False refuses. Pass multi_label=None or True."
        )
    if isinstance(label_column, (list, tuple)):
        label_column = [str(column) for column in label_column]
        if multi_label is False:
            raise ValueError(
                "A list of label columns (one 0/1 column per class) is multi-label data, "
                f"which multi_label=False refuses. Received: label_column={label_column}"
            )
    return label_column


def check_batch_size(batch_size) -> None:
    """Refuses a batch size that is not an integer >= 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1. Received: {batch_size!r}")


def check_class_names(class_names, num_classes) -> list[str]:
    """The class names a model is built for; `None` names `num_classes` classes "0", "1"...

    Raises:
        ValueError: when the number of classes is not known yet, or disagrees
            with `num_classes`.
    """
    if class_names is None:
        if num_classes is None:
            raise ValueError(
                "Cannot build before the number of classes is known: pass num_classes= "
                "to FineTuner, class_names= to build(), or call fit() with data."
            )
        return [str(index) for index in range(num_classes)]
    if num_classes is not None and len(class_names) != num_classes:
        raise ValueError(
            f"FineTuner(num_classes={num_classes}) but the data has "
            f"{len(class_names)} classes: {list(class_names)}. Fix num_classes (or pass "
            "None to take it from the data) or the data."
        )
    return list(class_names)


def check_validation(train: ImageSource, validation: ImageSource) -> None:
    """Refuses validation data in another form than the training data; warns of overlaps."""
    if validation.multi_label != train.multi_label:
        raise ValueError(
            "The training data is "
            f"{'multi-label' if train.multi_label else 'single-label'} but the "
            "validation data is not: give both in the same form."
        )
    warn_if_overlapping(train, validation)


def check_training_classes(source: ImageSource) -> ImageSource:
    """Returns `source` if it has at least two classes (or classes yet unknown)."""
    if source.class_names is not None and len(source.class_names) < 2:
        raise ValueError(f"Training needs at least 2 classes; the data has {source.class_names}.")
    return source


def check_same_classes(source: ImageSource, class_names: list[str]) -> None:
    """Refuses data whose classes are not the model's `class_names`."""
    if source.class_names is not None and list(source.class_names) != class_names:
        raise ValueError(
            f"The data's classes {source.class_names} differ from the model's {class_names}."
        )


def check_cacheable(source: ImageSource, what: str) -> None:
    """Refuses a `tf.data.Dataset` where `what` must cache the images' features."""
    if source.dataset is not None:
        raise ValueError(
            f"{what} needs images it can cache: pass files or arrays, not a tf.data.Dataset."
        )

"""Multi-label labels (lists, delimited text or multi-hot rows) as multi-hot rows.

An image of a multi-label set may belong to several classes at once, or to
none (a negative example for every class). Whatever form its labels come in,
they become a float32 multi-hot array of shape `(N, num_classes)`.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from transferkit.data.labels import _clean_names, _is_whole_number, _sorted_names
from transferkit.utils.log import logger

_SET_TYPES = (list, tuple, set, frozenset, np.ndarray)


def looks_multi_label(labels: Any, delimiter: str | None = None) -> bool:
    """Whether labels are multi-label as given (without being told).

    Multi-label are: a table or 2-D array with a column per class whose rows are
    not all one-hot, labels that are lists (or tuples, sets) of class names, and
    any labels read with a `delimiter`.

    Args:
        labels: the labels, in any form `encode_multi_labels` accepts.
        delimiter: str or None. The delimiter of text labels.

    Returns:
        bool.
    """
    if delimiter is not None:
        return True
    if isinstance(labels, pd.DataFrame):
        return True
    values = _as_array(labels)
    if values.ndim == 2:
        if values.shape[1] == 1:
            return False
        numeric = values.astype(np.float64) if values.dtype.kind in "iufb" else None
        if numeric is None:
            return True
        return not (np.isin(numeric, (0, 1)).all() and (numeric.sum(axis=1) == 1).all())
    return any(isinstance(value, _SET_TYPES) for value in values.tolist())


def encode_multi_labels(
    labels: Any,
    class_names: list[str] | None = None,
    *,
    delimiter: str | None = None,
    identifiers: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Turns multi-label labels into multi-hot rows.

    Accepted forms, one entry per image:

    - lists (tuples, sets) of class names, e.g. `["cat", "dog"]`; an empty list
      is an image of none of the classes (a negative example for each);
    - text with the classes joined by `delimiter`, e.g. `"cat|dog"` with
      `delimiter="|"`; an empty (or missing) text is an image of no class;
    - a multi-hot array or table `(N, num_classes)` of 0 and 1 (a
      `pandas.DataFrame` names the classes by its columns);
    - single class names or indices (one class per image).

    Args:
        labels: the labels, in one of the forms above.
        class_names: list of str or None. The known classes, in column order;
            any other name is an error. Defaults to None: the sorted class
            names found (the columns of a table; `"0"`, `"1"`, ... for an array).
        delimiter: str or None. Splits text labels into class names. Defaults
            to None.
        identifiers: sequence of str or None. A name per image (a file path)
            quoted in errors. Defaults to None (`image #i`).

    Returns:
        A tuple `(multi_hot, class_names)`: float32 array `(N, num_classes)`.

    Raises:
        ValueError: for a multi-hot value other than 0 or 1 (or missing), a
            delimiter found in no label, a class outside `class_names`, or a
            table whose columns differ from `class_names`.
    """

    def example(index: int) -> str:
        return identifiers[index] if identifiers is not None else f"image #{index}"

    if delimiter is not None and (not isinstance(delimiter, str) or not delimiter):
        raise ValueError(
            f"`label_delimiter` must be a non-empty string such as '|'. Received: "
            f"label_delimiter={delimiter!r}"
        )
    if isinstance(labels, pd.DataFrame):
        columns = [str(column) for column in labels.columns]
        if class_names is not None and sorted(columns) != sorted(class_names):
            raise ValueError(
                f"The label columns {columns} are not the classes {class_names}: pass one "
                "0/1 column per class."
            )
        table = labels[list(labels.columns)]
        if class_names is not None:
            table = labels[[labels.columns[columns.index(name)] for name in class_names]]
        names = class_names if class_names is not None else columns
        return _check_multi_hot(table.to_numpy(), names, example), list(names)
    values = _as_array(labels)
    if values.ndim == 2:
        names = class_names
        if names is None:
            names = [str(index) for index in range(values.shape[1])]
        elif len(names) != values.shape[1]:
            raise ValueError(
                f"Multi-hot labels have {values.shape[1]} columns but there are "
                f"{len(names)} classes {names}: pass one column per class."
            )
        return _check_multi_hot(values, names, example), list(names)
    if values.ndim != 1:
        raise ValueError(
            f"Multi-label labels must be one entry per image (a list of class names, a "
            f"delimited text) or multi-hot rows (N, num_classes). Received shape {values.shape}."
        )
    sets = _label_sets(values, delimiter, class_names, example)
    found = _sorted_names({name for names in sets for name in names})
    if class_names is None:
        class_names = found
    unknown = [name for name in found if name not in set(class_names)]
    if unknown:
        first = next(i for i, names in enumerate(sets) if unknown[0] in names)
        count = sum(unknown[0] in names for names in sets)
        raise ValueError(
            f"label {unknown[0]!r} ({count} images, e.g. {example(first)}) is not one of the "
            f"classes {class_names}"
            + (f". Other unknown labels: {unknown[1:6]}" if len(unknown) > 1 else "")
            + ". A class the model was not trained on cannot be predicted: train with it, "
            "or drop it from these labels."
        )
    if not class_names:
        raise ValueError(
            "No image has any label: a multi-label set needs at least one class. Check the "
            "label column (and the delimiter)."
        )
    index = {name: column for column, name in enumerate(class_names)}
    multi_hot = np.zeros((len(sets), len(class_names)), dtype=np.float32)
    for row, names in enumerate(sets):
        for name in names:
            multi_hot[row, index[name]] = 1.0
    _report_empty(multi_hot, example)
    return multi_hot, list(class_names)


def _as_array(labels) -> np.ndarray:
    if isinstance(labels, pd.Series):
        return labels.to_numpy()
    if isinstance(labels, np.ndarray):
        return labels
    if hasattr(labels, "numpy"):
        return np.asarray(labels.numpy())
    values = list(labels)
    if values and all(isinstance(value, _SET_TYPES) for value in values):
        lengths = {len(value) for value in values}
        numeric = all(
            isinstance(item, (int, float, np.number, bool)) for value in values for item in value
        )
        if len(lengths) == 1 and numeric and lengths != {0}:
            return np.asarray(values)  # multi-hot rows given as lists
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _check_multi_hot(values: np.ndarray, class_names, example) -> np.ndarray:
    if values.dtype.kind not in "iufb":
        try:
            values = values.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                "Multi-hot labels must be 0 or 1 (one column per class). Received a value "
                "that is not a number, e.g. "
                f"{next(v for v in values.ravel() if not _is_number(v))!r}."
            ) from None
    values = values.astype(np.float64)
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        row, column = (int(axis[0]) for axis in np.nonzero(bad))
        raise ValueError(
            f"Multi-hot labels must be 0 or 1. Received {float(values[row, column]):g} for "
            f"{example(row)}, class {class_names[column]!r} ({int(bad.sum())} such values). "
            "Use 1 where the image shows the class and 0 where it does not."
        )
    multi_hot = values.astype(np.float32)
    _report_empty(multi_hot, example)
    return multi_hot


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _label_sets(values, delimiter, class_names, example) -> list[list[str]]:
    """Each image's class names (cleaned), from lists, delimited text or single labels."""
    if delimiter is not None:
        texts = [v for v in values.tolist() if isinstance(v, str)]
        if texts and not any(delimiter in text for text in texts):
            raise ValueError(
                f"The label delimiter {delimiter!r} splits none of the {len(texts)} labels, "
                f"e.g. {texts[0]!r}: each image would have a single class. Pass the delimiter "
                "the labels use, or leave label_delimiter unset for single-label data."
            )
    sets = []
    for row, value in enumerate(values.tolist()):
        if isinstance(value, _SET_TYPES):
            items = list(value.tolist() if isinstance(value, np.ndarray) else value)
        elif value is None or (isinstance(value, float) and np.isnan(value)):
            items = []  # an empty cell: no class, a negative example
        elif isinstance(value, str) and delimiter is not None:
            items = [part for part in value.split(delimiter) if part.strip()]
        else:
            items = [value]
        names = []
        for item in items:
            if isinstance(item, bytes):
                item = item.decode()
            if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
                if class_names is not None and not all(map(_is_whole_number, class_names)):
                    if not 0 <= int(item) < len(class_names):
                        raise ValueError(
                            f"label {int(item)} of {example(row)} is not a class index for "
                            f"the {len(class_names)} classes {class_names}."
                        )
                    item = class_names[int(item)]
            if not isinstance(item, (str, int, np.integer)) or isinstance(item, bool):
                raise ValueError(
                    f"Multi-label labels are class names. Received {item!r} (a "
                    f"{type(item).__name__}) in the labels of {example(row)}."
                )
            names.append(str(item))
        names = _clean_names(names, "label", lambda mask, row=row: example(row))
        sets.append(sorted(set(names)))
    return sets


def _report_empty(multi_hot: np.ndarray, example) -> None:
    empty = multi_hot.sum(axis=1) == 0
    if empty.any():
        logger.info(
            "%d of %d images have no label (e.g. %s): they are negative examples, of none "
            "of the classes.",
            int(empty.sum()),
            len(multi_hot),
            example(int(np.flatnonzero(empty)[0])),
        )


def one_hot(indices: np.ndarray, num_classes: int) -> np.ndarray:
    """Single-label class indices as multi-hot rows (one 1 per row), float32."""
    rows = np.zeros((len(indices), num_classes), dtype=np.float32)
    rows[np.arange(len(indices)), np.asarray(indices, dtype=np.int64)] = 1.0
    return rows


def class_counts(multi_hot: np.ndarray, class_names: list[str]) -> pd.Series:
    """Images per class (positives), as a `pandas.Series` indexed by class."""
    return pd.Series(
        np.asarray(multi_hot).sum(axis=0).astype(np.int64),
        index=pd.Index(class_names, name="class"),
        name="images",
    )


def resolve_multi_label(labels: Any, multi_label: bool | None, delimiter: str | None) -> bool:
    """Whether `labels` are read as multi-label: as told, or as they look.

    Raises:
        ValueError: if `multi_label=False` but the labels are multi-label (or a
            delimiter was given): the two never silently disagree.
    """
    looks = looks_multi_label(labels, delimiter)
    if multi_label is False and looks:
        why = (
            f"label_delimiter={delimiter!r} was given"
            if delimiter is not None
            else "they are lists of classes, a column per class or multi-hot rows"
        )
        raise ValueError(
            f"multi_label=False, but the labels are multi-label ({why}). Pass "
            "multi_label=True (or None, to detect it), or give one class per image."
        )
    return bool(multi_label) or looks


def encode_any_labels(
    labels: Any,
    class_names: list[str] | None,
    *,
    multi_label: bool | None = None,
    delimiter: str | None = None,
    identifiers: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[str], bool]:
    """Encodes single-label or multi-label labels, whichever they are (or are said to be).

    Returns:
        A tuple `(labels, class_names, multi_label)`: int64 class indices `(N,)`
        for single-label data, float32 multi-hot rows `(N, C)` for multi-label.
    """
    from transferkit.data.labels import encode_labels

    if resolve_multi_label(labels, multi_label, delimiter):
        encoded, names = encode_multi_labels(
            labels, class_names, delimiter=delimiter, identifiers=identifiers
        )
        return encoded, names, True
    indices, names = encode_labels(labels, class_names, identifiers=identifiers)
    return indices, names, False

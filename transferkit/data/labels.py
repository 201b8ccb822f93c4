"""Turns labels given as class names or class indices into int64 class indices."""

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from transferkit.utils.log import logger

_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


def clean_name(name: str) -> str:
    """A class name in the one spelling transferkit uses everywhere.

    Unicode NFC (macOS writes file names decomposed: `e` + combining accent
    rather than `é`, which look alike but compare different), without leading
    or trailing whitespace.

    Args:
        name: str. A label or class name.

    Returns:
        The normalized name.
    """
    return unicodedata.normalize("NFC", name).strip()


def _clean_names(names: list[str], what: str, example) -> list[str]:
    """Cleans names with `clean_name`; says when spaces were removed, refuses blank names."""
    cleaned = [clean_name(name) for name in names]
    blank = np.array([not name for name in cleaned], dtype=bool)
    if blank.any():
        first = names[int(np.flatnonzero(blank)[0])]
        raise ValueError(
            f"Received a blank {what} {first!r} for {example(blank)}: a class needs a name. "
            "Fill it in, or drop the images without one."
        )
    spaced = np.array([name != name.strip() for name in names], dtype=bool)
    if spaced.any():
        first = names[int(np.flatnonzero(spaced)[0])]
        logger.warning(
            "Removed spaces around %d %ss, e.g. %r (%s), which is class %r.",
            int(spaced.sum()),
            what,
            first,
            example(spaced),
            clean_name(first),
        )
    return cleaned


def check_class_names(class_names: Sequence[str] | None) -> list[str] | None:
    """Validates a `class_names` argument and returns it as a list of str.

    Args:
        class_names: list of str or None. Names of the classes, in class-index order.

    Returns:
        The names as a new list, each cleaned by `clean_name`, or None when
        `class_names` is None.

    Raises:
        ValueError: if `class_names` is a single string, empty, holds a blank
            name, or holds duplicates.
    """
    if class_names is None:
        return None
    if isinstance(class_names, (str, bytes)):
        raise ValueError(
            f"class_names must be a list of names, one per class. Received: "
            f"class_names={class_names!r}. For example: class_names=['cat', 'dog']."
        )
    names = [str(name) for name in class_names]
    names = _clean_names(names, "class name", lambda mask: f"class #{np.flatnonzero(mask)[0]}")
    if not names:
        raise ValueError("class_names is empty. Pass one name per class, e.g. ['cat', 'dog'].")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"class_names holds duplicates {duplicates}. Received: class_names={names}. "
            "Each class needs a distinct name."
        )
    return names


def encode_labels(
    labels: Sequence[Any] | np.ndarray | pd.Series,
    class_names: list[str] | None = None,
    identifiers: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Turns labels into class indices.

    String labels are cleaned by `clean_name` (Unicode NFC; spaces around them
    are removed, and the log says so), then become indices into `class_names`
    (when given) or into their sorted unique values; names that are all whole
    numbers sort as numbers (`'2'` before `'10'`).

    Integer labels without `class_names` make the sorted unique values the
    classes (named `'0'`, `'1'`, ...), so labels `{3, 5}` make two classes
    rather than six. With `class_names`, an integer label is matched by value
    when the class names are numbers (label `10` is class `'10'`, wherever it
    stands), and is a class index into `class_names` when they are words;
    never both. One-hot rows of shape `(N, C)` are read as indices.

    Args:
        labels: sequence, numpy array, pandas Series or tensor of str or int.
        class_names: list of str or None. The known classes; any other label
            is an error. Defaults to None (the classes come from the labels).
        identifiers: sequence of str or None. A name per label (a file path)
            quoted in errors. Defaults to None (`image #i`).

    Returns:
        A tuple `(indices, class_names)`: int64 array of shape `(N,)` and the
        list of class names the indices refer to.

    Raises:
        ValueError: for missing (NaN/None) labels, labels that are neither
            names nor whole numbers, a label outside `class_names`, or integer
            labels for class names that mix numbers and words.
    """
    values = _as_flat_array(labels)

    def example(mask: np.ndarray) -> str:
        first = int(np.flatnonzero(mask)[0])
        return identifiers[first] if identifiers is not None else f"image #{first}"

    missing = pd.isna(values) if values.dtype == object or values.dtype.kind == "f" else None
    if missing is not None and missing.any():
        raise ValueError(
            f"{int(missing.sum())} of {len(values)} labels are missing (NaN or None), e.g. "
            f"for {example(missing)}. Drop those images or fill in their labels."
        )
    if values.dtype == object:
        values = _unify_object_labels(values)
    if values.dtype.kind in "US":
        values = np.array(_clean_names(values.astype(str).tolist(), "label", example), dtype=str)
        return _encode_names(values, class_names, example)
    if values.dtype.kind == "f":
        fractional = values != np.round(values)
        if fractional.any():
            raise ValueError(
                f"labels must be class names (str) or class indices (int). Received the "
                f"non-integer label {values[fractional][0]!r} for {example(fractional)}."
            )
        values = values.astype(np.int64)
    if values.dtype.kind not in "iub":
        raise ValueError(
            f"labels must be class names (str) or class indices (int). Received labels of "
            f"dtype {values.dtype}."
        )
    return _encode_indices(values.astype(np.int64), class_names, example)


def _as_flat_array(labels) -> np.ndarray:
    if isinstance(labels, pd.Series):
        values = labels.to_numpy()
    elif isinstance(labels, np.ndarray):
        values = labels
    elif hasattr(labels, "numpy"):  # a tf.Tensor
        values = np.asarray(labels.numpy())
    else:
        # dtype=object keeps ['cat', 1] from silently becoming ['cat', '1'].
        values = np.asarray(list(labels), dtype=object)
        if values.ndim == 1 and len(values) and not any(isinstance(v, str) for v in values):
            values = np.asarray(list(labels))
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    elif values.ndim == 2 and values.dtype.kind in "iufb":
        is_one_hot = np.isin(values, (0, 1)).all() and (values.sum(axis=1) == 1).all()
        if not is_one_hot:
            raise ValueError(
                f"2-D labels must be one-hot rows (a single 1 per row). Received labels of "
                f"shape {values.shape} that are not one-hot. Pass class indices of shape (N,)."
            )
        values = values.argmax(axis=1)
    if values.ndim != 1:
        raise ValueError(
            f"labels must have shape (N,) (or one-hot (N, C)). Received shape {values.shape}."
        )
    return values


def _unify_object_labels(values: np.ndarray) -> np.ndarray:
    values = np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)
    is_name = np.array([isinstance(v, (str, np.str_)) for v in values], dtype=bool)
    if is_name.all():
        return values.astype(str)
    if is_name.any():
        raise ValueError(
            "labels mix class names and numbers, e.g. "
            f"{values[is_name][0]!r} and {values[~is_name][0]!r}. Use one kind for all images."
        )
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            "labels must be class names (str) or class indices (int). Received a label of "
            f"type {type(values[0]).__name__}: {values[0]!r}."
        ) from None


def _is_whole_number(name: str) -> bool:
    return _WHOLE_NUMBER.fullmatch(name) is not None


def _sorted_names(names) -> list[str]:
    """Sorted as numbers when every name is a whole number ('2' before '10'), else as text."""
    names = sorted(set(names))
    if names and all(_is_whole_number(name) for name in names):
        return sorted(names, key=lambda name: (int(name), name))
    return names


def _encode_names(values: np.ndarray, class_names, example) -> tuple[np.ndarray, list[str]]:
    unique = _sorted_names(values.tolist())
    if class_names is None:
        class_names = unique
    unknown = [name for name in unique if name not in set(class_names)]
    if unknown:
        raise ValueError(_unknown_message(values, unknown, class_names, example))
    index = {name: i for i, name in enumerate(class_names)}
    return np.array([index[v] for v in values.tolist()], dtype=np.int64), list(class_names)


def _encode_indices(values: np.ndarray, class_names, example) -> tuple[np.ndarray, list[str]]:
    unique = np.unique(values)
    if class_names is None:
        if not np.array_equal(unique, np.arange(len(unique))):
            logger.warning(
                "Integer labels %s are not 0..%d: they become class indices 0..%d in sorted "
                "order, with class_names %s. Pass class_names to choose the names.",
                unique.tolist(),
                len(unique) - 1,
                len(unique) - 1,
                [str(v) for v in unique.tolist()],
            )
        return np.searchsorted(unique, values).astype(np.int64), [str(v) for v in unique.tolist()]
    numeric = [_is_whole_number(name) for name in class_names]
    index = {int(name): i for i, name in enumerate(class_names) if numeric[i]}
    if all(numeric) and len(index) == len(class_names):
        # Classes named by numbers are matched by value, never by position: label 2
        # is class '2' even where a model's classes are in text order ['1', '10', '2'].
        unknown = [int(v) for v in unique if int(v) not in index]
        if unknown:
            raise ValueError(_unknown_message(values, unknown, class_names, example))
        return np.array([index[int(v)] for v in values], dtype=np.int64), list(class_names)
    if any(numeric):
        why = "mix numbers and words" if not all(numeric) else "hold one number twice"
        raise ValueError(
            f"Received integer labels (e.g. {int(values[0])}), but the classes {class_names} "
            f"{why}, so an integer label can't be matched to one class. Pass the labels as "
            "class names (str)."
        )
    outside = values[(values < 0) | (values >= len(class_names))]
    if outside.size:
        bad = int(outside[0])
        raise ValueError(
            f"label {bad} ({int((values == bad).sum())} images, e.g. {example(values == bad)}) "
            f"is not a valid class index for the {len(class_names)} classes {class_names}: "
            f"integer labels are indices 0..{len(class_names) - 1} into class_names."
        )
    return values, list(class_names)


def _unknown_message(values, unknown, class_names, example) -> str:
    first = unknown[0]
    mask = values == first
    message = (
        f"label {first!r} ({int(mask.sum())} images, e.g. {example(mask)}) is not one of the "
        f"classes the model was trained on: {class_names}"
    )
    if len(unknown) > 1:
        message += f". Other unknown labels: {unknown[1:6]}"
    return message + "."

"""Finds images given more than once: the same file listed twice, or copies with the same bytes.

A validation image that is also a training image (or a copy of one) makes
validation metrics measure memory instead of generalisation, so splits keep
every copy of an image on one side, and overlaps between training and
validation data are said. Files are compared by their real path, then by a
hash of their bytes; only files whose size another file shares are hashed.
"""

import collections
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from transferkit.utils.log import logger

# Hashing is mostly reading: a few threads keep the disk busy without crowding the CPU.
_MAX_WORKERS = 4


def _file_digest(path: str, chunk_bytes: int = 2**20) -> str | None:
    # A read loop rather than hashlib.file_digest, which Python 3.10 lacks.
    digest = hashlib.blake2b()
    try:
        with open(path, "rb") as file:
            while chunk := file.read(chunk_bytes):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _file_keys(paths: list[str]) -> tuple[list[str], list[str | None]]:
    """The real path of each file, and a hash of its bytes where another file has its size."""
    real = [os.path.realpath(path) for path in paths]
    sizes = {}
    for path in set(real):
        try:
            sizes[path] = os.path.getsize(path)
        except OSError:
            continue
    count = collections.Counter(sizes.values())
    to_hash = sorted(path for path, size in sizes.items() if count[size] > 1)
    with ThreadPoolExecutor(max_workers=_MAX_WORKERS) as pool:
        digests = dict(zip(to_hash, pool.map(_file_digest, to_hash), strict=True))
    return real, [digests.get(path) for path in real]


def _first_of_group(keys: list) -> np.ndarray:
    """For each item, the index of the first item with the same key."""
    first = {}
    return np.array([first.setdefault(key, i) for i, key in enumerate(keys)], dtype=np.int64)


def _path_keys(paths: list[str]) -> list:
    """One key per file: its content's hash when another file has its size, else its path.

    Keys are comparable only within one call: whether a file is hashed depends on
    the other files, so keys of data compared together are made together.
    """
    real, digests = _file_keys(paths)
    return [
        ("file", path) if digest is None else ("bytes", digest)
        for path, digest in zip(real, digests, strict=True)
    ]


def _array_keys(images) -> list:
    return [(image.shape, hashlib.blake2b(image.tobytes()).digest()) for image in images]


def _keys(source) -> list | None:
    if source.paths is not None:
        return _path_keys(source.identifiers)
    if source.images is not None:
        return _array_keys(source.images)
    return None


def same_image_groups(source) -> np.ndarray:
    """Groups the images of a source that are the same file or have the same content.

    Args:
        source: `ImageSource` of files or arrays.

    Returns:
        An int64 array with, for each image, the index of the first image of
        its group: `arange(len(source))` when no image is given twice.

    Raises:
        TypeError: for a `tf.data.Dataset` source, whose images are not known
            without iterating it.
    """
    keys = _keys(source)
    if keys is None:
        raise TypeError("The images of a tf.data.Dataset can't be compared without iterating it.")
    return _first_of_group(keys)


def report_duplicates(paths: list[str], labels: np.ndarray, class_names: list[str]) -> None:
    """Says which files are listed more than once or are copies; refuses a file with two labels.

    Args:
        paths: list of str. The user's image files, one per labelled image.
        labels: int64 array. Their class indices into `class_names`.
        class_names: list of str. The classes.

    Raises:
        ValueError: if one file is listed with different labels.
    """
    real, digests = _file_keys(paths)
    rows = collections.defaultdict(list)
    for i, path in enumerate(real):
        rows[path].append(i)
    repeated = [indices for indices in rows.values() if len(indices) > 1]
    conflicts = [indices for indices in repeated if len(set(labels[indices].tolist())) > 1]
    if conflicts:
        first = conflicts[0]
        names = sorted({class_names[label] for label in labels[first].tolist()})
        others = f" ({len(conflicts)} files are)" if len(conflicts) > 1 else ""
        raise ValueError(
            f"{paths[first[0]]} is listed {len(first)} times with different labels "
            f"{names}{others}. Each image has a single class here: keep one row per file, "
            "with its class."
        )
    if repeated:
        first = max(repeated, key=len)
        logger.warning(
            "%d files are listed more than once (%d extra rows), e.g. %s (%d times). They are "
            "kept as listed, so they weigh more in training and in metrics; a validation split "
            "keeps every copy of a file on one side. Drop the repeated rows if they are not "
            "meant.",
            len(repeated),
            sum(len(indices) - 1 for indices in repeated),
            paths[first[0]],
            len(first),
        )
    copies = collections.defaultdict(dict)
    for i, (path, digest) in enumerate(zip(real, digests, strict=True)):
        if digest is not None:
            copies[digest].setdefault(path, i)
    copies = [list(files.values()) for files in copies.values() if len(files) > 1]
    if copies:
        first = copies[0]
        logger.warning(
            "%d %s the same content as another, e.g. %s. A validation split keeps copies on "
            "one side; remove the copies if they are not meant.",
            sum(len(indices) - 1 for indices in copies),
            "file has" if sum(len(indices) - 1 for indices in copies) == 1 else "files have",
            " and ".join(f"{paths[i]} ({class_names[labels[i]]})" for i in first[:3]),
        )


def warn_if_overlapping(train, validation) -> int:
    """Says when validation images are also training images: the same file, or a copy.

    Validation metrics over images the model trained on measure memory, not
    how well it does on new images. Files are compared with files (by real
    path and content), arrays with arrays; a `tf.data.Dataset` is not compared.

    Args:
        train: `ImageSource`. The training images.
        validation: `ImageSource`. The validation images.

    Returns:
        The number of validation images that are also in the training data.

    Example:
        >>> warn_if_overlapping(as_image_source("data/train"),
        ...                     as_image_source("data/train"))  # doctest: +SKIP
        transferkit: 16 of 16 validation images are also in the training data ...
        16
    """
    both_files = train.paths is not None and validation.paths is not None
    both_arrays = train.images is not None and validation.images is not None
    if not (both_files or both_arrays):
        return 0
    if both_files:
        keys = _path_keys(list(train.identifiers) + list(validation.identifiers))
    else:
        keys = _array_keys(train.images) + _array_keys(validation.images)
    groups = _first_of_group(keys)
    in_training = groups[len(train) :] < len(train)
    count = int(in_training.sum())
    if count:
        index = int(np.flatnonzero(in_training)[0])
        if both_files:
            example = f"{validation.identifiers[index]}"
            same = train.identifiers[groups[len(train) + index]]
            if same != example:
                example += f" (in training as {same})"
        else:
            example = f"validation image #{index} (training image #{groups[len(train) + index]})"
        logger.warning(
            "%d of %d validation images are also in the training data (the same file or a "
            "copy), e.g. %s: validation metrics over them do not measure how the model does "
            "on new images. Pass validation data that shares no image with the training data, "
            "or leave it out to hold out a part of the training data.",
            count,
            len(validation),
            example,
        )
    return count

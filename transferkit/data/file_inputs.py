"""Reads file-based inputs (a folder, a DataFrame, a list of paths) into checked files."""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from transferkit.data.csv_inputs import separator_hint
from transferkit.data.duplicates import report_duplicates
from transferkit.data.labels import clean_name
from transferkit.data.multi_labels import encode_any_labels
from transferkit.data.scan import scan_images
from transferkit.utils.log import logger

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")
# Folder names that mark a part of a data set rather than a class, by what the part is for.
_SPLIT_NAMES = {
    **dict.fromkeys(("train", "training"), "training"),
    **dict.fromkeys(("val", "valid", "validation", "dev"), "validation"),
    **dict.fromkeys(("test", "testing", "eval", "evaluation", "holdout"), "test"),
}


class FileInput(NamedTuple):
    """What a file-based input reads to: usable files, their labels, and what was left out."""

    paths: list[str]  # what to decode: the file itself, or its converted copy
    original_paths: list[str]  # the user's file, for prediction output
    labels: np.ndarray | None
    class_names: list[str] | None
    skipped: pd.DataFrame
    multi_label: bool = False


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether `path` has an image extension (case-insensitive) and is not hidden.

    Args:
        path: str or `os.PathLike`. A file path.

    Returns:
        True for e.g. `cat.JPG`, False for `notes.txt` or `._cat.jpg` (a macOS
        metadata file).
    """
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def find_images(folder: str | os.PathLike) -> list[str]:
    """Lists image files under `folder` recursively, sorted, skipping hidden folders.

    Symlinked folders are followed, and each real folder is read once: a folder
    reached again (through a symlink loop, or a second symlink to it) is
    skipped, and the log says so.
    """
    found = []
    read = {os.path.realpath(folder)}
    not_followed = []
    for parent, folders, files in os.walk(folder, followlinks=True):
        keep = []
        for name in sorted(name for name in folders if not name.startswith(".")):
            target = os.path.realpath(os.path.join(parent, name))
            if target in read:
                not_followed.append((os.path.join(parent, name), target))
            else:
                read.add(target)
                keep.append(name)
        folders[:] = keep
        found.extend(os.path.join(parent, name) for name in sorted(files) if is_image_file(name))
    if not_followed:
        shown = "; ".join(f"{path} (the same folder as {real})" for path, real in not_followed[:3])
        logger.warning(
            "Skipped %d folders whose images are read already through another path (a "
            "symlink, or a symlink loop): %s%s",
            len(not_followed),
            shown,
            "; ..." if len(not_followed) > 3 else "",
        )
    return found


def read_folder(
    folder: Path,
    require_labels: bool,
    class_names: list[str] | None,
    multi_label: bool | None = None,
) -> FileInput:
    """Reads a folder with one sub-folder per class, or (unlabeled) a folder of images."""
    folder = Path(os.path.abspath(folder))
    loose = [str(folder / name) for name in sorted(os.listdir(folder)) if is_image_file(name)]
    loose = [path for path in loose if os.path.isfile(path)]
    sub_folders = sorted(
        entry
        for entry in os.listdir(folder)
        if not entry.startswith(".") and (folder / entry).is_dir()
    )
    classes = {name: find_images(folder / name) for name in sub_folders}
    empty = [name for name, files in classes.items() if not files]
    classes = {name: files for name, files in classes.items() if files}

    if not classes and not loose:
        raise ValueError(
            f"No images found in {folder} or its sub-folders (looked for files ending in "
            f"{', '.join(IMAGE_EXTENSIONS)}, in any case). Check the path, or convert the "
            "images to one of these formats."
        )
    if not require_labels and not _is_class_layout(classes, loose, class_names):
        return _read_files(find_images(folder), None, class_names)
    _refuse_split_layout(folder, sub_folders)
    if not classes:
        raise ValueError(
            f"Found {len(loose)} images directly in {folder} but no class sub-folders, so "
            f"there are no labels. Put each class's images in its own sub-folder: "
            f"{folder / 'cat'}/*.jpg, {folder / 'dog'}/*.jpg, ..."
        )
    if class_names is None and len(classes) < 2:
        raise ValueError(
            f"At least 2 classes are needed to train a classifier, found {sorted(classes)} in "
            f"{folder}. Put each class's images in its own sub-folder of {folder}: "
            f"{folder / 'cat'}/*.jpg, {folder / 'dog'}/*.jpg, ..."
        )
    if empty and class_names is None:
        logger.warning(
            "Sub-folders %s of %s hold no images: they are not used as classes.", empty, folder
        )
    paths = [path for files in classes.values() for path in files]
    labels = [name for name, files in classes.items() for _ in files]
    result = _read_files(paths, labels, class_names, multi_label)
    if loose:
        logger.warning(
            "Left out %d images directly in %s: only images inside a class sub-folder are "
            "used, e.g. %s.",
            len(loose),
            folder,
            loose[0],
        )
        outside = pd.DataFrame({"path": loose, "reason": "not in a class sub-folder"})
        result = result._replace(skipped=pd.concat([result.skipped, outside], ignore_index=True))
    return result


def _refuse_split_layout(folder: Path, sub_folders: list[str]) -> None:
    """Refuses data/ holding train/ and test/, each with class sub-folders, read as classes."""
    kinds = {name: _SPLIT_NAMES.get(name.lower()) for name in sub_folders}
    if not sub_folders or None in kinds.values():
        return
    if not any(_has_sub_folders(folder / name) for name in sub_folders):
        return  # classes that happen to be named like splits, images directly inside
    first = {kind: folder / name for name, kind in reversed(kinds.items())}
    if "training" in first:
        advice = f"Pass {first['training']} as the training data"
        if "validation" in first:
            advice += f", {first['validation']} as the validation data"
        if "test" in first:
            advice += f", and keep {first['test']} for evaluating the trained model"
    else:
        advice = f"Pass one of {[str(folder / name) for name in sub_folders]} as the data"
    raise ValueError(
        f"{folder} holds the split folders {sub_folders}, each with its own class "
        f"sub-folders: they are parts of a data set, not classes. {advice}."
    )


def _has_sub_folders(folder: Path) -> bool:
    return any(entry.is_dir() and not entry.name.startswith(".") for entry in folder.iterdir())


def _is_class_layout(classes: dict, loose: list[str], class_names: list[str] | None) -> bool:
    # Without required labels, sub-folders count as classes only when nothing else
    # is there and their names are plausible classes, so that predicting on
    # photos/2023/*.jpg doesn't fail because "2023" is not a class of the model.
    if loose or not classes:
        return False
    if class_names is not None:
        return {clean_name(name) for name in classes} <= set(class_names)
    return len(classes) >= 2


def read_dataframe(
    frame: pd.DataFrame,
    path_column: str,
    label_column: str | list[str] | None,
    require_labels: bool,
    class_names: list[str] | None,
    what: str = "The DataFrame",
    multi_label: bool | None = None,
    delimiter: str | None = None,
) -> FileInput:
    """Reads a DataFrame with a column of image paths and (optionally) a column of labels.

    `label_column` may be a list of columns, one 0/1 column per class (multi-label).
    `what` names the table in errors, e.g. "The CSV labels.csv".
    """
    columns = list(frame.columns)
    if path_column not in frame.columns:
        raise ValueError(
            f"{what} has no column {path_column!r} for the image paths. Its columns are "
            f"{columns}."
            + (separator_hint(columns) or " Set path_column= to the column that holds the paths.")
        )
    if isinstance(label_column, (list, tuple)):
        missing_columns = [column for column in label_column if column not in frame.columns]
        if missing_columns:
            raise ValueError(
                f"{what} has no column(s) {missing_columns} of the label columns "
                f"{list(label_column)}. Its columns are {columns}."
            )
        if len(label_column) < 2:
            raise ValueError(
                "A list of label columns is one 0/1 column per class, at least 2. Received: "
                f"label_column={list(label_column)!r}"
            )
    labeled = label_column is not None and (
        isinstance(label_column, (list, tuple)) or label_column in frame.columns
    )
    if require_labels and not labeled:
        if label_column is None:
            raise ValueError(
                "Labels are required but label_column=None. Set label_column= to the column "
                f"that holds the labels; the columns are {columns}."
            )
        raise ValueError(
            f"{what} has no column {label_column!r} for the labels. Its columns are "
            f"{columns}. Set label_column= to the column that holds the labels."
        )
    if frame.empty:
        raise ValueError(f"{what} has no rows: there are no images to read.")
    missing = frame[path_column].isna()
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} rows have no path in column {path_column!r} (NaN), e.g. "
            f"row {frame.index[missing.to_numpy()][0]!r}. Drop those rows or fill them in."
        )
    if not labeled:
        labels = None
    elif isinstance(label_column, (list, tuple)):
        labels = frame[list(label_column)]
    else:
        labels = frame[label_column]
    return read_paths(list(frame[path_column]), labels, class_names, multi_label, delimiter)


def read_paths(
    paths: Sequence[str | os.PathLike],
    labels: Sequence[Any] | np.ndarray | pd.Series | None,
    class_names: list[str] | None,
    multi_label: bool | None = None,
    delimiter: str | None = None,
) -> FileInput:
    """Reads a list of image paths, with labels (one per path) or None."""
    if labels is not None and len(labels) != len(paths):
        raise ValueError(
            f"Received {len(paths)} image paths but {len(labels)} labels. Pass one label per "
            "image."
        )
    if not paths:
        raise ValueError("Received an empty list of image paths: there are no images to read.")
    paths = [os.path.abspath(os.fspath(path)) for path in paths]
    return _read_files(paths, labels, class_names, multi_label, delimiter)


def _read_files(
    paths: list[str],
    labels: Any,
    class_names: list[str] | None,
    multi_label: bool | None = None,
    delimiter: str | None = None,
) -> FileInput:
    classes_given = class_names is not None
    indices = None
    multi = False
    if labels is not None:
        # Labels are checked before the scan: a bad label should not wait for 10,000 decodes.
        indices, class_names, multi = encode_any_labels(
            labels, class_names, multi_label=multi_label, delimiter=delimiter, identifiers=paths
        )
    if not any(os.path.lexists(path) for path in paths):
        raise FileNotFoundError(
            f"None of the {len(paths)} image paths exist, e.g. {paths[0]}. Relative paths are "
            f"resolved against the current directory ({os.getcwd()}): make them absolute, "
            "or run from the folder they are relative to."
        )
    usable, skipped = scan_images(paths)
    if not usable:
        raise ValueError(no_usable_images_message(skipped))
    left_out = set(skipped["path"])
    keep = np.array([path not in left_out for path in paths], dtype=bool)
    originals = [path for path, kept in zip(paths, keep, strict=True) if kept]
    if multi:
        indices = indices[keep]
        counts = indices.sum(axis=0)
        empty = [name for name, count in zip(class_names, counts, strict=True) if count == 0]
        if empty:
            logger.warning(
                "Classes %s have no image among the usable files: the model cannot learn "
                "them from these images.",
                empty,
            )
        return FileInput(usable, originals, indices, class_names, skipped, True)
    if indices is not None:
        lost = sorted(set(indices.tolist()) - set(indices[keep].tolist()))
        indices = indices[keep]
        if lost and classes_given:
            logger.warning(
                "Classes %s have no usable images left after leaving out unusable files.",
                [class_names[i] for i in lost],
            )
        elif lost:
            # As for an empty folder: a class with nothing to learn from is no class.
            logger.warning(
                "Classes %s have no usable images (every file was left out): they are not "
                "used as classes, as an empty folder is not.",
                [class_names[i] for i in lost],
            )
            kept = [i for i in range(len(class_names)) if i not in set(lost)]
            indices = np.searchsorted(kept, indices).astype(np.int64)
            class_names = [class_names[i] for i in kept]
    if indices is not None:
        report_duplicates(originals, indices, class_names)
    return FileInput(usable, originals, indices, class_names, skipped)


def no_usable_images_message(skipped: pd.DataFrame) -> str:
    """Says why every file was left out: counts per reason and an example of each."""
    reasons = skipped.groupby("reason", sort=False)["path"].agg(["size", "first"])
    details = "; ".join(
        f"{count} {reason} (e.g. {example})" for reason, (count, example) in reasons.iterrows()
    )
    return (
        f"None of the {len(skipped)} image files can be used: {details}. "
        "Check that the paths point to readable JPEG, PNG, GIF, BMP, WebP or TIFF images."
    )

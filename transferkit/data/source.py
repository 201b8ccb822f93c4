"""One description of a set of images, whatever form they were given in."""

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from transferkit.data.csv_inputs import is_csv_file, read_csv_file
from transferkit.data.file_inputs import read_dataframe, read_folder, read_paths
from transferkit.data.labels import check_class_names, encode_labels
from transferkit.data.multi_labels import encode_multi_labels
from transferkit.data.tensor_inputs import dataset_layout, read_arrays, read_dataset


def _no_skipped() -> pd.DataFrame:
    return pd.DataFrame({"path": pd.Series(dtype=str), "reason": pd.Series(dtype=str)})


@dataclasses.dataclass(repr=False)
class ImageSource:
    """A set of images, with labels or without, ready for `make_dataset`.

    Exactly one of `paths`, `images` or `dataset` is set. Build one with
    `as_image_source` rather than directly: it checks the files and labels.

    Attributes:
        paths: list of str or None. Image files to decode (for a file TensorFlow
            can't read correctly, its converted copy in transferkit's cache).
        images: numpy array or None. Images of shape `(N, H, W, 3)`, values 0-255.
        labels: numpy array or None. int64 class indices into `class_names`,
            shape `(N,)`; None when unlabeled (and for a `tf.data.Dataset`).
        class_names: list of str or None. Class names in class-index order.
        dataset: `tf.data.Dataset` or None. A user's dataset passed through.
        skipped: `pandas.DataFrame` with columns `path` and `reason`: files found
            unusable and left out.
        original_paths: list of str or None. The user's file for each entry of
            `paths` (differs from `paths` only for converted files).
        multi_label: bool. Whether each image may belong to several classes (or
            none); `labels` are then float32 multi-hot rows `(N, num_classes)`.
    """

    paths: list[str] | None = None
    images: np.ndarray | None = None
    labels: np.ndarray | None = None
    class_names: list[str] | None = None
    dataset: tf.data.Dataset | None = None
    skipped: pd.DataFrame = dataclasses.field(default_factory=_no_skipped)
    original_paths: list[str] | None = None
    multi_label: bool = False

    def __len__(self) -> int:
        """The number of usable images.

        Raises:
            TypeError: for a `tf.data.Dataset` whose number of images is not
                known without iterating it (unknown cardinality, or batched).
        """
        if self.paths is not None:
            return len(self.paths)
        if self.images is not None:
            return len(self.images)
        cardinality = int(self.dataset.cardinality())
        if dataset_layout(self.dataset).batched or cardinality < 0:
            raise TypeError(
                "The number of images in this tf.data.Dataset is not known without iterating "
                "it (it is batched, or its cardinality is unknown or infinite). Count them "
                "yourself, or pass the images as a folder, DataFrame or arrays."
            )
        return cardinality

    @property
    def labeled(self) -> bool:
        """Whether the images come with labels (for a dataset: whether it yields them)."""
        if self.dataset is not None:
            return dataset_layout(self.dataset).labeled
        return self.labels is not None

    @property
    def identifiers(self) -> list[str] | None:
        """The user's file paths, one per image (for prediction output); None for arrays."""
        if self.paths is None:
            return None
        return list(self.original_paths if self.original_paths is not None else self.paths)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "ImageSource":
        """Returns the images at `indices` (ints or a boolean mask), same classes.

        Raises:
            TypeError: for a `tf.data.Dataset` source, which can't be indexed.
        """
        if self.dataset is not None:
            raise TypeError(
                "A tf.data.Dataset can't be indexed into a subset. Pass separate datasets, "
                "e.g. validation_data=..."
            )
        indices = np.arange(len(self))[np.asarray(indices)]

        def pick(items):
            return None if items is None else [items[i] for i in indices]

        return dataclasses.replace(
            self,
            paths=pick(self.paths),
            original_paths=pick(self.original_paths),
            images=None if self.images is None else self.images[indices],
            labels=None if self.labels is None else self.labels[indices],
        )

    def __repr__(self) -> str:
        if self.dataset is not None:
            kind = "a tf.data.Dataset"
        else:
            kind = f"{len(self)} images from {'files' if self.paths is not None else 'arrays'}"
        classes = "unlabeled" if not self.labeled else f"class_names={self.class_names}"
        return f"ImageSource({kind}, {classes}, {len(self.skipped)} skipped)"


# Everything `as_image_source` accepts as `data`.
ImageData = (
    str
    | os.PathLike
    | pd.DataFrame
    | Sequence[str | os.PathLike]
    | np.ndarray
    | tf.Tensor
    | tuple
    | tf.data.Dataset
    | ImageSource
)


def as_image_source(
    data: ImageData,
    labels: Sequence[Any] | np.ndarray | pd.Series | None = None,
    *,
    class_names: Sequence[str] | None = None,
    path_column: str = "path",
    label_column: str | Sequence[str] | None = "label",
    require_labels: bool = True,
    multi_label: bool | None = None,
    label_delimiter: str | None = None,
) -> ImageSource:
    """Turns any supported form of image data into an `ImageSource`.

    Accepted `data`:

    - a folder (str or `pathlib.Path`) with one sub-folder per class: the
      classes are the sorted sub-folder names, and images are found
      recursively inside each (jpg, jpeg, png, gif, bmp, webp, tif, tiff, in
      any case). With `require_labels=False`, a folder of images without class
      sub-folders is read unlabeled.
    - a `pandas.DataFrame` with a column of paths and a column of labels.
      Relative paths resolve against the current directory. For multi-label
      data the label column holds lists of classes (or text joined by
      `label_delimiter`), or `label_column` is a list of 0/1 columns, one per
      class.
    - a CSV file (a path ending in `.csv`) with the same columns, read as
      text (a label `1` is the class name `'1'`). Relative paths resolve
      against the CSV's folder, as the `transferkit` command reads it.
    - a list or tuple of image paths (labels from `labels`), or one image path.
    - a numpy array of shape `(N, H, W, 3)`, `(N, H, W, 1)` or `(N, H, W)`,
      values 0-255, with `labels`, or a tuple `(images, labels)`.
    - a `tf.data.Dataset` yielding `(images, labels)` or images, single or
      batched (e.g. from `keras.utils.image_dataset_from_directory`).
    - an `ImageSource`, returned as it is (its labels re-indexed when
      `class_names` orders the classes differently).

    Every file is checked with `scan_images`: unusable files are left out and
    listed in the result's `skipped`.

    Args:
        data: the images, in one of the forms above.
        labels: sequence or array of str or int, or None. One label per image,
            for a list of paths or an array: class names, or class indices into
            `class_names`. Defaults to None.
        class_names: list of str or None. The known classes in index order
            (e.g. those a trained model predicts); any other label is an error.
            Defaults to None: the sorted unique labels (or sub-folder names).
        path_column: str. The DataFrame column with image paths. Defaults to
            `"path"`.
        label_column: str, list of str or None. The DataFrame column with
            labels, or one 0/1 column per class (multi-label); None reads the
            images unlabeled. Defaults to `"label"`.
        require_labels: bool. Whether labels must be present (training,
            evaluation) or may be absent (prediction). Defaults to True.
        multi_label: bool or None. Whether an image may have several classes
            (or none): labels become multi-hot rows. `None` detects it from the
            labels (lists of classes, a column per class, multi-hot rows that
            are not one-hot, or a `label_delimiter`); `False` with such labels
            is an error. Defaults to None.
        label_delimiter: str or None. Splits text labels such as `"cat|dog"`
            into classes (multi-label); an empty text is an image of no class.
            Defaults to None.

    Returns:
        An `ImageSource`.

    Raises:
        FileNotFoundError: if a path given as `data` doesn't exist.
        ValueError: if no usable image is found, labels are missing or unknown,
            a folder has a single class, a DataFrame or CSV column is missing,
            or an array has the wrong shape. The message says how to fix it.
        TypeError: if `data` is of an unsupported type.

    Example:
        >>> source = as_image_source("data/train")  # doctest: +SKIP
        >>> source.class_names, len(source)  # doctest: +SKIP
        (['cat', 'dog'], 2000)
    """
    class_names = check_class_names(class_names)
    if isinstance(label_column, tuple):
        label_column = list(label_column)
    if isinstance(data, ImageSource):
        return _with_class_names(data, class_names)
    if isinstance(data, tf.data.Dataset):
        _refuse_labels(labels, "a tf.data.Dataset", "yield (images, labels) from the dataset")
        names, multi = read_dataset(data, require_labels, class_names, multi_label)
        return ImageSource(class_names=names, dataset=data, multi_label=multi)
    label_options = {"multi_label": multi_label, "delimiter": label_delimiter}
    if isinstance(data, pd.DataFrame):
        _refuse_labels(labels, "a DataFrame", "put them in a column and set label_column=")
        read = read_dataframe(
            data, path_column, label_column, require_labels, class_names, **label_options
        )
        return _from_files(read, multi_label)
    if isinstance(data, pd.Series) or (
        isinstance(data, np.ndarray) and data.ndim == 1 and data.dtype.kind in "USO"
    ):
        data = data.tolist()  # a column or array of paths
    if isinstance(data, tuple) and len(data) == 2 and _is_array(data[0]):
        _refuse_labels(labels, "data=(images, labels)", "pass only one of them")
        data, labels = data
    if _is_array(data):
        images, encoded, names, multi = read_arrays(
            data, labels, require_labels, class_names, **label_options
        )
        return ImageSource(images=images, labels=encoded, class_names=names, multi_label=multi)
    if isinstance(data, (str, os.PathLike)):
        path = os.path.expanduser(os.fspath(data))
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"No such file or folder: {os.path.abspath(path)!r}. Pass a folder with one "
                "sub-folder per class, a CSV file, an image file, a DataFrame, a list of paths "
                "or arrays."
            )
        if os.path.isdir(path):
            _refuse_labels(labels, "a folder", "the sub-folder names are the labels")
            return _from_files(read_folder(path, require_labels, class_names, multi_label))
        if is_csv_file(path):
            _refuse_labels(labels, "a CSV file", "put them in a column and set label_column=")
            frame = read_csv_file(path, path_column)
            what = f"The CSV {os.path.abspath(path)}"
            read = read_dataframe(
                frame,
                path_column,
                label_column,
                require_labels,
                class_names,
                what,
                **label_options,
            )
            return _from_files(read, multi_label)
        data = [path]
        labels = None if labels is None else _as_list(labels)
    if isinstance(data, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in data):
        if require_labels and labels is None:
            raise ValueError(
                f"Received {len(data)} image paths but no labels. Pass labels=[...] (one per "
                "path), a DataFrame with a label column, or a folder with one sub-folder per "
                "class."
            )
        read = read_paths(list(data), labels, class_names, **label_options)
        return _from_files(read, multi_label)
    raise TypeError(
        "Unsupported image data of type "
        f"{type(data).__name__}. Pass a folder path, a pandas DataFrame, a list of image "
        "paths, a numpy array (N, H, W, 3) with labels, (images, labels), or a tf.data.Dataset."
    )


def _from_files(read, multi_label: bool | None = None) -> ImageSource:
    return ImageSource(
        paths=read.paths,
        labels=read.labels,
        class_names=read.class_names,
        skipped=read.skipped,
        original_paths=read.original_paths,
        # Unlabeled images for a multi-label model: said by the caller.
        multi_label=read.multi_label or (read.labels is None and bool(multi_label)),
    )


def _is_array(data) -> bool:
    return isinstance(data, (np.ndarray, tf.Tensor))


def _as_list(labels) -> list:
    if isinstance(labels, (str, bytes, int, np.integer)):
        return [labels]
    return list(labels)


def _refuse_labels(labels, what: str, instead: str) -> None:
    if labels is not None:
        raise ValueError(f"labels= can't be combined with {what}: {instead}.")


def _with_class_names(source: ImageSource, class_names: list[str] | None) -> ImageSource:
    if class_names is None or source.class_names == class_names:
        return source
    if source.labels is None or source.class_names is None:
        return dataclasses.replace(source, class_names=class_names)
    if source.multi_label:
        frame = pd.DataFrame(source.labels, columns=source.class_names)
        encoded, _ = encode_multi_labels(frame, class_names, identifiers=source.identifiers)
        return dataclasses.replace(source, labels=encoded, class_names=class_names)
    names = np.asarray(source.class_names)[source.labels]
    indices, _ = encode_labels(names, class_names, identifiers=source.identifiers)
    return dataclasses.replace(source, labels=indices, class_names=class_names)

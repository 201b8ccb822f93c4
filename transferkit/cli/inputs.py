"""What the commands read: labelled DATA (a folder or a CSV), images to predict, a model."""

import os

DATA_FORMS = (
    "DATA must be a folder with one sub-folder per class (data/cat/*.jpg, data/dog/*.jpg, ...) "
    "or a CSV file with a column of image paths and a column of labels"
)


def check_data_path(data: str, flag: str = "DATA") -> None:
    """Fails fast, before TensorFlow is imported, on a DATA that can't be read.

    Raises:
        FileNotFoundError: if nothing exists at `data`.
        ValueError: if `data` is a file other than a `.csv`.
    """
    path = os.path.expanduser(data)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file or folder: {data!r} ({flag}). {DATA_FORMS}.")
    if os.path.isfile(path) and not path.lower().endswith(".csv"):
        raise ValueError(f"{flag} is a file but not a .csv: {data!r}. {DATA_FORMS}.")


def read_labelled(
    data: str,
    path_column: str = "path",
    label_column: str | list[str] = "label",
    class_names: list[str] | None = None,
    *,
    multi_label: bool | None = None,
    label_delimiter: str | None = None,
):
    """Reads labelled images from a folder of class sub-folders or a CSV file.

    Relative paths in a CSV resolve against the CSV's own folder, so a CSV
    written next to its images works from any current directory.

    Args:
        data: str. The folder or CSV file.
        path_column: str. The CSV column of image paths. Defaults to `"path"`.
        label_column: str or list of str. The CSV column of labels (with
            a comma, the 0/1 columns, one per class). Defaults to `"label"`.
        class_names: list of str or None. The classes of a trained model, for
            evaluation; None takes them from the data. Defaults to None.
        multi_label: bool or None. As `as_image_source` reads it. Defaults
            to None.
        label_delimiter: str or None. As `as_image_source` reads it.
            Defaults to None.

    Returns:
        A `transferkit.data.ImageSource`.
    """
    from transferkit.cli.parsing import label_column_argument
    from transferkit.data import as_image_source

    check_data_path(data)
    if isinstance(label_column, str):
        label_column = label_column_argument(label_column)
    path = os.path.expanduser(data)
    if os.path.isdir(path):
        return as_image_source(path, class_names=class_names, multi_label=multi_label)
    frame = _read_csv(path, path_column, label_column)
    return as_image_source(
        frame,
        class_names=class_names,
        path_column=path_column,
        label_column=label_column,
        multi_label=multi_label,
        label_delimiter=label_delimiter,
    )


def _read_csv(path: str, path_column: str, label_column: str):
    import pandas as pd

    # Labels stay strings: class "1" is a name here, not a class index.
    frame = pd.read_csv(path, dtype=str)
    label_columns = label_column if isinstance(label_column, list) else [label_column]
    wanted = [("--path-column", path_column)] + [("--label-column", c) for c in label_columns]
    missing = [(flag, column) for flag, column in wanted if column not in frame.columns]
    if missing:
        from transferkit.data.csv_inputs import separator_hint

        flag, column = missing[0]
        if separator_hint(list(frame.columns)):
            header = frame.columns[0]
            separator = next(sep for sep in (";", "\t", "|") if sep in header)
            raise ValueError(
                f"The CSV {path} has no column {column!r}: its only column, {header!r}, looks "
                f"like a header separated by {separator!r}, and a CSV is read as "
                "comma-separated. Save the file with commas."
            )
        raise ValueError(
            f"The CSV {path} has no column {column!r}; its columns are "
            f"{list(frame.columns)}. Name the right one with {flag}."
        )
    base = os.path.dirname(os.path.abspath(path))
    given = frame[path_column].dropna()
    frame[path_column] = [
        value if pd.isna(value) else _resolve(value, base) for value in frame[path_column]
    ]
    resolved = frame[path_column].dropna()
    if len(resolved) and not any(os.path.lexists(value) for value in resolved):
        # Said here: the reader below sees absolute paths, and would blame the current
        # directory.
        example = given.iloc[0]
        hint = ""
        if not os.path.isabs(os.path.expanduser(example)) and os.path.lexists(example):
            hint = (
                f" ({example!r} does exist relative to the current directory: write the CSV's "
                "paths relative to its own folder, or absolute.)"
            )
        raise FileNotFoundError(
            f"None of the {len(resolved)} image paths in the CSV {path} exist, e.g. "
            f"{resolved.iloc[0]} (given as {example!r}). Relative paths in a CSV are resolved "
            f"against the CSV's own folder ({base}), not the current directory: make them "
            f"relative to that folder, or absolute.{hint}"
        )
    return frame


def _resolve(value: str, base: str) -> str:
    value = os.path.expanduser(value)
    return value if os.path.isabs(value) else os.path.join(base, value)


def check_image_arguments(images: list[str]) -> None:
    """Fails fast on IMAGES that don't exist (a typo is likelier than a wish to skip).

    Raises:
        FileNotFoundError: naming the first missing path.
    """
    for image in images:
        if not os.path.exists(os.path.expanduser(image)):
            raise FileNotFoundError(
                f"No such file or folder: {image!r}. IMAGES are image files and/or folders "
                "of images."
            )


def image_paths(images: list[str]) -> list[str]:
    """Expands folders into the image files they hold (recursively, sorted).

    Files named on the command line are kept whatever their extension: the
    scan that follows says which ones are not images.

    Raises:
        ValueError: if the folders hold no image and no file was named.
    """
    from transferkit.data.file_inputs import IMAGE_EXTENSIONS, find_images

    check_image_arguments(images)
    paths, empty = [], []
    for image in images:
        path = os.path.expanduser(image)
        if os.path.isdir(path):
            found = find_images(path)
            paths.extend(found)
            if not found:
                empty.append(image)
        else:
            paths.append(path)
    if not paths:
        raise ValueError(
            f"No image files in {', '.join(repr(folder) for folder in empty)} (looked for "
            f"{', '.join(IMAGE_EXTENSIONS)} in any case, in sub-folders too)."
        )
    return paths


def check_model_path(model: str) -> None:
    """Fails fast, before TensorFlow is imported, on a MODEL that doesn't exist."""
    if not os.path.isfile(os.path.expanduser(model)):
        what = "is a folder, not a file" if os.path.isdir(model) else "does not exist"
        raise FileNotFoundError(
            f"MODEL {model!r} {what}. Pass the model.keras file a `transferkit fit` run "
            "wrote, e.g. runs/cats/model.keras."
        )


def load_model(model: str):
    """Loads a model saved by transferkit as a `FineTuner`.

    `transferkit.load` already answers a file it cannot load (not a .keras
    archive, damaged, holding code, or another kind of model) with a one-line
    error that names the file and says what it expects; it is passed on as is.

    Raises:
        FileNotFoundError: if there is no file at `model`.
        ValueError: if the file is not a model transferkit can load.
    """
    from transferkit.finetuner import load

    check_model_path(model)
    return load(os.path.expanduser(model))


def weights_argument(value: str):
    """Turns --weights (imagenet, none or a file) into FineTuner's `weights`."""
    if value.lower() == "none":
        return None
    if value.lower() == "imagenet":
        return "imagenet"
    if not os.path.isfile(os.path.expanduser(value)):
        raise FileNotFoundError(
            f"No weights file at {value!r} (--weights). Pass imagenet, none, or the path of a "
            "weights file of the backbone without its top."
        )
    return os.path.expanduser(value)


def check_backbone(name: str) -> None:
    """Checks a --backbone name, suggesting close ones and `transferkit backbones`."""
    import difflib

    from transferkit.backbones import get_backbone_spec, hub, list_backbones

    if hub.is_hub_backbone(name):
        get_backbone_spec(name)  # its errors name the preset's own problem
        return
    try:
        get_backbone_spec(name)
    except ValueError:
        names = list(list_backbones()["name"])
        close = difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown backbone {name!r}.{hint} `transferkit backbones` lists the "
            f"{len(names)} available names."
        ) from None

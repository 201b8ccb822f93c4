"""Reads a CSV file of image paths and labels, as the `transferkit` command reads it."""

import os

import pandas as pd


def is_csv_file(path: str) -> bool:
    """Whether `path` is an existing file ending in `.csv` (in any case)."""
    return os.path.isfile(path) and path.lower().endswith(".csv")


def read_csv_file(path: str, path_column: str) -> pd.DataFrame:
    """Reads a CSV into a DataFrame of absolute image paths and text labels.

    Every column is read as text, so a label `1` is the class name `'1'` and
    `07` stays `'07'`. Relative image paths resolve against the CSV's own
    folder, so a CSV written beside its images works from any current folder.

    Args:
        path: str. The CSV file.
        path_column: str. The column of image paths.

    Returns:
        A `pandas.DataFrame`, its `path_column` made absolute (when present).
    """
    frame = pd.read_csv(path, dtype=str)
    if path_column in frame.columns:
        base = os.path.dirname(os.path.abspath(path))
        frame[path_column] = [
            value if pd.isna(value) else os.path.join(base, os.path.expanduser(value))
            for value in frame[path_column]
        ]
    return frame


def separator_hint(columns: list) -> str:
    """Says which separator a table read as comma-separated seems to use, if one shows."""
    if len(columns) != 1:
        return ""
    header = str(columns[0])
    for separator in (";", "\t", "|"):
        if separator in header:
            return (
                f" Its only column, {header!r}, looks like a header separated by "
                f"{separator!r}, and a CSV is read here as comma-separated: save the file "
                f"with commas, or read it with pandas.read_csv(path, sep={separator!r}) and "
                "pass the DataFrame."
            )
    return ""

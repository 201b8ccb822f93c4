"""What every transferkit plot shares: a backend-free figure, atomic PNG saving, column checks."""

import os

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from transferkit.utils.files import atomic_path

DPI = 110
TRAIN_COLOUR = "tab:blue"
VALIDATION_COLOUR = "tab:orange"
WRONG_COLOUR = "#c62828"
RIGHT_COLOUR = "#2e7d32"


def new_figure(width: float, height: float) -> Figure:
    """A figure drawn by Agg, whatever backend pyplot (or a notebook) uses.

    Built without pyplot, so it is never registered as an "open figure": plotting
    in a loop leaks nothing, and a user's interactive backend is left alone.
    """
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | os.PathLike | None) -> Figure:
    """Writes `figure` as a PNG at `path` (if given) and returns it.

    Plots belong to a run folder and are regenerated with it, so an existing
    file is replaced, atomically: a failed draw never leaves half a PNG.
    """
    if path is not None:
        with atomic_path(path, overwrite=True) as tmp:
            figure.savefig(tmp, format="png", dpi=DPI)
    return figure


def require_frame(
    frame: object, argument: str, columns: tuple[str, ...] = (), produced_by: str = ""
) -> pd.DataFrame:
    """Checks `frame` is a non-empty DataFrame holding `columns`.

    Args:
        frame: The value received.
        argument: str. The argument's name, for the message.
        columns: tuple of str. Columns that must be present.
        produced_by: str. Where such a DataFrame comes from, for the message.

    Raises:
        TypeError: if `frame` is not a `pandas.DataFrame`.
        ValueError: if a column is missing or the DataFrame has no rows.
    """
    hint = f" Pass the DataFrame {produced_by} returns." if produced_by else ""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"`{argument}` must be a pandas DataFrame.{hint} "
            f"Received: {argument} of type {type(frame).__name__}"
        )
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"`{argument}` has no column {', '.join(repr(c) for c in missing)}. "
            f"Columns present: {list(frame.columns)}.{hint}"
        )
    if frame.empty:
        raise ValueError(f"`{argument}` has no rows: there is nothing to plot.")
    return frame


def numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    """The column as floats; non-numbers (None, text) and infinities become NaN."""
    values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return values.where(values.abs() != float("inf"))


def check_positive_int(value: object, name: str) -> None:
    """Raises a ValueError unless `value` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")

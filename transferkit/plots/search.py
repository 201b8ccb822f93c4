"""A hyperparameter search at a glance: the metric per trial and against each hyperparameter."""

import os

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from transferkit.plots.figures import (
    TRAIN_COLOUR,
    VALIDATION_COLOUR,
    WRONG_COLOUR,
    new_figure,
    numeric,
    require_frame,
    save_figure,
)

MAX_HYPERPARAMETER_PANELS = 6
PANEL_COLUMNS = 3
# Columns of a results table that describe the trial, not a hyperparameter.
BOOKKEEPING = {
    "trial",
    "trial_id",
    "trial_number",
    "status",
    "score",
    "best_step",
    "seconds",
    "rank",
}
METRIC_NAMES = {"loss", "accuracy"}


def _is_metric(column: str) -> bool:
    return (
        column in METRIC_NAMES
        or column.startswith("val_")
        or column.endswith("_loss")
        or column.endswith("_accuracy")
    )


def hyperparameter_columns(results: pd.DataFrame, metric: str) -> list[str]:
    """Numeric columns that vary between trials and are neither metrics nor bookkeeping."""
    columns = []
    for column in results.columns:
        name = str(column)
        if column == metric or name in BOOKKEEPING or _is_metric(name):
            continue
        series = results[column]
        if series.dtype == bool or not pd.api.types.is_numeric_dtype(series):
            continue
        if series.dropna().nunique() > 1:
            columns.append(column)
    return columns


def _uneven(values: np.ndarray) -> float:
    """How far sorted values are from evenly spread over their range (a KS distance)."""
    scaled = (values - values.min()) / (values.max() - values.min())
    even = np.linspace(0, 1, len(values))
    return float(np.abs(np.sort(scaled) - even).max())


def _spread_over_decades(values: pd.Series) -> bool:
    """Whether values read better on a log axis, as log-uniform samples (learning rates) do.

    They are positive, span a decade or more, and spread more evenly on a log
    axis than on a linear one. A dropout rate sampled between 0 and 0.5 can
    span decades too (0.002 to 0.5) but bunches up on a log axis.
    """
    values = values.dropna().to_numpy(dtype="float64")
    if len(values) < 3 or (values <= 0).any() or values.max() / values.min() < 10:
        return False
    return _uneven(np.log(values)) < _uneven(values)


def plot_search(
    results: pd.DataFrame, metric: str = "val_accuracy", path: str | os.PathLike | None = None
) -> Figure:
    """Plots a tuner's trials: the metric per trial with the running best, and per hyperparameter.

    The top panel shows `metric` for each trial in order, the running best
    (highest, or lowest for a metric whose name contains "loss" or "error")
    and a star on the best trial. Below, one scatter of the metric against
    each numeric hyperparameter that varies (at most six; a log scale for
    values spanning two decades or more, such as learning rates). Columns
    named like metrics (`loss`, `accuracy`, `val_*`, `*_loss`) or bookkeeping
    (`trial_id`, `status`, `score`, `seconds`, ...) are not hyperparameters.

    Args:
        results: `pandas.DataFrame`. One row per trial, in the order they
            ran, with a `metric` column and one column per hyperparameter.
            Failed trials may have a missing metric.
        metric: str. The column to plot. Defaults to `"val_accuracy"`.
        path: str, path or None. Where to save the figure as a PNG (folders
            are created, an existing file replaced). Defaults to `None`.

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ValueError: if `metric` is not a column, or `results` has no rows.
    """
    frame = require_frame(results, "results", (metric,), "the tuner").reset_index(drop=True)
    values = numeric(frame, metric)
    lower_is_better = any(word in str(metric).lower() for word in ("loss", "error"))
    hyperparameters = hyperparameter_columns(frame, metric)[:MAX_HYPERPARAMETER_PANELS]

    panel_rows = -(-len(hyperparameters) // PANEL_COLUMNS)
    figure = new_figure(10, 3.6 + 2.8 * panel_rows)
    grid = figure.add_gridspec(
        1 + panel_rows, PANEL_COLUMNS, height_ratios=[1.3] + [1] * panel_rows
    )
    ax = figure.add_subplot(grid[0, :])
    trials = np.arange(1, len(frame) + 1)
    ax.plot(trials, values, marker="o", color=TRAIN_COLOUR, linestyle=":", label=metric)
    best = None
    if values.notna().any():
        running = values.cummin() if lower_is_better else values.cummax()
        ax.plot(trials, running.ffill(), color=VALIDATION_COLOUR, linewidth=2, label="best so far")
        best = values.idxmin() if lower_is_better else values.idxmax()
        ax.plot(
            trials[best],
            values[best],
            marker="*",
            markersize=15,
            color=VALIDATION_COLOUR,
            markeredgecolor="black",
            linestyle="none",
            label=f"best {values[best]:.4g} (trial {trials[best]})",
            zorder=4,
        )
    failed = int(values.isna().sum())
    if failed:
        ax.plot(
            trials[values.isna().to_numpy()],
            [0.04] * failed,
            transform=ax.get_xaxis_transform(),
            marker="x",
            markersize=9,
            color=WRONG_COLOUR,
            linestyle="none",
            label=f"no {metric} (failed)",
        )
    title = f"{len(frame)} trials"
    if failed:
        title += f", {failed} without a {metric}"
    ax.set_title(f"Search: {metric} per trial ({title})")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    if len(trials) <= 30:
        ax.set_xticks(trials)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)

    for index, column in enumerate(hyperparameters):
        panel = figure.add_subplot(grid[1 + index // PANEL_COLUMNS, index % PANEL_COLUMNS])
        x = numeric(frame, column)
        panel.scatter(x, values, color=TRAIN_COLOUR, alpha=0.8, edgecolor="white")
        if best is not None and pd.notna(x[best]):
            panel.plot(
                x[best],
                values[best],
                marker="*",
                markersize=14,
                color=VALIDATION_COLOUR,
                markeredgecolor="black",
                linestyle="none",
            )
        if _spread_over_decades(x):
            panel.set_xscale("log")
        elif pd.api.types.is_integer_dtype(frame[column]):
            distinct = np.unique(x.dropna())
            if len(distinct) <= 6:
                panel.set_xticks(distinct)
            else:
                panel.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        panel.set_xlabel(str(column))
        panel.set_ylabel(metric)
        panel.grid(True, alpha=0.3)
    return save_figure(figure, path)

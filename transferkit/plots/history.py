"""The training history of a run: losses, accuracies and learning rate per epoch, by phase."""

import os

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from transferkit.plots.figures import (
    TRAIN_COLOUR,
    VALIDATION_COLOUR,
    new_figure,
    numeric,
    require_frame,
    save_figure,
)

# Light, distinguishable shades for consecutive phases; they repeat after six.
PHASE_SHADES = ("#e3ecf7", "#fbe9d9", "#e4f2e1", "#f1e4f3", "#f7f3d6", "#e0f1f1")


def phase_spans(phases: pd.Series, epochs: np.ndarray) -> list[tuple[str, float, float]]:
    """Runs of consecutive rows with the same phase, as (name, first x, last x)."""
    spans = []
    for position, (name, x) in enumerate(zip(phases, epochs, strict=True)):
        if position == 0 or name != phases.iloc[position - 1]:
            spans.append([str(name), x, x])
        else:
            spans[-1][2] = x
    return [tuple(span) for span in spans]


def _mark_phases(axes, spans, label_axes):
    for index, (name, first, last) in enumerate(spans):
        start, end = first - 0.5, last + 0.5
        for ax in axes:
            ax.axvspan(start, end, color=PHASE_SHADES[index % len(PHASE_SHADES)], zorder=0)
            if index > 0:
                ax.axvline(start, color="0.45", linestyle="--", linewidth=1, zorder=1)
        # Above the top panel, where no curve or legend can hide the name.
        label_axes.annotate(
            name,
            xy=(start, 1.0),
            xycoords=label_axes.get_xaxis_transform(),
            xytext=(3, 3),
            textcoords="offset points",
            ha="left",
            va="bottom",
            fontsize=9,
            color="0.25",
        )


def _plot_metric(ax, frame, x, metric, ylabel, higher_is_better):
    ax.plot(x, numeric(frame, metric), marker="o", markersize=3, color=TRAIN_COLOUR, label="train")
    validation = f"val_{metric}"
    values = numeric(frame, validation) if validation in frame.columns else None
    if values is not None and values.notna().any():
        ax.plot(x, values, marker="o", markersize=3, color=VALIDATION_COLOUR, label="validation")
        best = values.idxmax() if higher_is_better else values.idxmin()
        ax.plot(
            x[best],
            values[best],
            marker="*",
            markersize=13,
            color=VALIDATION_COLOUR,
            markeredgecolor="black",
            linestyle="none",
            label=f"best validation {values[best]:.4g} (epoch {x[best]:g})",
            zorder=4,
        )
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.85)


def plot_history(history: pd.DataFrame, path: str | os.PathLike | None = None) -> Figure:
    """Plots loss, accuracy and learning rate per epoch, with the phases shaded.

    One panel for the loss and one for the accuracy (train and validation,
    with the best validation epoch starred), then a thin learning-rate panel.
    Each phase of the schedule (a change in the `phase` column) gets its own
    shade, a dashed line where it starts and its name above the top panel.

    Args:
        history: `pandas.DataFrame`. As `FineTuner.fit` returns it: `epoch`,
            `phase`, `learning_rate`, `loss`, `accuracy`, `val_loss`,
            `val_accuracy`, `seconds`. Only `epoch` and `loss` are required;
            panels and marks for absent columns are left out.
        path: str, path or None. Where to save the figure as a PNG (folders
            are created, an existing file replaced). Defaults to `None`.

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ValueError: if `epoch` or `loss` is missing, or there are no rows.

    Example:

    ```python
    history = ft.fit("data/train", epochs=6)
    tk.plots.plot_history(history, "runs/cats/history.png")
    ```
    """
    frame = require_frame(history, "history", ("epoch", "loss"), "FineTuner.fit")
    frame = frame.reset_index(drop=True)
    x = numeric(frame, "epoch").to_numpy()
    if np.isnan(x).any() or (np.diff(x) <= 0).any():
        # Concatenated runs restart their epoch count: plot rows in order instead.
        x = np.arange(1, len(frame) + 1, dtype="float64")
    learning_rate = numeric(frame, "learning_rate") if "learning_rate" in frame.columns else None
    has_learning_rate = learning_rate is not None and learning_rate.notna().any()

    panels = [("loss", "loss", False)]
    if "accuracy" in frame.columns:
        panels.append(("accuracy", "accuracy", True))
    heights = [3] * len(panels) + ([1.2] if has_learning_rate else [])
    figure = new_figure(8, 1.2 + 2.4 * len(panels) + (1.0 if has_learning_rate else 0))
    axes = figure.subplots(len(heights), 1, sharex=True, height_ratios=heights, squeeze=False)
    axes = list(axes[:, 0])

    for ax, (metric, ylabel, higher_is_better) in zip(axes[: len(panels)], panels, strict=True):
        _plot_metric(ax, frame, x, metric, ylabel, higher_is_better)
    if has_learning_rate:
        ax = axes[-1]
        ax.plot(x, learning_rate, marker="o", markersize=3, color="0.3", drawstyle="steps-mid")
        positive = learning_rate[learning_rate > 0]
        if len(positive) and positive.max() / positive.min() >= 10:
            ax.set_yscale("log")
        else:
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        ax.set_ylabel("learning rate")
        ax.grid(True, alpha=0.3)
    if "phase" in frame.columns:
        _mark_phases(axes, phase_spans(frame["phase"], x), axes[0])
    axes[-1].set_xlabel("epoch")
    axes[-1].set_xlim(x.min() - 0.5, x.max() + 0.5)
    if len(x) <= 30:
        axes[-1].set_xticks(x)
    figure.suptitle("Training history", fontweight="bold")
    return save_figure(figure, path)

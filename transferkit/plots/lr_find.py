"""The learning-rate finder's curve: loss against learning rate, with the suggestion marked."""

import math
import os

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from transferkit.plots.figures import (
    TRAIN_COLOUR,
    new_figure,
    numeric,
    require_frame,
    save_figure,
)


def _upper_limit(loss, curve):
    """A y limit that keeps the descent readable when the loss explodes at the end.

    The top is the starting loss plus the whole descent again, or the highest
    loss if that is lower.
    """
    finite = curve[np.isfinite(curve)]
    highest = np.nanmax(loss) if np.isfinite(loss).any() else None
    if finite.size == 0 or highest is None:
        return None
    start = float(np.median(finite[: max(1, len(finite) // 10)]))
    lowest = float(finite.min())
    if start <= lowest:
        return float(highest)
    return float(min(highest, start + (start - lowest)))


def plot_lr_find(
    frame: pd.DataFrame, suggestion: float | None = None, path: str | os.PathLike | None = None
) -> Figure:
    """Plots loss against learning rate on a log scale, with the suggested rate marked.

    Args:
        frame: `pandas.DataFrame`. One row per step of the learning-rate
            sweep: `learning_rate` and `loss`, optionally `smoothed_loss`
            (drawn over the raw loss, which is then shown faintly).
        suggestion: float or None. The learning rate to mark. Defaults to
            `None` (no mark).
        path: str, path or None. Where to save the figure as a PNG (folders
            are created, an existing file replaced). Defaults to `None`.

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ValueError: if a column is missing, a learning rate is not positive,
            or `suggestion` is not a positive number.
    """
    frame = require_frame(frame, "frame", ("learning_rate", "loss"), "the learning-rate finder")
    if suggestion is not None and (
        isinstance(suggestion, bool)
        or not isinstance(suggestion, (int, float, np.number))
        or not math.isfinite(suggestion)
        or suggestion <= 0
    ):
        raise ValueError(
            "`suggestion` must be a positive learning rate or None. "
            f"Received: suggestion={suggestion!r}"
        )
    learning_rate = numeric(frame, "learning_rate")
    if not (learning_rate > 0).all():
        raise ValueError(
            "`frame['learning_rate']` must hold positive numbers (the x axis is logarithmic). "
            f"Received: {learning_rate[~(learning_rate > 0)].head().tolist()}"
        )
    order = np.argsort(learning_rate.to_numpy(), kind="stable")
    x = learning_rate.to_numpy()[order]
    loss = numeric(frame, "loss").to_numpy()[order]
    smoothed = None
    if "smoothed_loss" in frame.columns:
        smoothed = numeric(frame, "smoothed_loss").to_numpy()[order]

    figure = new_figure(7, 4.5)
    ax = figure.subplots()
    ax.plot(x, loss, color=TRAIN_COLOUR, alpha=0.35 if smoothed is not None else 1, label="loss")
    curve = loss
    if smoothed is not None:
        ax.plot(x, smoothed, color=TRAIN_COLOUR, linewidth=2, label="smoothed loss")
        curve = smoothed
    ax.set_xscale("log")
    top = _upper_limit(loss, curve)
    finite = loss[np.isfinite(loss)]
    if top is not None and finite.size:
        bottom = float(min(finite.min(), np.nanmin(curve)))
        margin = 0.05 * (top - bottom) or 0.05 * abs(top) or 0.05
        ax.set_ylim(bottom - margin, top + margin)

    if suggestion is not None:
        ax.axvline(
            suggestion,
            color="#c62828",
            linestyle="--",
            linewidth=1,
            label=f"suggested {suggestion:.2e}",
        )
        valid = np.isfinite(curve)
        if valid.any():
            at = float(np.interp(np.log(suggestion), np.log(x[valid]), curve[valid]))
            ax.plot(
                suggestion,
                at,
                marker="o",
                markersize=9,
                color="#c62828",
                linestyle="none",
                zorder=4,
            )
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    ax.set_title("Learning-rate finder")
    return save_figure(figure, path)

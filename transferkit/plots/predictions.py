"""A grid of images with what the model predicted, the most confident mistakes first."""

import math
import os

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from transferkit.plots.figures import (
    RIGHT_COLOUR,
    WRONG_COLOUR,
    check_positive_int,
    new_figure,
    require_frame,
    save_figure,
)

# Images up to this side are drawn with square pixels rather than blurred.
SMALL_IMAGE = 64
# Files are read only to be drawn a couple of inches wide.
THUMBNAIL = 256
MAX_LABEL = 20


def _as_array(images, num_rows):
    array = np.asarray(images)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] != 3):
        raise ValueError(
            "`images` must be an array (N, height, width, 3) of values 0-255, or None when "
            f"`predictions` has a 'path' column. Received: images with shape {array.shape}"
        )
    if len(array) != num_rows:
        raise ValueError(
            f"`images` holds {len(array)} images but `predictions` has {num_rows} rows; they must "
            "be aligned (row i describes image i)."
        )
    return array


def _displayable(image):
    image = np.asarray(image)
    if image.dtype.kind == "f":
        finite = image[np.isfinite(image)]
        # The contract is 0-255, but a [0, 1] float image would otherwise draw black.
        if finite.size and finite.max() <= 1.0:
            image = image * 255.0
        image = np.nan_to_num(image)
    return np.clip(image, 0, 255).astype("uint8")


def _read(path):
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((THUMBNAIL, THUMBNAIL))
            return np.asarray(image)
    except (OSError, ValueError):
        return None


def _short(label):
    label = str(label)
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def display_order(predictions: pd.DataFrame, wrong_first: bool) -> np.ndarray:
    """Row positions to show: wrong ones by decreasing probability, then the rest in order."""
    positions = np.arange(len(predictions))
    if not wrong_first or "true_label" not in predictions.columns:
        return positions
    wrong = (predictions["label"].astype(str) != predictions["true_label"].astype(str)).to_numpy()
    probability = pd.to_numeric(predictions["probability"], errors="coerce").to_numpy()
    wrong_positions = positions[wrong]
    # A stable sort keeps equally confident mistakes in their original order.
    wrong_positions = wrong_positions[np.argsort(-probability[wrong], kind="stable")]
    return np.concatenate([wrong_positions, positions[~wrong]])


def plot_predictions(
    images: np.ndarray | None,
    predictions: pd.DataFrame,
    path: str | os.PathLike | None = None,
    max_images: int = 16,
    wrong_first: bool = True,
    columns: int = 4,
) -> Figure:
    """Shows images titled with the predicted class, its probability and the true class.

    Wrong predictions are titled and framed in red (right ones in green when
    the true class is known). Images of 64 pixels or less are drawn with
    square pixels, so a 32x32 image stays sharp.

    Args:
        images: array or None. The images, `(N, height, width, 3)` with values
            0-255, row `i` of `predictions` describing image `i`; or `None` to
            read them from the `path` column of `predictions`.
        predictions: `pandas.DataFrame`. As `FineTuner.predict` returns it
            (`label`, `probability`, ...), optionally with `true_label` as in
            `EvaluationReport.predictions`.
        path: str, path or None. Where to save the figure as a PNG (folders
            are created, an existing file replaced). Defaults to `None`.
        max_images: int. How many images to show at most. Defaults to `16`.
        wrong_first: bool. With a `true_label` column: show the wrong
            predictions first, the most confident one first, then the rest.
            Defaults to `True`.
        columns: int. Images per row. Defaults to `4`.

    Returns:
        The `matplotlib.figure.Figure`, one axes per image shown.

    Raises:
        ValueError: if a column is missing, or `images` does not match
            `predictions` in length.

    Example:

    ```python
    report = ft.evaluate("data/test")
    tk.plots.plot_predictions(None, report.predictions, "runs/cats/mistakes.png")
    ```
    """
    required = ("label", "probability") + (("path",) if images is None else ())
    frame = require_frame(predictions, "predictions", required, "FineTuner.predict")
    check_positive_int(max_images, "max_images")
    check_positive_int(columns, "columns")
    array = None if images is None else _as_array(images, len(frame))
    has_truth = "true_label" in frame.columns

    order = display_order(frame, wrong_first)[:max_images]
    columns = min(columns, len(order))
    rows = math.ceil(len(order) / columns)
    figure = new_figure(2.3 * columns + 0.4, 2.6 * rows + 0.5)
    grid = figure.add_gridspec(rows, columns)
    for slot, position in enumerate(order):
        row = frame.iloc[position]
        ax = figure.add_subplot(grid[slot // columns, slot % columns])
        image = array[position] if array is not None else _read(row["path"])
        if image is None:
            ax.set_facecolor("0.85")
            ax.text(0.5, 0.5, "unreadable", ha="center", va="center", transform=ax.transAxes)
        else:
            image = _displayable(image)
            small = max(image.shape[:2]) <= SMALL_IMAGE
            ax.imshow(
                image,
                cmap="gray" if image.ndim == 2 else None,
                vmin=0,
                vmax=255,
                interpolation="nearest" if small else "antialiased",
            )
        ax.set_xticks([])
        ax.set_yticks([])
        probability = pd.to_numeric(row["probability"], errors="coerce")
        title = f"{_short(row['label'])} ({probability:.2f})"
        colour = "black"
        if has_truth:
            wrong = str(row["label"]) != str(row["true_label"])
            colour = WRONG_COLOUR if wrong else RIGHT_COLOUR
            title += f"\ntrue: {_short(row['true_label'])}"
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3 if wrong else 1.5)
        ax.set_title(title, color=colour, fontsize=9)

    summary = f"{len(order)} of {len(frame)} predictions"
    if has_truth:
        total_wrong = int((frame["label"].astype(str) != frame["true_label"].astype(str)).sum())
        summary += f", {total_wrong} wrong in all"
        if wrong_first and total_wrong:
            summary += " (most confident mistakes first)"
    figure.suptitle(summary, fontsize=10)
    return save_figure(figure, path)

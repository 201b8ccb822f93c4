"""Grad-CAM heat maps over the images they explain, and the top losses with theirs."""

import math
import os

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from transferkit.plots.figures import (
    RIGHT_COLOUR,
    WRONG_COLOUR,
    check_positive_int,
    new_figure,
    require_frame,
    save_figure,
)
from transferkit.plots.predictions import MAX_LABEL, _displayable

HEATMAP_COLOURS = "jet"


def _short(label) -> str:
    label = str(label)
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """An image with a heat map blended over it, as a uint8 RGB array.

    Each pixel takes the map's colour in proportion to the square root of its
    value: the hot regions stand out and the cold ones show the image itself.

    Args:
        image: array `(height, width, 3)`, values 0-255.
        heatmap: array `(h, w)` in `[0, 1]`; resized to the image if needed.
        alpha: float. Weight of the colour where the map is 1. Defaults to `0.5`.
    """
    from PIL import Image

    image = _displayable(image).astype("float32")
    heatmap = np.nan_to_num(np.clip(np.asarray(heatmap, dtype="float32"), 0.0, 1.0))
    if heatmap.shape != image.shape[:2]:
        resized = Image.fromarray(heatmap).resize(image.shape[1::-1], Image.BILINEAR)
        heatmap = np.asarray(resized, dtype="float32")
    colours = colormaps[HEATMAP_COLOURS](heatmap)[..., :3] * 255.0
    # Coloured where the map is high only: cold regions keep the image as it is.
    weight = alpha * np.sqrt(heatmap)[..., None]
    return np.clip((1 - weight) * image + weight * colours, 0, 255).astype("uint8")


def _check_explanation(explanation):
    for attribute in ("heatmaps", "images", "predictions"):
        if not hasattr(explanation, attribute):
            raise TypeError(
                "`explanation` must be what FineTuner.explain returns (with heatmaps, images "
                f"and predictions). Received: {type(explanation).__name__}"
            )
    if len(explanation.heatmaps) != len(explanation.images):
        raise ValueError(
            f"The explanation has {len(explanation.heatmaps)} heat maps for "
            f"{len(explanation.images)} images."
        )


def _grid(explanation, titles, colours, path, columns, alpha, suptitle) -> Figure:
    count = len(titles)
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    figure = new_figure(2.3 * columns + 0.4, 2.6 * rows + 0.5)
    grid = figure.add_gridspec(rows, columns)
    for slot in range(count):
        ax = figure.add_subplot(grid[slot // columns, slot % columns])
        ax.imshow(overlay(explanation.images[slot], explanation.heatmaps[slot], alpha))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(titles[slot], color=colours[slot], fontsize=9)
        if colours[slot] != "black":
            for spine in ax.spines.values():
                spine.set_edgecolor(colours[slot])
                spine.set_linewidth(3 if colours[slot] == WRONG_COLOUR else 1.5)
    figure.suptitle(suptitle, fontsize=10)
    return save_figure(figure, path)


def plot_gradcam(
    explanation,
    path: str | os.PathLike | None = None,
    max_images: int = 16,
    columns: int = 4,
    alpha: float = 0.5,
) -> Figure:
    """Draws each Grad-CAM heat map over its image (red: where the class's score rose most).

    Args:
        explanation: `Explanation`. What `FineTuner.explain` returns.
        path: str, path or None. Where to save the figure as a PNG (folders
            are created, an existing file replaced). Defaults to `None`.
        max_images: int. How many images to show at most. Defaults to `16`.
        columns: int. Images per row. Defaults to `4`.
        alpha: float. Opacity of the heat map's colours where the map is 1,
            in `[0, 1]`. Defaults to `0.5`.

    Returns:
        The `matplotlib.figure.Figure`, one axes per image, titled with the
        explained class, and the predicted one when they differ.

    Raises:
        TypeError: if `explanation` is not an `Explanation`.
        ValueError: for a bad `max_images`, `columns` or `alpha`.

    Example:

    ```python
    tk.plots.plot_gradcam(ft.explain("photos/"), "gradcam.png")
    ```
    """
    _check_explanation(explanation)
    check_positive_int(max_images, "max_images")
    check_positive_int(columns, "columns")
    if not 0 <= alpha <= 1:
        raise ValueError(f"`alpha` must be in [0, 1]. Received: alpha={alpha!r}")
    frame = explanation.predictions
    count = min(max_images, len(explanation.heatmaps))
    if count == 0:
        raise ValueError("The explanation has no images: there is nothing to plot.")
    titles = []
    for position in range(count):
        row = frame.iloc[position]
        title = f"{_short(row['explained'])}"
        if str(row["explained"]) != str(row["label"]):
            title += f"\n(predicted {_short(row['label'])} {row['probability']:.2f})"
        else:
            title += f" ({row['probability']:.2f})"
        titles.append(title)
    layer = getattr(explanation, "layer", "")
    suptitle = f"Grad-CAM of {count} of {len(frame)} images" + (f" at {layer}" if layer else "")
    return _grid(explanation, titles, ["black"] * count, path, columns, alpha, suptitle)


def plot_top_losses(
    top_losses: pd.DataFrame,
    explanation,
    path: str | os.PathLike | None = None,
    columns: int = 4,
    alpha: float = 0.5,
) -> Figure:
    """The images the model got most wrong, each with the Grad-CAM of its prediction.

    Args:
        top_losses: `pandas.DataFrame`. `EvaluationReport.top_losses(k)`.
        explanation: `Explanation`. `FineTuner.explain` of the same images, in
            the same order (`ft.explain(top_losses)` for files,
            `ft.explain(images[top_losses.index])` for an array).
        path: str, path or None. Where to save the figure as a PNG. Defaults
            to `None`.
        columns: int. Images per row. Defaults to `4`.
        alpha: float. Opacity of the heat map's colours where the map is 1.
            Defaults to `0.5`.

    Returns:
        The `matplotlib.figure.Figure`, each image titled with the predicted
        class, its probability, the true class and the loss.

    Raises:
        ValueError: if a column is missing, or the explanation does not hold one
            image per row.

    Example:

    ```python
    top = report.top_losses(8)
    tk.plots.plot_top_losses(top, ft.explain(top), "top_losses.png")
    ```
    """
    frame = require_frame(
        top_losses,
        "top_losses",
        ("true_label", "label", "probability", "loss"),
        "EvaluationReport.top_losses",
    )
    _check_explanation(explanation)
    check_positive_int(columns, "columns")
    if len(explanation.heatmaps) != len(frame):
        raise ValueError(
            f"`explanation` holds {len(explanation.heatmaps)} images but `top_losses` has "
            f"{len(frame)} rows; explain the same images (ft.explain(top_losses))."
        )
    titles, colours = [], []
    for _, row in frame.iterrows():
        wrong = str(row["label"]) != str(row["true_label"])
        titles.append(
            f"{_short(row['label'])} ({row['probability']:.2f})\n"
            f"true: {_short(row['true_label'])}, loss {row['loss']:.2f}"
        )
        colours.append(WRONG_COLOUR if wrong else RIGHT_COLOUR)
    suptitle = f"Top {len(frame)} losses, with the Grad-CAM of the predicted class"
    return _grid(explanation, titles, colours, path, columns, alpha, suptitle)

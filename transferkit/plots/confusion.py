"""The confusion matrix of an evaluation, readable from 2 to about 20 classes."""

import os

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from transferkit.plots.figures import new_figure, require_frame, save_figure

# Past this many classes the cells are too small for their numbers.
MAX_ANNOTATED_CLASSES = 30


def _cell_text(count, fraction, normalize, num_classes):
    if not normalize:
        return f"{count:d}"
    if count == 0:
        return "0"
    if num_classes <= 10:
        return f"{fraction:.2f}\n({count:d})"
    return f"{fraction:.2f}"


def plot_confusion_matrix(
    confusion: pd.DataFrame, path: str | os.PathLike | None = None, normalize: bool = False
) -> Figure:
    """Plots a confusion matrix with the count written in each cell.

    Args:
        confusion: `pandas.DataFrame`. `EvaluationReport.confusion_matrix`:
            rows are true classes, columns predicted classes, values image
            counts.
        path: str, path or None. Where to save the figure as a PNG (folders
            are created, an existing file replaced). Defaults to `None`.
        normalize: bool. Whether to colour and label each cell by its share of
            the true class (each row sums to 1, the diagonal is the recall),
            which keeps rare classes readable. The counts are still shown for
            up to 10 classes. Defaults to `False`.

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ValueError: if `confusion` is empty or holds something other than
            non-negative counts.

    Example:

    ```python
    report = ft.evaluate("data/test")
    tk.plots.plot_confusion_matrix(report.confusion_matrix, "runs/cats/confusion.png")
    ```
    """
    frame = require_frame(
        confusion, "confusion", produced_by="FineTuner.evaluate(...).confusion_matrix"
    )
    values = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float64")
    if np.isnan(values).any() or (values < 0).any() or (values != np.round(values)).any():
        raise ValueError(
            "`confusion` must hold non-negative whole counts (rows true classes, columns "
            f"predicted classes). Received:\n{frame}"
        )
    counts = values.astype("int64")
    row_totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(
        counts, row_totals, out=np.zeros(counts.shape, dtype="float64"), where=row_totals > 0
    )
    shown = fractions if normalize else counts
    true_names = [str(name) for name in frame.index]
    predicted_names = [str(name) for name in frame.columns]
    num_classes = max(counts.shape)

    side = float(np.clip(2.2 + 0.5 * num_classes, 4.5, 13))
    figure = new_figure(side + 1.2, side)
    ax = figure.subplots()
    image = ax.imshow(
        shown,
        cmap="Blues",
        vmin=0,
        vmax=1 if normalize else max(1, counts.max()),
        interpolation="nearest",
        aspect="auto" if counts.shape[0] != counts.shape[1] else "equal",
    )
    colorbar = figure.colorbar(image, ax=ax, shrink=0.8)
    colorbar.set_label("share of the true class" if normalize else "images")

    if num_classes <= MAX_ANNOTATED_CLASSES:
        fontsize = float(np.clip(14 - 0.3 * num_classes, 7, 12))
        dark = 0.55 * (1 if normalize else max(1, counts.max()))
        for row in range(counts.shape[0]):
            for column in range(counts.shape[1]):
                ax.text(
                    column,
                    row,
                    _cell_text(
                        counts[row, column], fractions[row, column], normalize, num_classes
                    ),
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color="white" if shown[row, column] > dark else "black",
                )

    ax.set_xticks(range(len(predicted_names)), predicted_names)
    ax.set_yticks(range(len(true_names)), true_names)
    if num_classes > 5 or max(len(name) for name in predicted_names) > 6:
        ax.tick_params(axis="x", labelrotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")
    ax.set_xlabel(frame.columns.name or "predicted")
    ax.set_ylabel(frame.index.name or "true")

    total = int(counts.sum())
    title = "Confusion matrix" + (" (share of each true class)" if normalize else "")
    if true_names == predicted_names and total:
        title += f"\naccuracy {np.trace(counts) / total:.3f} on {total} images"
    ax.set_title(title)
    return save_figure(figure, path)

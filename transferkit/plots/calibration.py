"""The reliability diagram: is the model right as often as it says it is?"""

import os

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from transferkit.interpret.calibration import table_error
from transferkit.plots.figures import new_figure, require_frame, save_figure

COLUMNS = ("lower", "upper", "count", "confidence", "accuracy")
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def plot_reliability_diagram(
    calibration: "pd.DataFrame | dict[str, pd.DataFrame]",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Plots accuracy against confidence per confidence bin, and how many predictions each holds.

    A calibrated model's points lie on the diagonal: of the predictions made
    with 80% confidence, 80% are right. Points below it mean overconfidence.
    The legend gives each table's expected calibration error (ECE).

    Args:
        calibration: `pandas.DataFrame` or dict of them. A reliability table:
            `EvaluationReport.calibration`, or `CalibrationResult`'s
            `reliability_before` and `reliability_after`; a dict such as
            `{"before": ..., "after": ...}` draws several, labelled by key.
        path: str, path or None. Where to save the figure as a PNG. Defaults
            to `None`.

    Returns:
        The `matplotlib.figure.Figure`: the diagram above, the counts below.

    Raises:
        ValueError: if a table lacks a column or has no predictions.

    Example:

    ```python
    report = ft.evaluate("data/test")
    tk.plots.plot_reliability_diagram(report.calibration, "reliability.png")
    ```
    """
    tables = calibration if isinstance(calibration, dict) else {"model": calibration}
    if not tables:
        raise ValueError("`calibration` is an empty dict: there is nothing to plot.")
    source = "FineTuner.evaluate(...).calibration"
    tables = {
        str(name): require_frame(table, "calibration", COLUMNS, source)
        for name, table in tables.items()
    }
    figure = new_figure(5.2, 6.0)
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], linestyle="--", color="0.5", linewidth=1, label="calibrated")
    first = next(iter(tables.values()))
    width = float(np.mean(first["upper"] - first["lower"]))
    offsets = np.linspace(-0.25, 0.25, len(tables)) * width if len(tables) > 1 else [0.0]
    for index, ((name, table), offset) in enumerate(zip(tables.items(), offsets, strict=True)):
        if int(table["count"].sum()) == 0:
            raise ValueError(f"The calibration table {name!r} holds no predictions.")
        colour = COLOURS[index % len(COLOURS)]
        filled = table[table["count"] > 0]
        centres = (filled["lower"] + filled["upper"]) / 2
        label = f"ECE {table_error(table):.3f}"
        if len(tables) > 1:
            label = f"{name}, {label}"
        top.bar(
            centres + offset,
            filled["accuracy"],
            width=width / max(1, len(tables)),
            color=colour,
            alpha=0.35,
            edgecolor=colour,
        )
        top.plot(filled["confidence"], filled["accuracy"], marker="o", color=colour, label=label)
        bottom.bar(
            centres + offset,
            filled["count"],
            width=width / max(1, len(tables)),
            color=colour,
            alpha=0.6,
        )
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title("Reliability diagram")
    top.legend(loc="upper left", fontsize=8)
    bottom.set_xlabel("confidence (probability of the predicted class)")
    bottom.set_ylabel("predictions")
    return save_figure(figure, path)

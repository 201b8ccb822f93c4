"""The HTML run report: one self-contained page built from a run folder's files."""

import base64
import io
import json
import os
import zipfile
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from transferkit.report.run_folder import REPORT_FILE, REQUIRED_FILES
from transferkit.report.tensorboard import LOG_FOLDER
from transferkit.utils.files import atomic_path

METRIC_NAMES = {
    "accuracy": "accuracy",
    "loss": "loss (cross-entropy)",
    "macro_precision": "macro precision",
    "macro_recall": "macro recall",
    "macro_f1": "macro F1",
    "balanced_accuracy": "balanced accuracy",
    "pr_auc": "PR AUC",
    "micro_f1": "micro F1",
    "mean_average_precision": "mean average precision",
    "expected_calibration_error": "expected calibration error",
    "num_images": "images",
}


# The figures at the top of the page.
SUMMARY = (
    "accuracy",
    "balanced accuracy",
    "micro F1",
    "macro F1",
    "mean average precision",
    "loss (cross-entropy)",
    "expected calibration error",
    "images",
)


class NotARunFolderError(ValueError):
    """Raised by `write_report` for a folder that holds no run."""


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("transferkit.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _number(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
    return str(value)


def _table(frame: pd.DataFrame, index: bool = False) -> dict:
    """A DataFrame as `{"columns": [...], "rows": [[...], ...]}` of display strings."""
    frame = frame.reset_index() if index else frame
    rows = [[_number(value) for value in row] for row in frame.itertuples(index=False)]
    return {"columns": [str(column) for column in frame.columns], "rows": rows}


def _image(folder: Path, name: str, draw=None) -> str | None:
    """A PNG of the folder as a data URI; drawn in memory by `draw()` when absent."""
    path = folder / name
    if path.is_file():
        data = path.read_bytes()
    elif draw is not None:
        try:
            figure = draw()
        except (ValueError, TypeError, KeyError):
            return None
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        data = buffer.getvalue()
    else:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise NotARunFolderError(f"{path} is not readable JSON: {error}") from error


def _model_settings(folder: Path) -> dict:
    """The FineTuner settings kept in model.keras, read without loading the model."""
    try:
        with zipfile.ZipFile(folder / "model.keras") as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return {}
    return (config.get("config") or {}).get("finetuner_config") or {}


def _setting_text(value) -> str:
    if isinstance(value, dict) and "class_name" in value:
        inner = value.get("config") or {}
        shown = {
            key: item
            for key, item in inner.items()
            if key not in ("name", "trainable", "dtype") and item is not None
        }
        details = ", ".join(f"{key}={_setting_text(item)}" for key, item in shown.items())
        return f"{value['class_name']}({details})"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_setting_text(item) for item in value) + ")"
    if isinstance(value, float):
        return _number(value, 6)
    return str(value)


# The validation metric the Phases table shows, the first of these the history has:
# multi-label runs have no val_accuracy (their accuracy over every class of every image
# is flattered by the negatives), their search objective is val_pr_auc.
PHASE_METRICS = ("val_accuracy", "val_pr_auc", "val_binary_accuracy", "val_loss")


def phase_metric(history: pd.DataFrame) -> str | None:
    """The history column the Phases table ends each phase with (None: no validation)."""
    return next((name for name in PHASE_METRICS if name in history), None)


def _phases(run: dict, history: pd.DataFrame) -> list[dict]:
    """One row per phase: its epochs, what trains, its peak rate, its time and result."""
    planned = run.get("phases") or []
    if not planned and "phase" in history:
        for name, rows in history.groupby("phase", sort=False):
            planned.append(
                {
                    "name": name,
                    "start_epoch": int(rows["epoch"].min()) - 1,
                    "end_epoch": int(rows["epoch"].max()),
                    "trainable_blocks": "?",
                    "learning_rate": float(rows["learning_rate"].max()),
                }
            )
    phases = []
    metric = phase_metric(history)
    for phase in planned:
        epochs = history["epoch"]
        rows = history[(epochs > phase["start_epoch"]) & (epochs <= phase["end_epoch"])]
        blocks = phase["trainable_blocks"]
        phases.append(
            {
                "name": phase["name"],
                "epochs": f"{phase['start_epoch'] + 1}–{phase['end_epoch']}",
                "trains": {0: "head only (backbone frozen)", None: "whole backbone and head"}.get(
                    blocks, blocks if blocks == "?" else f"top {blocks} blocks and head"
                ),
                "learning_rate": _number(phase["learning_rate"], 6),
                "seconds": _number(float(rows["seconds"].sum()), 1) if "seconds" in rows else "–",
                "last": _number(float(rows[metric].iloc[-1]))
                if metric is not None and len(rows)
                else "–",
            }
        )
    return phases


def _thresholds(run: dict, per_class: pd.DataFrame | None) -> list[tuple[str, str]] | None:
    """A multi-label run's decision threshold per class, `[(class, "0.25"), ...]`.

    From `run.json`'s calibration, else the per-class table's `threshold`
    column; None when neither has them (the head then uses 0.5 for every class).
    """
    thresholds = (run.get("calibration") or {}).get("thresholds")
    names = run.get("class_names")
    if thresholds is not None and names is not None and len(names) == len(thresholds):
        pairs = zip(names, thresholds, strict=True)
        return [(str(name), _number(value, 3)) for name, value in pairs]
    if per_class is not None and "threshold" in per_class:
        column = per_class["threshold"]
        if column.notna().any():
            return [(str(name), _number(value, 3)) for name, value in column.items()]
    return None


def report_context(run_dir: str | os.PathLike) -> dict:
    """Everything the report template shows, read from a run folder.

    Raises:
        NotARunFolderError: if `run_dir` lacks `history.csv` or `metrics.json`.
    """
    from transferkit import plots

    folder = Path(run_dir)
    if not folder.is_dir():
        raise NotARunFolderError(
            f"{str(run_dir)!r} is not a folder. Pass a run folder, as written by "
            "`transferkit fit --out RUN_DIR` or the cats-vs-dogs example."
        )
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise NotARunFolderError(
            f"{str(run_dir)!r} is not a run folder: it has no {' or '.join(missing)}. A run "
            f"folder (written by `transferkit fit --out RUN_DIR` or the cats-vs-dogs example) "
            f"holds at least {', '.join(REQUIRED_FILES)}."
        )
    history = pd.read_csv(folder / "history.csv")
    metrics = _read_json(folder / "metrics.json")
    run = _read_json(folder / "run.json") if (folder / "run.json").is_file() else {}
    settings = run.get("settings") or _model_settings(folder)

    per_class = None
    if (folder / "per_class.csv").is_file():
        per_class = pd.read_csv(folder / "per_class.csv", index_col=0)
    elif isinstance(metrics.get("per_class"), dict):
        per_class = pd.DataFrame(metrics["per_class"]).T.rename_axis("class")
    multi_label = "mean_average_precision" in metrics
    confusion = None
    if (folder / "confusion_matrix.csv").is_file():
        confusion = pd.read_csv(folder / "confusion_matrix.csv", index_col=0)
    calibration = None
    if (folder / "calibration.csv").is_file():
        calibration = pd.read_csv(folder / "calibration.csv")
    top_losses = None
    if (folder / "top_losses.csv").is_file():
        top_losses = pd.read_csv(folder / "top_losses.csv")

    headline = {
        METRIC_NAMES.get(key, key): _number(value)
        for key, value in metrics.items()
        if not isinstance(value, (dict, list))
    }
    return {
        "title": f"Run report: {folder.resolve().name}",
        "folder": str(folder.resolve()),
        "backbone": run.get("backbone") or _setting_text(settings.get("backbone", "–")),
        "class_names": run.get("class_names")
        or ([] if per_class is None else [str(name) for name in per_class.index]),
        "written": run.get("written"),
        "version": run.get("transferkit_version"),
        "data": run.get("data"),
        "seconds": _number(run.get("seconds"), 0) if run.get("seconds") is not None else None,
        "summary": [(label, headline[label]) for label in SUMMARY if label in headline],
        "settings": [(key, _setting_text(value)) for key, value in settings.items()],
        "phases": _phases(run, history),
        "phase_metric": phase_metric(history) or "val_accuracy",
        "history": _table(history),
        "history_image": _image(folder, "history.png", lambda: plots.plot_history(history)),
        "metrics": list(headline.items()),
        "per_class": _table(per_class, index=True) if per_class is not None else None,
        "confusion": _table(confusion, index=True) if confusion is not None else None,
        "confusion_image": None
        if multi_label
        else _image(
            folder,
            "confusion_matrix.png",
            (lambda: plots.plot_confusion_matrix(confusion)) if confusion is not None else None,
        ),
        "multi_label": multi_label,
        # Classes with no image in the evaluated data: undefined, left out of the means.
        "left_out": [str(name) for name in metrics.get("classes_left_out") or []],
        "watch": run.get("metric_to_watch"),
        "top_losses": _table(top_losses) if top_losses is not None else None,
        "top_losses_image": _image(folder, "top_losses.png"),
        "calibration": run.get("calibration"),
        "thresholds": _thresholds(run, per_class) if multi_label else None,
        "calibration_error": headline.get("expected calibration error"),
        "reliability_image": _image(
            folder,
            "reliability.png",
            (lambda: plots.plot_reliability_diagram(calibration))
            if calibration is not None
            else None,
        ),
        "tensorboard": (folder / LOG_FOLDER).is_dir(),
        "log_folder": LOG_FOLDER,
        "files": sorted(path.name for path in folder.iterdir() if path.name != REPORT_FILE),
    }


def render_report(run_dir: str | os.PathLike) -> str:
    """The report of a run folder as an HTML string (see `write_report`)."""
    return _environment().get_template("report.html.j2").render(**report_context(run_dir))


def write_report(run_dir: str | os.PathLike, path: str | os.PathLike | None = None) -> Path:
    """Writes `report.html`: the run folder as one page a person can read.

    One self-contained file (images embedded, no network, no script loaded from
    anywhere): the settings, the phases and their learning rates, the history
    curves, the metrics, the per-class table, the confusion matrix, the top
    losses with their Grad-CAM, the reliability diagram and where the
    TensorBoard logs are. It is built from the folder's files alone (no model
    is loaded), so it can be rebuilt at any time: `transferkit report RUN_DIR`.
    Plots missing from the folder are drawn from its CSV files.

    Args:
        run_dir: str or path. The run folder: at least `history.csv` and
            `metrics.json`, plus whatever `transferkit fit` writes beside them.
        path: str, path or None. Where to write the page. Defaults to
            `RUN_DIR/report.html`.

    Returns:
        The path of the page.

    Raises:
        NotARunFolderError: (a `ValueError`) if `run_dir` is not a run folder;
            the message names the files it expected.

    Example:

    ```python
    tk.report.write_report("runs/cats")   # runs/cats/report.html
    ```
    """
    html = render_report(run_dir)
    target = Path(path) if path is not None else Path(run_dir) / REPORT_FILE
    with atomic_path(target, overwrite=True) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    return target

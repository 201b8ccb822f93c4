"""The run folder's files that the HTML report reads, beyond the model and its history."""

import dataclasses
import datetime
import json
import os
from pathlib import Path

import numpy as np

from transferkit.utils.files import atomic_path
from transferkit.utils.log import logger
from transferkit.version import __version__

# What makes a folder a run folder: the report cannot be built without them.
REQUIRED_FILES = ("history.csv", "metrics.json")
# What `write_run_details` and `write_report` add to a run folder.
DETAIL_FILES = (
    "run.json",
    "per_class.csv",
    "calibration.csv",
    "reliability.png",
    "top_losses.csv",
    "top_losses.png",
)
REPORT_FILE = "report.html"
# Images shown in the top losses.
TOP_LOSSES = 8


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        Path(tmp).write_text(text)


def _plain(value):
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "item") and np.ndim(value) == 0:
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def run_summary(finetuner, epochs: int | None = None, **extra) -> dict:
    """What `run.json` holds: the settings, the phases planned, the calibration.

    Args:
        finetuner: `FineTuner`. Built and fitted.
        epochs: int or None. The run's epochs (for the schedule's plan); None
            takes them from `finetuner.history`.
        **extra: Anything else to record (data description, seconds, ...).
    """
    import keras

    from transferkit import schedules

    history = finetuner.history
    if epochs is None:
        epochs = int(history["epoch"].max()) if history is not None and len(history) else 0
    try:
        settings = finetuner.get_config()
    except ValueError:  # an unregistered custom schedule cannot be serialized
        settings = {"backbone": finetuner.backbone_name}
    head = finetuner.model.head
    if "head" in settings:
        # The head as trained, not as asked for: `fit` resolves the classes, multi-label
        # and thresholds, which the FineTuner's own setting leaves unset.
        settings["head"] = keras.saving.serialize_keras_object(head)
    return _plain(
        {
            "backbone": finetuner.backbone_name,
            "class_names": finetuner.class_names,
            "image_size": list(finetuner.image_size),
            "epochs": epochs,
            "phases": [
                dataclasses.asdict(phase)
                for phase in schedules.get(finetuner.schedule).plan(epochs)
            ]
            if epochs
            else [],
            "calibration": {
                "temperature": float(np.asarray(head.temperature)),
                "decision_threshold": head.decision_threshold,
                # Multi-label: one threshold per class (None: 0.5 for every class).
                **(
                    {"thresholds": None if head.thresholds is None else list(head.thresholds)}
                    if head.multi_label
                    else {}
                ),
            },
            "settings": settings,
            "transferkit_version": __version__,
            "written": datetime.datetime.now().isoformat(timespec="seconds"),
            **extra,
        }
    )


# Classes are imbalanced, for the advice on which metric to watch, from this ratio of the
# largest class's images to the smallest's.
IMBALANCE_RATIO = 1.5


def metric_to_watch(report) -> dict:
    """Which metric says how good the model is, and why: `{"metric": ..., "why": ...}`.

    Accuracy for balanced single-label data; balanced accuracy (and, for two
    classes, PR AUC) when the classes are imbalanced; macro F1 and mean average
    precision for a multi-label model.
    """
    if report.multi_label:
        return {
            "metric": "macro F1 and mean average precision",
            "why": "Each class counts the same in them; accuracy over every class of every "
            "image is flattered by the many images a class is absent from.",
        }
    support = report.per_class["support"]
    present = support[support > 0]
    if len(present) and present.max() >= IMBALANCE_RATIO * present.min():
        shares = ", ".join(
            f"{name} {count / support.sum():.0%}" for name, count in support.items()
        )
        pr = " and PR AUC (of the second class)" if len(support) == 2 else ""
        return {
            "metric": f"balanced accuracy{pr}",
            "why": f"The classes are imbalanced ({shares}): accuracy rewards predicting the "
            "larger class, balanced accuracy weighs each class's recall the same. Consider "
            'class_weight="balanced".',
        }
    return {"metric": "accuracy", "why": "The classes are balanced."}


def write_run_details(
    out: str | os.PathLike,
    finetuner,
    report,
    *,
    images: np.ndarray | None = None,
    epochs: int | None = None,
    top_losses: int = TOP_LOSSES,
    **extra,
) -> list[str]:
    """Writes what the HTML report shows beyond the model, history and metrics.

    `run.json` (settings, phases, calibration, `extra`), `per_class.csv`,
    `calibration.csv` and `reliability.png` (the reliability diagram), and
    `top_losses.csv` with `top_losses.png` (the worst images with the Grad-CAM
    of their prediction; left out when the images cannot be read again or the
    backbone has no spatial feature map, which the log says).

    Args:
        out: str or path. The run folder.
        finetuner: `FineTuner`. The trained one.
        report: `EvaluationReport`. Of the images the run was measured on.
        images: array or None. Those images, `(N, height, width, 3)`, when they
            were not files (`report.predictions` has no `path`). Defaults to
            `None`.
        epochs: int or None. The run's epochs. Defaults to the history's.
        top_losses: int. How many top losses to show. Defaults to `8`.
        **extra: Recorded in `run.json` (for example `data=` a description).

    Returns:
        The names of the files written.
    """
    from transferkit.plots import plot_reliability_diagram, plot_top_losses

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = ["run.json", "per_class.csv"]
    summary = run_summary(finetuner, epochs, metric_to_watch=metric_to_watch(report), **extra)
    _write_text(out / "run.json", json.dumps(summary, indent=2, default=str) + "\n")
    with atomic_path(out / "per_class.csv", overwrite=True) as tmp:
        report.per_class.to_csv(tmp)
    if report.calibration is not None:
        with atomic_path(out / "calibration.csv", overwrite=True) as tmp:
            report.calibration.to_csv(tmp, index=False)
        plot_reliability_diagram(report.calibration, out / "reliability.png")
        written += ["calibration.csv", "reliability.png"]

    top = report.top_losses(min(top_losses, len(report.predictions)))
    with atomic_path(out / "top_losses.csv", overwrite=True) as tmp:
        top.to_csv(tmp, index_label="position")
    written.append("top_losses.csv")
    stale = out / "top_losses.png"
    try:
        if "path" in top:
            explanation = finetuner.explain(top["path"].tolist())
        elif images is not None:
            explanation = finetuner.explain(np.asarray(images)[top.index.to_numpy()])
        else:
            explanation = None
            logger.info("top losses: no images to draw them from (pass images=)")
    except ValueError as error:
        explanation = None
        logger.info(f"top losses without Grad-CAM: {error}")
    if explanation is not None:
        if report.multi_label:
            # Titles name the class sets; the probability is the explained (top) class's.
            shown = explanation.predictions
            top = top.assign(
                true_label=["|".join(names) or "none" for names in top["true_labels"]],
                label=["|".join(names) or "none" for names in top["labels"]],
                probability=[
                    row[f"prob_{name}"]
                    for name, (_, row) in zip(shown["explained"], shown.iterrows(), strict=True)
                ],
            )
        plot_top_losses(top, explanation, stale)
        written.append("top_losses.png")
    elif stale.exists():
        stale.unlink()  # from an earlier run in this folder: not these images
    return written

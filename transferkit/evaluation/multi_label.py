"""pandas out for multi-label models: their evaluation."""

import numpy as np
import pandas as pd

from transferkit.evaluation.report import EvaluationReport
from transferkit.interpret.thresholds import average_precision
from transferkit.models.predictions import label_lists, multi_label_predictions_frame


def multi_label_report(
    probabilities: np.ndarray,
    multi_hot: np.ndarray,
    class_names: list[str],
    identifiers: list[str] | None,
    predicted: np.ndarray,
    thresholds: np.ndarray,
) -> EvaluationReport:
    """Per-class precision, recall, F1 and average precision, micro/macro F1 and mAP.

    A class with no positive image in the data (no support) has undefined
    precision, recall, F1 and average precision: they are NaN in `per_class`,
    the class is left out of every macro mean (`macro_precision`,
    `macro_recall`, `macro_f1`, `mean_average_precision`), and
    `classes_without_images` counts it and `classes_left_out` names it. The
    micro metrics still count its false positives.
    """
    truth = np.asarray(multi_hot) > 0.5
    predicted = np.asarray(predicted, bool)
    probabilities = np.asarray(probabilities, dtype="float64")
    tp = (truth & predicted).sum(axis=0).astype("float64")
    fp = (~truth & predicted).sum(axis=0).astype("float64")
    fn = (truth & ~predicted).sum(axis=0).astype("float64")
    tn = (~truth & ~predicted).sum(axis=0).astype("float64")
    present = truth.sum(axis=0) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    # Without a positive image, a 0 would be a measurement of nothing: undefined.
    precision, recall, f1 = (
        np.where(present, values, np.nan) for values in (precision, recall, f1)
    )
    ap = np.array(
        [average_precision(probabilities[:, c], truth[:, c]) for c in range(len(class_names))]
    )
    per_class = pd.DataFrame(
        {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "average_precision": ap,
            "threshold": np.asarray(thresholds, dtype="float64"),
            "support": truth.sum(axis=0).astype("int64"),
        },
        index=pd.Index(class_names, name="class"),
    )
    micro_tp, micro_fp, micro_fn = tp.sum(), fp.sum(), fn.sum()
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    losses = -(truth * np.log(clipped) + (~truth) * np.log(1 - clipped)).mean(axis=1)
    metrics = {
        "loss": float(losses.mean()) if len(losses) else float("nan"),
        "micro_precision": _ratio(micro_tp, micro_tp + micro_fp),
        "micro_recall": _ratio(micro_tp, micro_tp + micro_fn),
        "micro_f1": _ratio(2 * micro_tp, 2 * micro_tp + micro_fp + micro_fn),
        "macro_precision": _mean_over(precision, present),
        "macro_recall": _mean_over(recall, present),
        "macro_f1": _mean_over(f1, present),
        "mean_average_precision": _mean_over(ap, present),
        "subset_accuracy": float((truth == predicted).all(axis=1).mean()),
        "hamming_loss": float((truth != predicted).mean()),
        "classes_without_images": int((~present).sum()),
        "classes_left_out": [
            name for name, kept in zip(class_names, present, strict=True) if not kept
        ],
        "num_images": int(len(truth)),
    }
    counts = pd.DataFrame(
        {"true_positives": tp, "false_positives": fp, "false_negatives": fn, "true_negatives": tn},
        index=pd.Index(class_names, name="class"),
    ).astype("int64")
    predictions = multi_label_predictions_frame(probabilities, class_names, identifiers, predicted)
    predictions.insert(
        1 if identifiers is not None else 0, "true_labels", label_lists(truth, class_names)
    )
    return EvaluationReport(metrics, per_class, counts, predictions, None, multi_label=True)


def _mean_over(values: np.ndarray, present: np.ndarray) -> float:
    """The mean over the classes with images (NaN when no class has any)."""
    return float(np.mean(values[present])) if present.any() else float("nan")


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else 0.0

"""pandas out: predictions, evaluation reports and decision thresholds of a classifier."""

from transferkit.evaluation.inference import (
    check_multi_label,
    choose_classifier_thresholds,
    class_probabilities,
    evaluate_classifier,
    predict_frame,
    source_labels,
)
from transferkit.evaluation.report import EvaluationReport

__all__ = [
    "EvaluationReport",
    "check_multi_label",
    "choose_classifier_thresholds",
    "class_probabilities",
    "evaluate_classifier",
    "predict_frame",
    "source_labels",
]

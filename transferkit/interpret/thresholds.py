"""Per-class decision thresholds and ranking metrics for multi-label models.

A multi-label model predicts a class wherever that class's probability reaches
its threshold. 0.5 is rarely the best cut for a rare class; `choose_thresholds`
picks, per class, the cut that maximises a metric (F1 by default) on held-out
data. Everything here works on numpy arrays.
"""

import numpy as np
import pandas as pd

from transferkit.interpret.calibration import choose_threshold, threshold_score

# The default metric a class's threshold maximises on validation data.
DEFAULT_THRESHOLD_METRIC = "f1"


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Average precision: the mean of the precision at each positive, ranked by score.

    The area under the precision-recall curve as scikit-learn's
    `average_precision_score` computes it (no interpolation; tied scores
    count as one cut).

    Args:
        scores: array `(N,)`. The probability of the class.
        positives: array `(N,)` of 0 and 1 (or bool). Whether each image shows it.

    Returns:
        A float in [0, 1], or NaN when there is no positive (it is undefined).
    """
    scores = np.asarray(scores, dtype="float64")
    positives = np.asarray(positives).astype(bool)
    total = int(positives.sum())
    if total == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    scores, positives = scores[order], positives[order]
    true_positives = np.cumsum(positives)
    # The last position of each run of tied scores is a cut.
    cuts = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    tp = true_positives[cuts].astype("float64")
    precision = tp / (cuts + 1)
    recall = tp / total
    recall_steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(recall_steps * precision))


def choose_thresholds(
    probabilities: np.ndarray,
    multi_hot: np.ndarray,
    class_names: list[str],
    metric: str = DEFAULT_THRESHOLD_METRIC,
) -> pd.DataFrame:
    """Chooses one decision threshold per class on labelled held-out data.

    Args:
        probabilities: array `(N, num_classes)`. The model's probabilities.
        multi_hot: array `(N, num_classes)` of 0 and 1. The true classes.
        class_names: list of str. The classes, in column order.
        metric: str. What each class's threshold maximises: `"f1"` (of the
            class), `"balanced_accuracy"`, `"accuracy"` or `"macro_f1"`.
            Defaults to `"f1"`.

    Returns:
        A `pandas.DataFrame` indexed by class: `threshold`, `positives` (in the
        data), `metric_at_0.5` and `metric_at_threshold`, and `note`. A class
        with no positive or no negative image in the data keeps 0.5 (a
        threshold cannot be chosen from one kind of image), and `note` says so.

    Raises:
        ValueError: for shapes that do not match.
    """
    probabilities = np.asarray(probabilities, dtype="float64")
    multi_hot = np.asarray(multi_hot, dtype="int64")
    if probabilities.shape != multi_hot.shape or probabilities.shape[1] != len(class_names):
        raise ValueError(
            "probabilities and labels must both be (N, num_classes). Received shapes "
            f"{probabilities.shape} and {multi_hot.shape} for {len(class_names)} classes."
        )
    rows = []
    for column, name in enumerate(class_names):
        scores, truth = probabilities[:, column], multi_hot[:, column]
        positives = int(truth.sum())
        note = ""
        if positives == 0 or positives == len(truth):
            threshold = 0.5
            note = f"no {'positive' if positives == 0 else 'negative'} image: kept 0.5"
        else:
            threshold = choose_threshold(scores, truth, metric)
        rows.append(
            {
                "class": name,
                "threshold": threshold,
                "positives": positives,
                "metric_at_0.5": threshold_score(scores, truth, metric, 0.5),
                "metric_at_threshold": threshold_score(scores, truth, metric, threshold),
                "note": note,
            }
        )
    return pd.DataFrame(rows).set_index("class")

"""Can the probabilities be trusted: calibration error, temperature scaling, thresholds.

Everything here works on numpy arrays (probabilities, logits and labels), so it is
the same for any model; `FineTuner.calibrate` and `FineTuner.evaluate` feed it.
"""

import dataclasses

import numpy as np
import pandas as pd

# Equal-width confidence bins, as in Guo et al. (2017), "On Calibration of Modern
# Neural Networks", whose expected calibration error this is.
CALIBRATION_BINS = 15
# Decision-threshold metrics for a two-class model; the positive class is the second.
THRESHOLD_METRICS = ("accuracy", "balanced_accuracy", "f1", "macro_f1")
# Temperatures searched by `fit_temperature` (a far wider range than models need).
TEMPERATURE_RANGE = (0.05, 20.0)


def _check(probabilities, labels):
    probabilities = np.asarray(probabilities, dtype="float64")
    labels = np.asarray(labels, dtype="int64")
    if probabilities.ndim != 2 or len(probabilities) != len(labels):
        raise ValueError(
            "`probabilities` must be (N, num_classes) with one label per row. Received: "
            f"probabilities of shape {probabilities.shape} and {len(labels)} labels"
        )
    if len(labels) == 0:
        raise ValueError("There are no images to measure calibration on.")
    return probabilities, labels


def reliability_table(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS
) -> pd.DataFrame:
    """How often the model is right at each level of confidence.

    Each prediction's confidence is the probability of its most probable class;
    predictions are grouped into `bins` equal-width confidence bins.

    Args:
        probabilities: array `(N, num_classes)`. One probability column per class.
        labels: array `(N,)`. The true class indices.
        bins: int. Number of bins over `[0, 1]`. Defaults to `15`.

    Returns:
        A `pandas.DataFrame` with one row per bin: `lower`, `upper`, `count`,
        `confidence` (mean confidence in the bin) and `accuracy` (share right);
        the last two are NaN for an empty bin.
    """
    probabilities, labels = _check(probabilities, labels)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds (edges[i], edges[i + 1]]; a confidence of exactly 0 goes in the first.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, confidence, minlength=bins) / count
        accuracy = np.bincount(index, correct.astype("float64"), minlength=bins) / count
    return pd.DataFrame(
        {
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": count,
            "confidence": mean_confidence,
            "accuracy": accuracy,
        }
    )


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """The expected calibration error: how far confidence is from accuracy, on average.

    The gap between mean confidence and accuracy in each confidence bin,
    weighted by the share of predictions in the bin. 0 is perfectly calibrated;
    a model that says 90% and is right 80% of the time scores 0.1.

    Args:
        probabilities: array `(N, num_classes)`.
        labels: array `(N,)` of class indices.
        bins: int. Defaults to `15`.

    Returns:
        A float in `[0, 1]`.
    """
    return table_error(reliability_table(probabilities, labels, bins))


def table_error(table: pd.DataFrame) -> float:
    """The expected calibration error of a `reliability_table`."""
    filled = table[table["count"] > 0]
    gaps = (filled["confidence"] - filled["accuracy"]).abs()
    return float((gaps * filled["count"]).sum() / filled["count"].sum())


# === Temperature scaling ===
def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean cross-entropy of `logits / temperature` (one sigmoid logit per row for 2 classes)."""
    logits = np.asarray(logits, dtype="float64") / temperature
    labels = np.asarray(labels, dtype="int64")
    if logits.shape[1] == 1:  # a sigmoid: the logit of the second class
        z = logits[:, 0]
        # -log sigmoid(z) for the second class, -log sigmoid(-z) for the first.
        signed = np.where(labels == 1, z, -z)
        return float(np.mean(np.logaddexp(0.0, -signed)))
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_normalizer = np.log(np.exp(shifted).sum(axis=1))
    return float(np.mean(log_normalizer - shifted[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the cross-entropy of `softmax(logits / T)`.

    Temperature scaling (Guo et al., 2017) divides every logit by one number:
    it changes how confident the model is, never which class it predicts. The
    loss is unimodal in the temperature, so a golden-section search over its
    logarithm finds it without a gradient.

    Args:
        logits: array `(N, num_classes)`, or `(N, 1)` for a sigmoid output.
        labels: array `(N,)` of class indices.

    Returns:
        The temperature, a float in `TEMPERATURE_RANGE`.
    """
    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0

    def loss(log_temperature):
        return negative_log_likelihood(logits, labels, float(np.exp(log_temperature)))

    left, right = high - ratio * (high - low), low + ratio * (high - low)
    loss_left, loss_right = loss(left), loss(right)
    while high - low > 1e-5:
        if loss_left <= loss_right:
            high, right, loss_right = right, left, loss_left
            left = high - ratio * (high - low)
            loss_left = loss(left)
        else:
            low, left, loss_left = left, right, loss_right
            right = low + ratio * (high - low)
            loss_right = loss(right)
    return float(np.exp((low + high) / 2.0))


# === Decision threshold ===
def _metric_curves(positive, labels):
    """Each candidate threshold (predict positive from it) and its confusion counts."""
    order = np.argsort(-positive, kind="stable")
    sorted_positive = positive[order]
    sorted_labels = labels[order]
    true_positives = np.concatenate([[0], np.cumsum(sorted_labels == 1)])
    predicted_positive = np.arange(len(labels) + 1)
    # Predicting the top k positive: thresholds between the k-th and (k+1)-th probability.
    above = np.concatenate([[1.0], sorted_positive])
    below = np.concatenate([sorted_positive, [0.0]])
    # Ties cannot be split by a threshold: only cuts between different probabilities.
    distinct = above > below
    thresholds = np.clip((above + below) / 2.0, 1e-6, 1 - 1e-6)
    positives = int((labels == 1).sum())
    false_positives = predicted_positive - true_positives
    false_negatives = positives - true_positives
    true_negatives = len(labels) - positives - false_positives
    keep = np.flatnonzero(distinct)
    return (
        thresholds[keep],
        true_positives[keep].astype("float64"),
        false_positives[keep].astype("float64"),
        false_negatives[keep].astype("float64"),
        true_negatives[keep].astype("float64"),
    )


def _score(metric, tp, fp, fn, tn):
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "accuracy":
            return (tp + tn) / (tp + fp + fn + tn)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        specificity = np.where(tn + fp > 0, tn / (tn + fp), 0.0)
        if metric == "balanced_accuracy":
            return (recall + specificity) / 2.0
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        if metric == "f1":
            return f1
        f1_negative = np.where(2 * tn + fn + fp > 0, 2 * tn / (2 * tn + fn + fp), 0.0)
        return (f1 + f1_negative) / 2.0


def check_threshold_metric(metric: str) -> str:
    """Raises a ValueError unless `metric` is one of `THRESHOLD_METRICS`."""
    if metric not in THRESHOLD_METRICS:
        raise ValueError(
            f"Unknown threshold metric. Use one of {list(THRESHOLD_METRICS)}. "
            f"Received: threshold_metric={metric!r}"
        )
    return metric


def threshold_score(positive, labels, metric: str, threshold: float) -> float:
    """`metric` of predicting the second class where `positive >= threshold`."""
    positive = np.asarray(positive, dtype="float64")
    labels = np.asarray(labels, dtype="int64")
    predicted = positive >= threshold
    # numpy floats: a class absent from `labels` divides by zero without raising.
    tp = np.float64(np.sum(predicted & (labels == 1)))
    fp = np.float64(np.sum(predicted & (labels == 0)))
    fn = np.float64(np.sum(~predicted & (labels == 1)))
    tn = np.float64(np.sum(~predicted & (labels == 0)))
    return float(_score(check_threshold_metric(metric), tp, fp, fn, tn))


def choose_threshold(positive: np.ndarray, labels: np.ndarray, metric: str) -> float:
    """The decision threshold that maximises `metric` on labelled data.

    Args:
        positive: array `(N,)`. The probability of the second class.
        labels: array `(N,)` of 0 and 1.
        metric: str. One of `THRESHOLD_METRICS`: `"accuracy"`,
            `"balanced_accuracy"`, `"f1"` (of the second class) or `"macro_f1"`.

    Returns:
        The threshold, halfway between two neighbouring probabilities; among
        equally good ones, the closest to 0.5.
    """
    check_threshold_metric(metric)
    positive = np.asarray(positive, dtype="float64")
    labels = np.asarray(labels, dtype="int64")
    thresholds, tp, fp, fn, tn = _metric_curves(positive, labels)
    scores = _score(metric, tp, fp, fn, tn)
    best = np.flatnonzero(np.isclose(scores, scores.max(), rtol=0, atol=1e-12))
    return float(thresholds[best[np.argmin(np.abs(thresholds[best] - 0.5))]])


@dataclasses.dataclass
class CalibrationResult:
    """What `FineTuner.calibrate` did, measured on the data it was fitted on.

    Attributes:
        temperature: float. The fitted temperature (above 1: the model was
            overconfident).
        expected_calibration_error_before: float. On the calibration data.
        expected_calibration_error_after: float.
        loss_before: float. Cross-entropy before temperature scaling.
        loss_after: float. And after.
        threshold: float or None. The decision threshold chosen, if asked.
        threshold_metric: str or None. The metric it maximises.
        metric_before: float or None. That metric at the plain rule (0.5).
        metric_after: float or None. At the chosen threshold.
        num_images: int. Images the calibration was fitted on.
        reliability_before: `pandas.DataFrame`. `reliability_table` before.
        reliability_after: `pandas.DataFrame`. And after.
    """

    temperature: float
    expected_calibration_error_before: float
    expected_calibration_error_after: float
    loss_before: float
    loss_after: float
    threshold: float | None
    threshold_metric: str | None
    metric_before: float | None
    metric_after: float | None
    num_images: int
    reliability_before: pd.DataFrame
    reliability_after: pd.DataFrame

    def __repr__(self):
        text = (
            f"CalibrationResult(temperature={self.temperature:.3f}, expected calibration "
            f"error {self.expected_calibration_error_before:.4f} -> "
            f"{self.expected_calibration_error_after:.4f}, loss {self.loss_before:.4f} -> "
            f"{self.loss_after:.4f}"
        )
        if self.threshold is not None:
            text += (
                f", threshold={self.threshold:.3f} ({self.threshold_metric} "
                f"{self.metric_before:.4f} -> {self.metric_after:.4f})"
            )
        return text + f", on {self.num_images} images)"


def probabilities_from_logits(logits: np.ndarray, temperature: float) -> np.ndarray:
    """One probability column per class from logits, as the head computes them."""
    scaled = np.asarray(logits, dtype="float64") / temperature
    if scaled.shape[1] == 1:
        positive = 0.5 * (1.0 + np.tanh(scaled[:, 0] / 2.0))  # the sigmoid, without overflow
        return np.stack([1.0 - positive, positive], axis=1)
    shifted = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def calibrate_logits(
    logits: np.ndarray,
    labels: np.ndarray,
    temperature: float = 1.0,
    threshold: float | None = None,
    threshold_metric: str | None = None,
) -> CalibrationResult:
    """Fits temperature scaling (and optionally a decision threshold) to labelled logits.

    Args:
        logits: array `(N, num_classes)`, or `(N, 1)` for a two-class sigmoid.
        labels: array `(N,)` of class indices.
        temperature: float. The model's temperature now, for "before".
            Defaults to `1.0`.
        threshold: float or None. The model's decision threshold now, for
            "before". Defaults to `None` (the most probable class).
        threshold_metric: str or None. Also choose the two-class decision
            threshold that maximises this metric (one of `THRESHOLD_METRICS`),
            on the calibrated probabilities. Defaults to `None`.

    Returns:
        A `CalibrationResult`.
    """
    logits = np.asarray(logits, dtype="float64")
    labels = np.asarray(labels, dtype="int64")
    before = probabilities_from_logits(logits, temperature)
    fitted = fit_temperature(logits, labels)
    after = probabilities_from_logits(logits, fitted)
    chosen = metric_before = metric_after = None
    if threshold_metric is not None:
        check_threshold_metric(threshold_metric)
        metric_before = threshold_score(
            before[:, 1], labels, threshold_metric, 0.5 if threshold is None else threshold
        )
        chosen = choose_threshold(after[:, 1], labels, threshold_metric)
        metric_after = threshold_score(after[:, 1], labels, threshold_metric, chosen)
    table_before = reliability_table(before, labels)
    table_after = reliability_table(after, labels)
    return CalibrationResult(
        temperature=fitted,
        expected_calibration_error_before=table_error(table_before),
        expected_calibration_error_after=table_error(table_after),
        loss_before=negative_log_likelihood(logits, labels, temperature),
        loss_after=negative_log_likelihood(logits, labels, fitted),
        threshold=chosen,
        threshold_metric=threshold_metric,
        metric_before=metric_before,
        metric_after=metric_after,
        num_images=len(labels),
        reliability_before=table_before,
        reliability_after=table_after,
    )

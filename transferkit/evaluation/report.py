"""pandas out: predictions and evaluation reports."""

import dataclasses

import numpy as np
import pandas as pd

from transferkit.interpret.calibration import reliability_table, table_error
from transferkit.models.predictions import predictions_frame, probability_column


@dataclasses.dataclass
class EvaluationReport:
    """What `FineTuner.evaluate` returns.

    Attributes:
        metrics: dict. `loss`, `accuracy`, `balanced_accuracy` (the mean of
            the classes' recalls: the metric to watch when classes are
            imbalanced), `macro_precision`, `macro_recall`, `macro_f1`,
            `expected_calibration_error`, `num_images`, and for two classes
            `pr_auc` (the area under the precision-recall curve of the second
            class, as average precision). A multi-label model's: `loss`
            (binary cross-entropy), `micro_precision`, `micro_recall`,
            `micro_f1`, `macro_precision`, `macro_recall`, `macro_f1`,
            `mean_average_precision`, `subset_accuracy` (every class right),
            `hamming_loss`, `classes_without_images` and `num_images`.
        per_class: `pandas.DataFrame`. One row per class: `precision`,
            `recall`, `f1` and `support` (number of images of that class);
            multi-label also `average_precision` and the `threshold` used.
        confusion_matrix: `pandas.DataFrame`. Rows are true classes, columns
            predicted classes, values image counts. Multi-label: per class,
            the counts of true and false positives and negatives.
        predictions: `pandas.DataFrame`. The predictions (as `predict` returns
            them) with a `true_label` column (`true_labels` for multi-label).
        calibration: `pandas.DataFrame` or None. The reliability table (one
            row per confidence bin: `lower`, `upper`, `count`, `confidence`,
            `accuracy`), as `tk.plots.plot_reliability_diagram` draws it.
            None for multi-label.
        multi_label: bool. Whether the model is multi-label.
    """

    metrics: dict
    per_class: pd.DataFrame
    confusion_matrix: pd.DataFrame
    predictions: pd.DataFrame
    calibration: pd.DataFrame | None = None
    multi_label: bool = False

    def __getitem__(self, key):
        return self.metrics[key]

    def losses(self) -> pd.Series:
        """Each image's cross-entropy: minus the log of its true class's probability.

        For a multi-label model, the binary cross-entropy averaged over classes.
        """
        frame = self.predictions
        if self.multi_label:
            columns = [c for c in frame.columns if c.startswith(probability_column(""))]
            names = [c[len(probability_column("")) :] for c in columns]
            truth = np.array(
                [[name in set(row) for name in names] for row in frame["true_labels"]]
            )
            probabilities = np.clip(frame[columns].to_numpy(dtype="float64"), 1e-7, 1 - 1e-7)
            losses = -(truth * np.log(probabilities) + ~truth * np.log(1 - probabilities))
            return pd.Series(losses.mean(axis=1), index=frame.index, name="loss")
        true = frame["true_label"].astype(str).to_numpy()
        picked = np.empty(len(frame), dtype="float64")
        for name in np.unique(true):
            rows = true == name
            picked[rows] = frame.loc[rows, probability_column(name)].to_numpy(dtype="float64")
        return pd.Series(-np.log(np.clip(picked, 1e-7, 1.0)), index=frame.index, name="loss")

    def top_losses(self, k: int = 9) -> pd.DataFrame:
        """The `k` images the model got most wrong: the highest loss first.

        Args:
            k: int. How many images. Defaults to `9`.

        Returns:
            A `pandas.DataFrame` indexed by each image's position in the
            evaluated data, with `path` (for files), `true_label`, `label`
            (predicted), `probability` (of the predicted class) and `loss`.
            `FineTuner.explain(top)` shows where the model looked.

        Raises:
            ValueError: if `k` is not a positive integer.

        Example:

        ```python
        report = ft.evaluate("data/test")
        top = report.top_losses(9)
        tk.plots.plot_top_losses(top, ft.explain(top), "top_losses.png")
        ```
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` must be an integer >= 1. Received: k={k!r}")
        wanted = ("path", "true_label", "label", "probability", "true_labels", "labels")
        columns = [column for column in wanted if column in self.predictions]
        frame = self.predictions[columns].copy()
        frame["loss"] = self.losses()
        return frame.sort_values("loss", ascending=False, kind="stable").head(k)

    def most_confused(self, min_count: int = 1) -> pd.DataFrame:
        """The pairs of classes the model mixes up most, as fastai's `most_confused`.

        Args:
            min_count: int. Leave out pairs with fewer mistakes. Defaults to `1`.

        Returns:
            A `pandas.DataFrame` with one row per (true, predicted) pair of
            different classes, most frequent first: `true_label`, `label`
            (predicted), `count`, `mean_probability` (of the predicted class),
            `mean_loss`, and `paths` (a list, for files).

        Raises:
            ValueError: if `min_count` is not a positive integer.
        """
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(
                f"`min_count` must be an integer >= 1. Received: min_count={min_count!r}"
            )
        if self.multi_label:
            raise ValueError(
                "most_confused pairs one true class with one predicted class, which a "
                "multi-label model does not have: read per_class and confusion_matrix (its "
                "false positives and negatives per class), or top_losses()."
            )
        frame = self.predictions.assign(loss=self.losses())
        wrong = frame[frame["label"].astype(str) != frame["true_label"].astype(str)]
        aggregations = {
            "count": ("label", "size"),
            "mean_probability": ("probability", "mean"),
            "mean_loss": ("loss", "mean"),
        }
        if "path" in frame:
            aggregations["paths"] = ("path", list)
        pairs = wrong.groupby(["true_label", "label"], sort=False).agg(**aggregations)
        pairs = pairs[pairs["count"] >= min_count].reset_index()
        return pairs.sort_values(
            ["count", "mean_loss"], ascending=[False, False], kind="stable"
        ).reset_index(drop=True)

    def __repr__(self):
        metrics = ", ".join(
            f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}"
            for key, value in self.metrics.items()
        )
        return f"EvaluationReport({metrics})\n{self.confusion_matrix}"


def evaluation_report(
    probabilities: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    identifiers: list[str] | None,
    predicted: np.ndarray | None = None,
) -> EvaluationReport:
    """Computes accuracy, loss, calibration, per-class precision/recall and the confusion matrix.

    `predicted` gives the predicted class indices when they are not simply the
    most probable classes (a two-class model with a decision threshold).
    """
    labels = np.asarray(labels, dtype="int64")
    predicted = probabilities.argmax(axis=1) if predicted is None else np.asarray(predicted)
    num_classes = len(class_names)
    matrix = np.zeros((num_classes, num_classes), dtype="int64")
    np.add.at(matrix, (labels, predicted), 1)
    true_positives = np.diag(matrix).astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(matrix.sum(0) > 0, true_positives / matrix.sum(0), 0.0)
        recall = np.where(matrix.sum(1) > 0, true_positives / matrix.sum(1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    per_class = pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": matrix.sum(1)},
        index=pd.Index(class_names, name="class"),
    )
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    calibration = reliability_table(probabilities, labels) if len(labels) else None
    metrics = {
        "loss": float(-np.log(picked).mean()),
        "accuracy": float((predicted == labels).mean()),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "balanced_accuracy": float(recall[matrix.sum(1) > 0].mean()) if len(labels) else 0.0,
        "expected_calibration_error": table_error(calibration) if len(labels) else float("nan"),
        "num_images": int(len(labels)),
    }
    if num_classes == 2:
        from transferkit.interpret.thresholds import average_precision

        metrics["pr_auc"] = average_precision(probabilities[:, 1], labels == 1)
    confusion = pd.DataFrame(
        matrix,
        index=pd.Index(class_names, name="true"),
        columns=pd.Index(class_names, name="predicted"),
    )
    predictions = predictions_frame(probabilities, class_names, identifiers, predicted)
    predictions.insert(
        1 if identifiers is not None else 0, "true_label", [class_names[i] for i in labels]
    )
    return EvaluationReport(metrics, per_class, confusion, predictions, calibration)

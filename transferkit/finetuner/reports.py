"""pandas out: the history of a run, predictions and evaluation reports."""

import dataclasses

import keras
import numpy as np
import pandas as pd


class HistoryRecorder(keras.callbacks.Callback):
    """Records one row per epoch: phase, learning rate, losses, metrics and seconds."""

    def __init__(self, phase_name: str, rows: list):
        super().__init__()
        self.phase_name = phase_name
        self.rows = rows
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        import time

        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        import time

        learning_rate = getattr(self.model.optimizer, "learning_rate", None)
        row = {
            "epoch": epoch + 1,
            "phase": self.phase_name,
            "learning_rate": float(np.asarray(learning_rate))
            if learning_rate is not None
            else None,
        }
        row.update({key: float(value) for key, value in (logs or {}).items()})
        row["seconds"] = time.perf_counter() - self._started
        self.rows.append(row)


def history_frame(rows: list[dict]) -> pd.DataFrame:
    """One row per epoch, in a fixed column order (metrics as Keras names them)."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["epoch", "phase", "learning_rate", "loss", "seconds"])
    first = ["epoch", "phase", "learning_rate"]

    def loss_first(columns):
        return sorted(columns, key=lambda column: not column.endswith("loss"))

    train = loss_first(
        [c for c in frame.columns if c not in first + ["seconds"] and not c.startswith("val_")]
    )
    validation = loss_first([c for c in frame.columns if c.startswith("val_")])
    return frame[first + train + validation + ["seconds"]].reset_index(drop=True)


def probability_column(class_name: str) -> str:
    """The name of the predictions column holding the probability of `class_name`."""
    return f"prob_{class_name}"


def predictions_frame(
    probabilities: np.ndarray, class_names: list[str], identifiers: list[str] | None
) -> pd.DataFrame:
    """Builds the DataFrame `FineTuner.predict` returns.

    Columns: `path` (when the images came from files), `label` (the most
    probable class), `probability` (its probability), then one `prob_<class>`
    column per class.
    """
    index = probabilities.argmax(axis=1)
    frame = pd.DataFrame()
    if identifiers is not None:
        frame["path"] = list(identifiers)
    frame["label"] = [class_names[i] for i in index]
    frame["probability"] = probabilities[np.arange(len(index)), index]
    for column, name in enumerate(class_names):
        frame[probability_column(name)] = probabilities[:, column]
    return frame


@dataclasses.dataclass
class EvaluationReport:
    """What `FineTuner.evaluate` returns.

    Attributes:
        metrics: dict. `loss`, `accuracy`, `macro_precision`, `macro_recall`,
            `macro_f1` and `num_images`.
        per_class: `pandas.DataFrame`. One row per class: `precision`,
            `recall`, `f1` and `support` (number of images of that class).
        confusion_matrix: `pandas.DataFrame`. Rows are true classes, columns
            predicted classes, values image counts.
        predictions: `pandas.DataFrame`. The predictions (as `predict` returns
            them) with a `true_label` column.
    """

    metrics: dict
    per_class: pd.DataFrame
    confusion_matrix: pd.DataFrame
    predictions: pd.DataFrame

    def __getitem__(self, key):
        return self.metrics[key]

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
) -> EvaluationReport:
    """Computes accuracy, loss, per-class precision/recall and the confusion matrix."""
    labels = np.asarray(labels, dtype="int64")
    predicted = probabilities.argmax(axis=1)
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
    metrics = {
        "loss": float(-np.log(picked).mean()),
        "accuracy": float((predicted == labels).mean()),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "num_images": int(len(labels)),
    }
    confusion = pd.DataFrame(
        matrix,
        index=pd.Index(class_names, name="true"),
        columns=pd.Index(class_names, name="predicted"),
    )
    predictions = predictions_frame(probabilities, class_names, identifiers)
    predictions.insert(
        1 if identifiers is not None else 0, "true_label", [class_names[i] for i in labels]
    )
    return EvaluationReport(metrics, per_class, confusion, predictions)

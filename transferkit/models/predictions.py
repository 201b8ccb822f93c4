"""pandas out of a classifier's probabilities: one row per image, the predicted class(es)."""

import numpy as np
import pandas as pd


def probability_column(class_name: str) -> str:
    """The name of the predictions column holding the probability of `class_name`."""
    return f"prob_{class_name}"


def predictions_frame(
    probabilities: np.ndarray,
    class_names: list[str],
    identifiers: list[str] | None,
    predicted: np.ndarray | None = None,
) -> pd.DataFrame:
    """Builds the DataFrame `FineTuner.predict` returns.

    Columns: `path` (when the images came from files), `label` (the predicted
    class: the most probable one unless `predicted` says otherwise),
    `probability` (its probability), then one `prob_<class>` column per class.
    """
    index = probabilities.argmax(axis=1) if predicted is None else np.asarray(predicted)
    frame = pd.DataFrame()
    if identifiers is not None:
        frame["path"] = list(identifiers)
    frame["label"] = [class_names[i] for i in index]
    frame["probability"] = probabilities[np.arange(len(index)), index]
    for column, name in enumerate(class_names):
        frame[probability_column(name)] = probabilities[:, column]
    return frame


def multi_label_predictions_frame(
    probabilities: np.ndarray,
    class_names: list[str],
    identifiers: list[str] | None,
    predicted: np.ndarray,
) -> pd.DataFrame:
    """Builds the DataFrame `FineTuner.predict` returns for a multi-label model.

    Columns: `path` (when the images came from files), `labels` (the list of
    classes at or above their thresholds, possibly empty), then one
    `prob_<class>` column per class.
    """
    frame = pd.DataFrame()
    if identifiers is not None:
        frame["path"] = list(identifiers)
    frame["labels"] = label_lists(predicted, class_names)
    for column, name in enumerate(class_names):
        frame[probability_column(name)] = probabilities[:, column]
    return frame


def label_lists(mask: np.ndarray, class_names: list[str]) -> list[list[str]]:
    """The classes of each row of a multi-hot `mask`, as lists of names."""
    return [[class_names[i] for i in np.flatnonzero(row)] for row in np.asarray(mask, bool)]

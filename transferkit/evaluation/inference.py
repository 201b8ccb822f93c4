"""Predicting, evaluating and choosing thresholds with a classifier on an `ImageSource`.

What `FineTuner.predict`, `evaluate` and `choose_thresholds` do, as functions of
the classifier and the images (the multi-label branching included), so they
work the same on a model just trained and on one loaded from a file.
"""

import numpy as np
import pandas as pd

from transferkit.data import ImageSource, make_dataset
from transferkit.evaluation.multi_label import multi_label_report
from transferkit.evaluation.report import EvaluationReport, evaluation_report
from transferkit.interpret.model import outputs_with_views
from transferkit.interpret.thresholds import choose_thresholds
from transferkit.models.predictions import multi_label_predictions_frame, predictions_frame
from transferkit.utils.log import logger


def class_probabilities(model, source: ImageSource, batch_size: int, views=None) -> np.ndarray:
    """One probability column per class for every image of `source` (TTA `views` averaged)."""
    dataset = make_dataset(source, model.image_size, batch_size, include_labels=False)
    count = None if source.dataset is not None else len(source)  # a Dataset's may be unknown
    outputs = outputs_with_views(model, dataset, views, count, batch_size)
    return model.head.probabilities(outputs)


def source_labels(model, source: ImageSource, batch_size: int) -> np.ndarray:
    """The labels of `source`: class indices, or multi-hot rows."""
    if source.labels is None and source.dataset is not None:
        # make_dataset turns one-hot and (batch, 1) labels into class indices.
        labelled = make_dataset(source, model.image_size, batch_size)
        return np.concatenate([np.asarray(y) for _, y in labelled])
    return source.labels


def predict_frame(model, source: ImageSource, batch_size: int, views=None) -> pd.DataFrame:
    """The predictions DataFrame of `FineTuner.predict`."""
    probabilities = class_probabilities(model, source, batch_size, views)
    head = model.head
    if head.multi_label:
        mask = head.predicted_mask(probabilities)
        return multi_label_predictions_frame(
            probabilities, model.class_names, source.identifiers, mask
        )
    indices = head.predicted_indices(probabilities)
    return predictions_frame(probabilities, model.class_names, source.identifiers, indices)


def evaluate_classifier(
    model, source: ImageSource, batch_size: int, views=None
) -> EvaluationReport:
    """The `EvaluationReport` of `FineTuner.evaluate` on labelled images."""
    probabilities = class_probabilities(model, source, batch_size, views)
    labels = source_labels(model, source, batch_size)
    head = model.head
    if head.multi_label:
        return multi_label_report(
            probabilities,
            labels,
            model.class_names,
            source.identifiers,
            head.predicted_mask(probabilities),
            head.threshold_array(),
        )
    return evaluation_report(
        probabilities,
        labels,
        model.class_names,
        source.identifiers,
        head.predicted_indices(probabilities),
    )


def check_multi_label(model) -> None:
    """Refuses a single-label model where per-class thresholds are asked for."""
    if not model.head.multi_label:
        raise ValueError(
            "choose_thresholds is for a multi-label model; for two classes use "
            "calibrate(validation_data, threshold_metric=...)."
        )


def choose_classifier_thresholds(
    model, source: ImageSource, metric: str, batch_size: int
) -> pd.DataFrame:
    """Chooses and sets the per-class thresholds of a multi-label head (`choose_thresholds`)."""
    check_multi_label(model)
    probabilities = class_probabilities(model, source, batch_size)
    table = choose_thresholds(
        probabilities, source_labels(model, source, batch_size), model.class_names, metric
    )
    model.head.thresholds = [float(value) for value in table["threshold"]]
    chosen = ", ".join(f"{name} {value:.3f}" for name, value in table["threshold"].items())
    logger.info(
        f"decision thresholds chosen on {len(probabilities)} images for {metric}: {chosen}"
    )
    kept = table[table["note"] != ""]
    if len(kept):
        logger.warning(
            "Classes %s have only one kind of image in the validation data: they keep the "
            "threshold 0.5.",
            list(kept.index),
        )
    return table

"""The interpretation tools run on an `ImageClassifier`: what `FineTuner` calls.

Each function takes the classifier and what it uses (a dataset of image batches,
labels, a class name), so it works the same on a model just trained and on one
loaded from a file.
"""

from collections.abc import Sequence

import keras
import numpy as np

from transferkit.data import ImageSource, make_dataset
from transferkit.data.pipeline import padded_batches
from transferkit.interpret.calibration import (
    CalibrationResult,
    calibrate_logits,
    check_threshold_metric,
)
from transferkit.interpret.gradcam import Explanation, GradCAM, explain_batches
from transferkit.interpret.tta import tta_outputs
from transferkit.models.image_classifier import call_backbone
from transferkit.models.predictions import predictions_frame
from transferkit.utils.log import logger


def outputs_with_views(
    model: keras.Model,
    dataset,
    views: Sequence[str] | None,
    count: int | None = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """`model.predict` on a dataset of image batches, averaged over TTA `views` if given.

    With the number of images (`count`) and the `batch_size` of the batches,
    the last batch is padded to a full one and its added rows dropped, so the
    model traces its predict step once.
    """
    if count is not None and batch_size is not None:
        dataset = padded_batches(dataset, batch_size)
    if views is None:
        outputs = model.predict(dataset, verbose=0)
    else:
        outputs = tta_outputs(model, dataset, views)
    return outputs if count is None else outputs[:count]


def _class_indices(class_name, class_names):
    """What to explain: None (each image's predicted class), one index, or one per image."""
    if class_name is None:
        return None
    names = [class_name] if isinstance(class_name, str) else list(class_name)
    unknown = [name for name in names if name not in class_names]
    if unknown:
        raise ValueError(
            f"Unknown class {unknown[0]!r}: the model's classes are {class_names}. "
            f"Received: class_name={class_name!r}"
        )
    if isinstance(class_name, str):
        return class_names.index(class_name)
    return np.array([class_names.index(name) for name in names], dtype="int32")


def explain_images(
    classifier,
    source: ImageSource,
    class_name: str | Sequence[str] | None,
    layer: str | None,
    batch_size: int,
) -> Explanation:
    """Grad-CAM heat maps of every image of `source` (see `FineTuner.explain`)."""
    indices = _class_indices(class_name, classifier.class_names)
    gradcam = GradCAM(classifier, layer)
    dataset = make_dataset(source, classifier.image_size, batch_size, include_labels=False)
    heatmaps, images, logits = explain_batches(gradcam, dataset, indices)
    head = classifier.head
    outputs = head.outputs_from_logits(keras.ops.convert_to_tensor(logits))
    probabilities = head.probabilities(keras.ops.convert_to_numpy(outputs))
    predicted = head.predicted_indices(probabilities)
    frame = predictions_frame(probabilities, classifier.class_names, source.identifiers, predicted)
    if indices is None:
        frame["explained"] = frame["label"]
    else:
        explained = np.broadcast_to(indices, (len(frame),))
        frame["explained"] = [classifier.class_names[index] for index in explained]
    return Explanation(heatmaps, images, frame, gradcam.feature_map.layer)


def logits_model(classifier) -> keras.Model:
    """Raw images -> logits (before the temperature), sharing the classifier's layers."""
    inputs = keras.Input(shape=(None, None, 3), name="image")
    features = call_backbone(classifier.backbone, classifier.preprocessor(inputs), training=False)
    head = classifier.head
    return keras.Model(inputs, head.logits(head.pool(features), training=False), name="logits")


def calibrate_classifier(
    classifier, dataset, labels: np.ndarray, threshold_metric: str | None
) -> CalibrationResult:
    """Fits the head's temperature (and decision threshold) on labelled batches.

    Args:
        classifier: `ImageClassifier`. Its head's `temperature` and
            `decision_threshold` are set.
        dataset: `tf.data.Dataset` of image batches (no labels).
        labels: array `(N,)`. Class indices, in the dataset's order.
        threshold_metric: str or None. See `FineTuner.calibrate`.

    Returns:
        A `CalibrationResult`.

    Raises:
        ValueError: for a multi-label model, or a threshold metric for more than
            two classes.
    """
    head = classifier.head
    if head.multi_label:
        raise ValueError(
            "calibrate works on single-label models (softmax or one sigmoid); this model is "
            "multi-label."
        )
    if threshold_metric is not None:
        check_threshold_metric(threshold_metric)
        if head.num_classes != 2:
            raise ValueError(
                f"A decision threshold is for two classes; this model has {head.num_classes} "
                f"{classifier.class_names}. Received: threshold_metric={threshold_metric!r}"
            )
    logits = logits_model(classifier).predict(dataset, verbose=0)
    labels = np.asarray(labels, dtype="int64")
    if len(labels) != len(logits) or len(labels) == 0:
        raise ValueError(
            f"calibrate needs labelled images: got {len(logits)} images and {len(labels)} labels."
        )
    result = calibrate_logits(
        logits,
        labels,
        temperature=float(keras.ops.convert_to_numpy(head.temperature)),
        threshold=head.decision_threshold,
        threshold_metric=threshold_metric,
    )
    head.temperature.assign(result.temperature)
    if head.decision_threshold is not None and threshold_metric is None:
        logger.info(
            f"calibrate: the decision threshold {head.decision_threshold:.3f} was fitted to "
            "the old probabilities; the model now predicts the most probable class"
        )
    head.decision_threshold = result.threshold
    logger.info(f"calibrated: {result!r}")
    return result


def reset_calibration(head) -> bool:
    """Puts the head back to temperature 1 and no decision threshold; says so if it changes.

    Returns:
        Whether the head was calibrated.
    """
    temperature = float(keras.ops.convert_to_numpy(head.temperature))
    calibrated = temperature != 1.0 or head.decision_threshold is not None
    if calibrated:
        logger.info(
            f"training changes the probabilities: the calibration (temperature "
            f"{temperature:.3f}, threshold {head.decision_threshold}) is reset; call "
            "calibrate() again after fit"
        )
        head.temperature.assign(1.0)
        head.decision_threshold = None
    if getattr(head, "thresholds", None) is not None:
        logger.info(
            "training changes the probabilities: the per-class decision thresholds are reset "
            "to 0.5 (fit chooses them again on its validation data)"
        )
        head.thresholds = None
        calibrated = True
    return calibrated

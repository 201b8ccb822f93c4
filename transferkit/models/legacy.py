"""Reading models saved by transferkit 0.1, before the classifier had a class of its own.

transferkit 0.1 saved an anonymous functional model named `transferkit_<backbone>`
whose parts were layers named `preprocessing` and `head` around one nested
backbone model. This is the one place that still finds parts by name: to turn
such a file into an `ImageClassifier` once, when it is loaded.
"""

import keras

from transferkit.heads import ClassificationHead
from transferkit.layers import BackbonePreprocessing
from transferkit.models.image_classifier import ImageClassifier

LEGACY_PREFIX = "transferkit_"


def is_legacy_classifier(model: keras.Model) -> bool:
    """Whether `model` is a classifier saved by transferkit 0.1."""
    names = [layer.name for layer in model.layers]
    return (
        not isinstance(model, ImageClassifier)
        and model.name.startswith(LEGACY_PREFIX)
        and "preprocessing" in names
        and "head" in names
    )


def upgrade_legacy_classifier(model: keras.Model) -> tuple[ImageClassifier, str]:
    """Rebuilds a transferkit 0.1 classifier as an `ImageClassifier` with the same layers.

    Returns:
        The `ImageClassifier` (sharing the old model's layers and weights) and
        the backbone's registry name, which 0.1 kept in the model's name.

    Raises:
        ValueError: if the model does not have 0.1's parts.
    """
    preprocessing = model.get_layer("preprocessing")
    head = model.get_layer("head")
    backbones = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if (
        len(backbones) != 1
        or not isinstance(preprocessing, BackbonePreprocessing)
        or not isinstance(head, ClassificationHead)
    ):
        raise ValueError(
            f"Model {model.name!r} looks like a transferkit 0.1 classifier but does not have "
            "its parts (a BackbonePreprocessing layer, one backbone model, a "
            f"ClassificationHead). Its layers: {[layer.name for layer in model.layers]}"
        )
    classifier = ImageClassifier(backbones[0], head, preprocessing, name="image_classifier")
    return classifier, model.name[len(LEGACY_PREFIX) :]


def finetuner_settings(model: keras.Model) -> tuple[ImageClassifier, dict]:
    """A classifier and the FineTuner settings to wrap it in (`FineTuner.from_model`).

    The settings are those the model was saved with (`finetuner_config`). A
    transferkit 0.1 classifier is upgraded first; a classifier without settings
    (0.1, or built by hand) gets the defaults around its own backbone, head and
    input size. A saved backbone model is replaced by the model's own (with its
    weights), so it is not rebuilt.

    Raises:
        ValueError: if `model` is neither an `ImageClassifier` nor a 0.1 classifier.
    """
    from transferkit.backbones import BACKBONES

    backbone_name = None
    if is_legacy_classifier(model):
        model, backbone_name = upgrade_legacy_classifier(model)
    if not isinstance(model, ImageClassifier):
        raise ValueError(
            f"A FineTuner wraps a transferkit.ImageClassifier. Received a "
            f"{type(model).__name__} named {model.name!r}."
        )
    config = dict(model.finetuner_config or {})
    if not config:
        head = model.head.get_config()
        # The decision threshold belongs to the trained model, not to the settings.
        head.update(num_classes=None, class_names=None, decision_threshold=None, thresholds=None)
        head.pop("name", None)
        config = {
            # A registry name keeps the log's and the CLI's wording; else the model.
            "backbone": backbone_name if backbone_name in BACKBONES else model.backbone,
            "num_classes": model.head.num_classes,
            "weights": None,
            "head": keras.saving.serialize_keras_object(ClassificationHead.from_config(head)),
            "input_shape": [*model.image_size, 3],
        }
    if isinstance(config.get("backbone"), dict):
        config["backbone"] = model.backbone
    return model, config

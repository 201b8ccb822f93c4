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

"""Assembling the classifier: raw image -> preprocessing -> backbone -> head.

The model holds its preprocessing, so a saved model takes raw RGB images
(0-255, any size) and the wrong preprocessing cannot be applied. The pieces are
found again in a loaded model by name, which is how `transferkit.load` turns a
`.keras` file back into a `FineTuner`.
"""

import keras

from transferkit.heads import ClassificationHead
from transferkit.layers import BackbonePreprocessing

MODEL_PREFIX = "transferkit_"
PREPROCESSING_NAME = "preprocessing"
HEAD_NAME = "head"


def build_classifier(
    backbone: keras.Model,
    backbone_name: str,
    preprocessing: str,
    image_size: tuple[int, int],
    head: ClassificationHead,
) -> keras.Model:
    """Builds the full classifier as a functional model.

    Args:
        backbone: `keras.Model`. The feature extractor (no top).
        backbone_name: str. Registry name of the backbone; it becomes part of
            the model's name (`transferkit_<backbone_name>`) so that a loaded
            model knows what it was built from.
        preprocessing: str. The backbone's preprocessing mode.
        image_size: tuple of 2 int. The backbone's input size.
        head: `ClassificationHead` with its number of classes set.

    Returns:
        A `keras.Model` from raw images `(batch, height, width, 3)`, values
        0-255, to the head's output.
    """
    inputs = keras.Input(shape=(None, None, 3), name="image")
    x = BackbonePreprocessing(image_size=image_size, mode=preprocessing, name=PREPROCESSING_NAME)(
        inputs
    )
    x = backbone(x)
    outputs = head(x)
    return keras.Model(inputs, outputs, name=f"{MODEL_PREFIX}{backbone_name}")


def classifier_parts(model: keras.Model):
    """Finds the preprocessing layer, backbone, head and backbone name of a classifier.

    Raises:
        ValueError: if `model` was not built by transferkit.
    """
    try:
        preprocessing = model.get_layer(PREPROCESSING_NAME)
        head = model.get_layer(HEAD_NAME)
    except ValueError as error:
        raise ValueError(
            f"Model {model.name!r} was not built by transferkit (it has no "
            f"{PREPROCESSING_NAME!r} and {HEAD_NAME!r} layers). Received layers: "
            f"{[layer.name for layer in model.layers]}"
        ) from error
    backbones = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(backbones) != 1:
        raise ValueError(
            f"Expected one nested backbone model in {model.name!r}, found {backbones}."
        )
    if not isinstance(preprocessing, BackbonePreprocessing) or not isinstance(
        head, ClassificationHead
    ):
        raise ValueError(f"Model {model.name!r} has unexpected preprocessing or head layers.")
    name = model.name[len(MODEL_PREFIX) :] if model.name.startswith(MODEL_PREFIX) else model.name
    return preprocessing, backbones[0], head, name

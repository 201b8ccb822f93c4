"""The model every export converts: raw pixels in, one probability per class out."""

import keras
from keras import ops

from transferkit.models import ImageClassifier

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"


@keras.saving.register_keras_serializable(package="transferkit")
class ClassProbabilities(keras.layers.Layer):
    """Turns a classification head's outputs into one probability column per class.

    A two-class head has a single sigmoid unit, the probability of the second
    class; an export should not make every caller remember that, so this layer
    adds the first column, `1 - p`, as `ClassificationHead.probabilities` does.
    Other heads' outputs pass through.

    Args:
        binary: bool. Whether the outputs are a single sigmoid unit.
        **kwargs: Base layer keyword arguments, such as `name`.
    """

    def __init__(self, binary: bool, **kwargs):
        super().__init__(**kwargs)
        self.binary = bool(binary)

    def call(self, outputs):
        if self.binary:
            return ops.concatenate([1.0 - outputs, outputs], axis=-1)
        return outputs

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2) if self.binary else tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "binary": self.binary}


def check_classifier(model) -> ImageClassifier:
    """Returns `model` if it is a transferkit `ImageClassifier`.

    Raises:
        ValueError: for any other object, saying where a classifier comes from.
    """
    if not isinstance(model, ImageClassifier):
        what = (
            f"a Keras {type(model).__name__} named {model.name!r}"
            if isinstance(model, keras.Model)
            else repr(model)
        )
        raise ValueError(
            "Export takes a transferkit classifier (FineTuner.model, or tk.load(path).model, "
            f"an ImageClassifier). Received {what}; export other Keras models with "
            "model.export()."
        )
    return model


def serving_model(classifier: ImageClassifier, fixed_size: bool = False) -> keras.Model:
    """The classifier in inference mode, with named input and output, as exports see it.

    Takes a batch of raw RGB images (`float32`, values 0-255, any height and
    width: the classifier's own preprocessing resizes and scales them) named
    `images`, and returns `{"probabilities": (batch, num_classes)}`. Dropout is
    off and BatchNorm uses its moving statistics (`training=False`).

    Args:
        classifier: `ImageClassifier`.
        fixed_size: bool. Whether images come already resized to the
            classifier's `image_size`, so the model holds no resize at all: for
            LiteRT, whose built-in ops have no bicubic resize, when the
            classifier resizes bicubically (KerasHub presets of timm models).
            Defaults to `False`.

    Returns:
        A functional `keras.Model` sharing the classifier's weights.
    """
    check_classifier(classifier)
    head = classifier.head
    shape = (*classifier.image_size, 3) if fixed_size else (None, None, 3)
    inputs = keras.Input(shape=shape, dtype="float32", name=INPUT_NAME)
    outputs = classifier(inputs, training=False)
    binary = head.num_classes == 2 and not head.multi_label
    probabilities = ClassProbabilities(binary, name=OUTPUT_NAME)(outputs)
    return keras.Model(inputs, {OUTPUT_NAME: probabilities}, name=f"{classifier.name}_serving")

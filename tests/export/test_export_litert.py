"""LiteRT in float32, float16 and int8, run by the LiteRT interpreter without TensorFlow."""

import keras
import numpy as np
import pytest
from export_helpers import (
    assert_informative,
    keras_probabilities,
    smooth_images,
    tiny_classifier,
)

import transferkit as tk

pytest.importorskip("ai_edge_litert", reason="the LiteRT runtime comes with transferkit[export]")

# Bounds on the probability differences to the Keras model, above what each showed
# here: the largest for float32, float16 and dynamic range (1e-7, 7e-5, 1e-7: the
# tiny model's weights are too few to be quantized); for full integer, the median
# over images of each image's largest (0.009; one image reached 0.28), and the
# predicted classes (all agreed).
MAX_DIFFERENCE = {None: 1e-5, "float16": 1e-3, "dynamic_range": 1e-2}
FULL_INTEGER_MEDIAN_DIFFERENCE = 0.05
FULL_INTEGER_AGREEMENT = 0.9


@pytest.fixture(scope="module")
def training_images():
    return smooth_images(40, seed=7)


@pytest.mark.parametrize("quantize", [None, "float16", "dynamic_range", "full_integer"])
def test_each_quantization_runs_in_litert_alone_and_stays_close(
    quantize, finetuner, images, training_images, tmp_path, run_artifact
):
    path = tmp_path / "cats.tflite"
    representative = training_images if quantize == "full_integer" else None
    finetuner.export(path, "litert", quantize=quantize, representative_data=representative)

    outputs = run_artifact("litert", path, images)

    expected = keras_probabilities(finetuner.model, images)
    assert_informative(expected)
    assert outputs["probabilities"].shape == expected.shape
    difference = np.abs(outputs["probabilities"] - expected)
    agreement = (outputs["probabilities"].argmax(1) == expected.argmax(1)).mean()
    if quantize == "full_integer":
        assert np.median(difference.max(axis=1)) <= FULL_INTEGER_MEDIAN_DIFFERENCE
        assert agreement >= FULL_INTEGER_AGREEMENT
    else:
        assert difference.max() <= MAX_DIFFERENCE[quantize] and agreement == 1.0
    assert list(outputs["class_names"]) == ["cat", "dog", "bird"]
    info = tk.export.read_export_info(path)
    assert (info.format, info.quantization) == ("litert", quantize)
    if quantize == "full_integer":
        # Raw uint8 pixels go in as they are: scale 1, zero point 0.
        assert str(outputs["input_dtype"]) == "uint8" and info.input_dtype == "uint8"
        np.testing.assert_allclose(outputs["input_quantization"], [1.0, 0.0], atol=1e-6)
    else:
        assert str(outputs["input_dtype"]) == "float32"


def _wide(x):
    # Enough weights for a file's size to be its weights'.
    x = keras.layers.Conv2D(128, 1, name="wide")(x)
    return keras.layers.Conv2D(128, 1, name="wide_2")(x)


def test_quantized_weights_make_smaller_files(tmp_path):
    finetuner = tk.FineTuner.from_model(tiny_classifier(middle=_wide))
    sizes = {}
    for quantize in (None, "float16", "dynamic_range"):
        path = tmp_path / f"{quantize}.tflite"
        finetuner.export(path, "litert", quantize=quantize)
        sizes[quantize] = path.stat().st_size
    assert sizes["float16"] < 0.6 * sizes[None]
    assert sizes["dynamic_range"] < 0.35 * sizes[None]


def _training_only(x):
    x = keras.layers.RandomFlip("horizontal", name="flip")(x)
    x = keras.layers.GaussianNoise(1.0, name="noise")(x)
    return keras.layers.Dropout(0.5, name="dropout")(x)


def test_the_export_runs_in_inference_mode(images, tmp_path, run_artifact):
    # Augmentation, noise and dropout inside the backbone are off, and BatchNorm uses
    # its moving statistics: the export answers as the Keras model does at inference.
    classifier = tiny_classifier(middle=_training_only)
    path = tmp_path / "inference.tflite"
    tk.FineTuner.from_model(classifier).export(path, "litert")

    first = run_artifact("litert", path, images)["probabilities"]
    second = run_artifact("litert", path, images)["probabilities"]

    np.testing.assert_array_equal(first, second)
    expected = keras_probabilities(classifier, images)
    np.testing.assert_allclose(first, expected, atol=1e-5)
    training = classifier.head.probabilities(classifier(images, training=True))
    assert np.abs(training - expected).max() > 0.05  # training mode would have shown

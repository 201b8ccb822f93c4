"""ONNX, run by ONNX Runtime in a process without TensorFlow, Keras or transferkit."""

import keras
import numpy as np
import pytest
from export_helpers import assert_informative, keras_probabilities, tiny_classifier

import transferkit as tk

pytest.importorskip("tf2onnx", reason="ONNX export comes with transferkit[export]")
pytest.importorskip("onnxruntime", reason="ONNX Runtime comes with transferkit[export]")


def test_onnx_runs_in_onnx_runtime_alone_and_carries_its_class_names(
    finetuner, images, tmp_path, run_artifact
):
    path = tmp_path / "cats.onnx"
    finetuner.export(path, "onnx")

    outputs = run_artifact("onnx", path, images)

    expected = keras_probabilities(finetuner.model, images)
    assert_informative(expected)
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)
    assert list(outputs["input_names"]) == ["images"]
    assert list(outputs["class_names"]) == ["cat", "dog", "bird"]
    info = tk.export.read_export_info(path)
    assert (info.format, info.image_size, info.input_dtype) == ("onnx", (16, 16), "float32")


def test_statistics_a_layer_computed_when_built_are_inside_the_graph(
    images, tmp_path, run_artifact
):
    # EfficientNet starts with a Normalization layer, whose mean and variance are
    # tensors computed when it is built. Converting the live function (as Keras's
    # own ONNX export does) turned them into graph inputs nobody can feed.
    normalization = keras.layers.Normalization(axis=-1, name="normalization")
    rng = np.random.default_rng(0)
    normalization.adapt(rng.normal(3.0, 2.0, (32, 16, 16, 8)).astype("float32"))
    classifier = tiny_classifier(middle=normalization)
    path = tmp_path / "normalized.onnx"
    tk.FineTuner.from_model(classifier).export(path, "onnx")

    outputs = run_artifact("onnx", path, images)

    assert list(outputs["input_names"]) == ["images"]
    expected = keras_probabilities(classifier, images)
    assert_informative(expected)
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)

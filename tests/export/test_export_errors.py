"""Bad input to export: each a clear one-line error, and nothing half-written."""

import sys

import keras
import numpy as np
import pytest
from export_helpers import smooth_images, tiny_classifier

import transferkit as tk


def one_line(error):
    assert "\n" not in str(error.value), str(error.value)
    return str(error.value)


@pytest.mark.parametrize(
    "format, match",
    [
        ("tflite", r"Unknown export format 'tflite'.*Did you mean 'litert'\?"),
        ("tf_saved_model", r"Did you mean 'saved_model'\?"),
        ("onxx", r"Did you mean 'onnx'\?"),
        ("openvino", r"use one of \['saved_model', 'litert', 'onnx'\]"),
    ],
)
def test_an_unknown_format_names_the_formats(finetuner, tmp_path, format, match):
    with pytest.raises(ValueError, match=match) as error:
        finetuner.export(tmp_path / "model", format)
    one_line(error)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "quantize, match",
    [
        ("int8", r"Unknown quantization 'int8'.*Did you mean 'full_integer'\?"),
        ("float8", r"use one of \['float16', 'dynamic_range', 'full_integer'\]"),
    ],
)
def test_an_unknown_quantization_names_the_modes(finetuner, tmp_path, quantize, match):
    with pytest.raises(ValueError, match=match) as error:
        finetuner.export(tmp_path / "model.tflite", "litert", quantize=quantize)
    one_line(error)


def test_arguments_that_do_not_apply_are_errors(finetuner, tmp_path):
    images = smooth_images(4)
    cases = [
        (dict(format="onnx", quantize="float16"), r"applies to format='litert' only"),
        (dict(format="litert", quantize="full_integer"), r"pass representative_data="),
        (dict(format="litert", representative_data=images), r"full_integer' only"),
        (dict(format="litert", tolerance=1e-3), r"pass check= images too"),
        (dict(format="litert", check=images, tolerance=-1.0), r"must be a number > 0"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match) as error:
            finetuner.export(tmp_path / "model.tflite", **kwargs)
        one_line(error)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "format, path, match",
    [
        ("litert", "model.onnx", r"'litert' export is one file ending in '.tflite'"),
        ("onnx", "model", r"'onnx' export is one file ending in '.onnx'"),
        ("saved_model", "model.tflite", r"'saved_model' export is a folder"),
    ],
)
def test_a_path_that_does_not_suit_the_format(finetuner, tmp_path, format, path, match):
    with pytest.raises(ValueError, match=match) as error:
        finetuner.export(tmp_path / path, format)
    one_line(error)


def test_an_existing_export_is_never_overwritten_unless_asked(finetuner, tmp_path):
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="Pass overwrite=True") as error:
        finetuner.export(onnx_path, "onnx")
    one_line(error)
    assert onnx_path.read_bytes() == b"keep me"

    # The labels file beside a LiteRT model counts as part of it.
    (tmp_path / "model.tflite.json").write_text("keep me")
    with pytest.raises(FileExistsError, match="model.tflite.json already exists"):
        finetuner.export(tmp_path / "model.tflite", "litert")
    assert not (tmp_path / "model.tflite").exists()


def test_overwrite_replaces_a_saved_model_folder_whole(finetuner, tmp_path):
    path = tmp_path / "exported"
    path.mkdir()
    (path / "stale.txt").write_text("from an earlier export")
    with pytest.raises(FileExistsError):
        finetuner.export(path)
    finetuner.export(path, overwrite=True)
    assert not (path / "stale.txt").exists()
    assert (path / "saved_model.pb").is_file()
    assert tk.export.read_export_info(path).class_names == ["cat", "dog", "bird"]
    assert sorted(item.name for item in tmp_path.iterdir()) == ["exported"]


def test_only_transferkit_classifiers_export(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten()], name="plain")
    with pytest.raises(ValueError, match=r"Received a Keras Sequential named 'plain'") as error:
        tk.export.export_model(model, tmp_path / "model")
    one_line(error)
    with pytest.raises(ValueError, match=r"no model yet: call fit\(\) or build\(\) first"):
        tk.FineTuner("mobilenet", weights=None).export(tmp_path / "model")


@keras.saving.register_keras_serializable(package="transferkit_tests")
class Inverse(keras.layers.Layer):
    """Adds the inverse of a small matrix made from the features: an op LiteRT and ONNX lack."""

    def call(self, x):
        matrix = keras.ops.einsum("bhwi,bhwj->bij", x, x) + keras.ops.eye(x.shape[-1])
        return x + keras.ops.mean(keras.ops.linalg.inv(matrix))


@pytest.mark.parametrize("format, name", [("litert", "LiteRT"), ("onnx", "ONNX")])
def test_a_failed_conversion_names_the_layer_and_op_and_leaves_nothing(format, name, tmp_path):
    if format == "onnx":
        pytest.importorskip("tf2onnx", reason="ONNX export comes with transferkit[export]")
    finetuner = tk.FineTuner.from_model(tiny_classifier(middle=Inverse(name="inverse")))
    path = tmp_path / f"model{'.tflite' if format == 'litert' else '.onnx'}"
    with pytest.raises(tk.export.ConversionError) as error:
        finetuner.export(path, format, check=smooth_images(4))
    message = one_line(error)
    assert message.startswith(f"Could not export to {name}: layer 'inverse' uses the op")
    assert "MatrixInverse" in message and message.endswith("Nothing was written.")
    assert (error.value.layer, error.value.op) == ("inverse", "MatrixInverse")
    assert list(tmp_path.iterdir()) == []


def test_without_the_export_extra_the_error_says_what_to_install(finetuner, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(ImportError, match=r'needs tf2onnx.*pip install "transferkit\[export\]"'):
        finetuner.export(tmp_path / "model.onnx", "onnx")
    assert list(tmp_path.iterdir()) == []


def test_read_export_info_refuses_what_transferkit_did_not_write(tmp_path):
    with pytest.raises(FileNotFoundError, match="No exported model"):
        tk.export.read_export_info(tmp_path / "missing.onnx")
    (tmp_path / "other.tflite").write_bytes(b"\0")
    with pytest.raises(FileNotFoundError, match="No other.tflite.json beside"):
        tk.export.read_export_info(tmp_path / "other.tflite")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="not a SavedModel written by transferkit"):
        tk.export.read_export_info(tmp_path / "folder")
    (tmp_path / "model.keras").write_bytes(b"\0")
    with pytest.raises(ValueError, match="pass a SavedModel folder, a .tflite or an .onnx"):
        tk.export.read_export_info(tmp_path / "model.keras")


def test_each_format_reports_its_inputs_and_outputs_in_the_info(finetuner, tmp_path):
    finetuner.export(tmp_path / "model.tflite", "litert")
    info = tk.export.read_export_info(tmp_path / "model.tflite")
    assert tk.export.ExportInfo.from_json(info.to_json()) == info
    assert np.array_equal(info.image_size, finetuner.image_size)

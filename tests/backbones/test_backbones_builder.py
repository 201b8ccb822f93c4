import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

from transferkit.backbones import BACKBONES, WeightsDownloadError, build_backbone

# Building every backbone takes minutes, so the default run builds a few that cover
# the different constructor arguments (alpha, include_preprocessing, min_size 71);
# the rest run under `-m slow`.
QUICK_BUILDS = {
    "vgg16",
    "mobilenet",
    "mobilenetv3small",
    "efficientnetv2b0",
    "convnexttiny",
    "xception",
}


def _marked(name):
    return name if name in QUICK_BUILDS else pytest.param(name, marks=pytest.mark.slow)


@pytest.fixture(autouse=True)
def _fresh_session():
    yield
    # The largest backbones hold over a gigabyte of variables each.
    keras.backend.clear_session()


def _weights_equal(first, second):
    return all(
        np.array_equal(a, b)
        for a, b in zip(first.get_weights(), second.get_weights(), strict=True)
    )


@pytest.mark.parametrize("name", [_marked(name) for name in sorted(BACKBONES)])
def test_builds_every_backbone_at_its_smallest_size(name):
    spec = BACKBONES[name]
    size = spec.min_size
    model, returned_spec = build_backbone(name, weights=None, input_shape=(size, size, 3))
    assert returned_spec is spec
    assert model.input_shape == (None, size, size, 3)
    # Building a functional model already runs every layer on symbolic inputs, so a
    # feature map of static shape here means the architecture works at this size.
    batch, height, width, channels = model.output_shape
    assert batch is None and min(height, width, channels) >= 1


def test_default_input_shape_is_the_default_size():
    model, spec = build_backbone("mobilenetv2", weights=None)
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 7, 7, 1280)
    assert spec.preprocessing == "tf"


def test_rejects_input_shape_below_min_size():
    expected = r"'xception' needs images of at least 71x71.*input_shape=\(64, 80, 3\)"
    with pytest.raises(ValueError, match=expected) as info:
        build_backbone("xception", weights=None, input_shape=(64, 80, 3))
    assert "such as (71, 80, 3)" in str(info.value)


def test_rejects_two_channels():
    with pytest.raises(ValueError, match=r"must end with 3 channels.*input_shape=\(32, 32, 2\)"):
        build_backbone("mobilenet", weights=None, input_shape=(32, 32, 2))


@pytest.mark.parametrize("input_shape", [(32, 32), (None, None, 3), 32, (32.0, 32, 3)])
def test_rejects_malformed_input_shape(input_shape):
    with pytest.raises(ValueError, match=r"tuple of 3 integers.*Received: input_shape="):
        build_backbone("mobilenet", weights=None, input_shape=input_shape)


def test_rejects_unknown_backbone_name():
    with pytest.raises(
        ValueError, match=r"Unknown backbone 'mobilnet'\. Did you mean 'mobilenet'"
    ):
        build_backbone("mobilnet", weights=None)


def test_rejects_other_backbone_types():
    with pytest.raises(TypeError, match=r"Received: backbone of type int"):
        build_backbone(50, weights=None)


def test_rejects_other_weights_types():
    with pytest.raises(TypeError, match=r"Received: weights=True of type bool"):
        build_backbone("mobilenet", weights=True)


# === Weights files ===


@pytest.fixture
def mobilenet_weights(tmp_path):
    model, _ = build_backbone("mobilenet", weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "mobilenet_notop.weights.h5"
    model.save_weights(path)
    return model, path


def test_weights_file_round_trip(mobilenet_weights):
    saved, path = mobilenet_weights
    loaded, _ = build_backbone("mobilenet", weights=path, input_shape=(32, 32, 3))
    assert _weights_equal(loaded, saved)
    images = np.random.default_rng(0).uniform(-1, 1, size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(images)),
        keras.ops.convert_to_numpy(saved(images)),
        atol=1e-6,
    )


def test_weights_file_loads_at_another_input_size(mobilenet_weights):
    saved, path = mobilenet_weights
    loaded, _ = build_backbone("mobilenet", weights=str(path), input_shape=(96, 64, 3))
    assert loaded.input_shape == (None, 96, 64, 3)
    assert _weights_equal(loaded, saved)


def test_missing_weights_file(tmp_path):
    missing = tmp_path / "nowhere.weights.h5"
    with pytest.raises(
        FileNotFoundError,
        match=r"Weights file not found: '.*nowhere\.weights\.h5'.*'imagenet'.*None",
    ):
        build_backbone("mobilenet", weights=missing, input_shape=(32, 32, 3))


def test_weights_of_another_backbone(tmp_path):
    vgg, _ = build_backbone("vgg16", weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "vgg16.weights.h5"
    vgg.save_weights(path)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ValueError) as info:
        warnings.simplefilter("always")
        build_backbone("mobilenet", weights=path, input_shape=(32, 32, 3))
    message = str(info.value)
    assert "vgg16.weights.h5' does not fit backbone 'mobilenet'" in message
    assert "input_shape=(32, 32, 3)" in message
    assert "Keras said: ValueError: A total of" in message
    assert "List of objects" not in message
    # Keras's one-warning-per-layer flood is replaced by the error above.
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("filename", ["junk.weights.h5", "junk.txt"])
def test_file_that_is_not_a_weights_file(tmp_path, filename):
    path = tmp_path / filename
    path.write_text("not weights")
    with pytest.raises(
        ValueError, match=rf"{filename}' does not fit backbone 'vgg16'.*Keras said: "
    ):
        build_backbone("vgg16", weights=path, input_shape=(32, 32, 3))


# === Models of your own ===


def _small_model(name="my_backbone"):
    inputs = keras.Input(shape=(48, 48, 3))
    outputs = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    return keras.Model(inputs, outputs, name=name)


def test_custom_model_is_returned_as_is():
    model = _small_model()
    returned, spec = build_backbone(model)
    assert returned is model
    assert (spec.name, spec.application, spec.preprocessing, spec.family) == (
        "my_backbone",
        "Functional",
        "none",
        "custom",
    )
    assert (spec.default_size, spec.min_size) == (48, 32)


def test_custom_model_with_dynamic_size_defaults_to_224():
    inputs = keras.Input(shape=(None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    assert build_backbone(model, weights=None)[1].default_size == 224


def test_custom_model_loads_a_weights_file(tmp_path):
    source = _small_model()
    path = tmp_path / "mine.weights.h5"
    source.save_weights(path)
    target = _small_model()
    assert not _weights_equal(source, target)
    build_backbone(target, weights=path)
    assert _weights_equal(source, target)


def test_custom_model_must_take_images():
    inputs = keras.Input(shape=(10,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs), name="flat")
    with pytest.raises(ValueError, match=r"one batch of images.*'flat'.*input_shape=\(None, 10\)"):
        build_backbone(model)


# === ImageNet download ===


def test_imagenet_download_failure_says_what_to_do(tmp_path):
    # In a fresh process, an empty Keras cache and a proxy nobody listens on make the
    # download fail the same way with or without a network.
    script = textwrap.dedent(
        """
        from transferkit.backbones import build_backbone
        try:
            build_backbone("mobilenet", weights="imagenet", input_shape=(32, 32, 3))
        except Exception as error:
            print(type(error).__name__, isinstance(error, ConnectionError))
            print(error)
            print("CAUSE", repr(error.__cause__))
        else:
            print("DOWNLOADED")
        """
    )
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "KERAS_HOME": str(tmp_path / "keras"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    for variable in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        env[variable] = "http://127.0.0.1:9"
    for variable in ("no_proxy", "NO_PROXY"):
        env.pop(variable, None)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    if "DOWNLOADED" in result.stdout:
        pytest.skip("the download went through despite the unreachable proxy")
    output = result.stdout
    assert "WeightsDownloadError True" in output, output + result.stderr
    assert "ImageNet weights of backbone 'mobilenet' (keras.applications.MobileNet)" in output
    assert "Keras said: URL fetch failure" in output
    assert "weights='/path/to/mobilenet_notop.weights.h5'" in output
    assert "weights=None" in output
    assert "weights=transferkit.offline.mobilenet_imagenet_weights()" in output
    assert "CAUSE Exception('URL fetch failure" in output


def test_weights_download_error_is_a_connection_error():
    assert issubclass(WeightsDownloadError, ConnectionError)

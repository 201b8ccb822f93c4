import keras
import numpy as np
import pytest
import tensorflow as tf

import transferkit.layers  # noqa: F401 (registers the layer for deserialization)
from transferkit.layers import PREPROCESSING_MODES, BackbonePreprocessing

# One application module per mode; each module's preprocess_input is the reference.
REFERENCE_MODULES = {
    "caffe": keras.applications.resnet50,
    "tf": keras.applications.mobilenet,
    "torch": keras.applications.densenet,
    "none": keras.applications.efficientnet,
}


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, size=(2, 12, 10, 3)).astype("float32")


# "scale" takes its factors from a KerasHub preset: tested below and in tests/backbones.
APPLICATION_MODES = [mode for mode in PREPROCESSING_MODES if mode != "scale"]


@pytest.mark.parametrize("mode", APPLICATION_MODES)
def test_matches_keras_preprocess_input(mode, images):
    expected = REFERENCE_MODULES[mode].preprocess_input(images.copy())
    output = BackbonePreprocessing(image_size=(12, 10), mode=mode)(images)
    assert output.dtype == "float32"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(output), expected, atol=1e-4)


def test_modes_differ_from_each_other(images):
    outputs = [
        keras.ops.convert_to_numpy(BackbonePreprocessing((12, 10), mode)(images))
        for mode in APPLICATION_MODES
    ]
    for index, first in enumerate(outputs):
        for second in outputs[index + 1 :]:
            assert not np.allclose(first, second)


def test_resizes_odd_size_bilinearly(images):
    odd = np.random.default_rng(1).uniform(0, 255, size=(2, 37, 23, 3)).astype("float32")
    output = BackbonePreprocessing(image_size=(16, 20), mode="tf")(odd)
    expected = tf.image.resize(odd, (16, 20), method="bilinear", antialias=False) / 127.5 - 1
    assert tuple(output.shape) == (2, 16, 20, 3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(output), expected, atol=1e-5)


def test_right_size_leaves_pixels_unchanged():
    # A checkerboard would be blurred by any resampling that is not the identity.
    board = (np.indices((8, 8)).sum(axis=0) % 2 * 255).astype("float32")
    board = np.repeat(board[None, :, :, None], 3, axis=-1)
    output = BackbonePreprocessing(image_size=(8, 8), mode="none")(board)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(output), board)


def test_uint8_input_gives_float32_same_values(images):
    as_uint8 = images.round().astype("uint8")
    layer = BackbonePreprocessing(image_size=(12, 10), mode="caffe")
    from_uint8 = layer(as_uint8)
    from_float = layer(as_uint8.astype("float32"))
    assert from_uint8.dtype == "float32"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(from_uint8), keras.ops.convert_to_numpy(from_float)
    )


def test_grayscale_is_repeated_to_rgb(images):
    gray = images[..., :1]
    output = BackbonePreprocessing(image_size=(12, 10), mode="tf")(gray)
    rgb = BackbonePreprocessing(image_size=(12, 10), mode="tf")(np.repeat(gray, 3, axis=-1))
    assert tuple(output.shape) == (2, 12, 10, 3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(output), keras.ops.convert_to_numpy(rgb))


def test_single_unbatched_image(images):
    output = BackbonePreprocessing(image_size=(6, 6), mode="torch")(images[0])
    assert tuple(output.shape) == (6, 6, 3)


def test_symbolic_dynamic_shape():
    inputs = keras.Input(shape=(None, None, 3), dtype="uint8")
    outputs = BackbonePreprocessing(image_size=(32, 24), mode="tf")(inputs)
    assert tuple(outputs.shape) == (None, 32, 24, 3)
    assert outputs.dtype == "float32"


def test_runs_inside_tf_data(images):
    layer = BackbonePreprocessing(image_size=(7, 9), mode="caffe")
    dataset = tf.data.Dataset.from_tensor_slices(images.astype("uint8")).batch(2).map(layer)
    batch = next(iter(dataset))
    assert tuple(batch.shape) == (2, 7, 9, 3)
    np.testing.assert_allclose(
        batch.numpy(), keras.ops.convert_to_numpy(layer(images.astype("uint8"))), atol=1e-5
    )


def test_float32_output_under_mixed_precision(images):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        output = BackbonePreprocessing(image_size=(12, 10), mode="tf")(images)
        symbolic = BackbonePreprocessing(image_size=(12, 10))(keras.Input((None, None, 3)))
    finally:
        keras.config.set_dtype_policy(previous)
    assert output.dtype == symbolic.dtype == "float32"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(output),
        keras.applications.mobilenet.preprocess_input(images.copy()),
        atol=1e-5,
    )


@pytest.mark.parametrize("mode", ["bgr", "TF", None])
def test_rejects_unknown_mode(mode):
    with pytest.raises(ValueError, match=r"`mode` must be one of .*Received: mode="):
        BackbonePreprocessing(mode=mode)


@pytest.mark.parametrize("image_size", [(224,), (0, 224), (224.0, 224), "224", (224, 224, 3)])
def test_rejects_bad_image_size(image_size):
    with pytest.raises(ValueError, match=r"`image_size` must be .*Received: image_size="):
        BackbonePreprocessing(image_size=image_size)


def test_int_image_size_means_square():
    assert BackbonePreprocessing(image_size=160).image_size == (160, 160)


def test_rejects_two_channels():
    with pytest.raises(ValueError, match=r"3 channels \(RGB\) or 1.*input_shape=\(1, 8, 8, 2\)"):
        BackbonePreprocessing(image_size=8)(np.zeros((1, 8, 8, 2), "float32"))


def test_config_round_trip():
    layer = BackbonePreprocessing(image_size=(160, 128), mode="torch", name="prep")
    restored = BackbonePreprocessing.from_config(layer.get_config())
    assert restored.image_size == (160, 128)
    assert restored.mode == "torch"
    assert restored.name == "prep"
    assert restored.get_config() == layer.get_config()


def test_keras_file_round_trip_without_custom_objects(tmp_path, images):
    inputs = keras.Input(shape=(None, None, 3))
    x = BackbonePreprocessing(image_size=(8, 8), mode="caffe")(inputs)
    outputs = keras.layers.Conv2D(2, 3)(x)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    layer = restored.layers[1]
    assert isinstance(layer, BackbonePreprocessing)
    assert (layer.image_size, layer.mode) == ((8, 8), "caffe")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored(images)),
        keras.ops.convert_to_numpy(model(images)),
        atol=1e-5,
    )


def test_scale_mode_applies_a_presets_scale_and_offset_per_channel(images):
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    layer = BackbonePreprocessing((12, 10), "scale", scale=1 / (255 * std), offset=-mean / std)
    expected = keras.applications.densenet.preprocess_input(images.copy())  # the same maths
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(images)), expected, atol=1e-4)
    restored = BackbonePreprocessing.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()
    assert "scale" not in BackbonePreprocessing((12, 10), "tf").get_config()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "scale"},
        {"mode": "tf", "scale": 2.0},
        {"mode": "scale", "scale": [1.0, 2.0]},
        {"mode": "tf", "interpolation": "area"},
    ],
)
def test_scale_arguments_are_checked(kwargs):
    with pytest.raises(ValueError):
        BackbonePreprocessing((12, 10), **kwargs)

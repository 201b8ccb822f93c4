"""The tiny KerasHub presets of `hub_presets.py` load offline and give back what was saved."""

import json

import keras
import numpy as np
import pytest
from hub_presets import FAMILIES, build_tiny_backbone, write_tiny_preset

keras_hub = pytest.importorskip("keras_hub")

# KerasHub's Swin passes its attention mask positionally; Keras warns that the layer
# drops it, which is harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:Layer 'attn' .* mask:UserWarning")


@pytest.fixture(autouse=True)
def _fresh_session():
    yield
    keras.backend.clear_session()


@pytest.fixture(scope="module")
def preset_folder(tmp_path_factory):
    """`preset_folder(family)` -> the family's default tiny preset, written once a module."""
    written = {}

    def folder(family):
        if family not in written:
            written[family] = write_tiny_preset(family, tmp_path_factory.mktemp(family))
        return written[family]

    return folder


def _images(size, seed=0, count=2):
    pixels = np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3))
    return pixels.astype("float32")


def _features(backbone, spec, images):
    inputs = {spec.input_name: images} if spec.input_name else images
    return keras.ops.convert_to_numpy(backbone(inputs, training=False))


def test_families_are_the_ones_transferkit_supports():
    assert sorted(FAMILIES) == [
        "deit",
        "dinov2",
        "dinov3",
        "efficientnet",
        "mobilenetv3",
        "resnet",
        "swin",
        "vit",
    ]
    assert {spec.output_rank for spec in FAMILIES.values()} == {3, 4}
    assert FAMILIES["deit"].prefix_tokens == 2
    assert FAMILIES["dinov3"].prefix_tokens == 5


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_preset_reloads_offline_with_identical_outputs(family, preset_folder):
    spec = FAMILIES[family]
    folder = preset_folder(family)
    assert {"config.json", "metadata.json", "model.weights.h5", "image_converter.json"} <= {
        path.name for path in folder.iterdir()
    }

    loaded = keras_hub.models.Backbone.from_preset(str(folder))
    converter = keras_hub.layers.ImageConverter.from_preset(str(folder))
    assert type(loaded).__name__ == spec.backbone_class
    assert type(converter).__name__ == spec.converter_class

    # Raw pixels of another size go through the converter, as a user's images would.
    images = keras.ops.convert_to_numpy(converter(_images(spec.image_size + 8)))
    assert images.shape == (2, spec.image_size, spec.image_size, 3)
    features = _features(loaded, spec, images)
    assert features.shape == (2, *spec.output_shape())
    assert features.ndim == spec.output_rank

    # The same seed builds the same weights, so a fresh build is what was saved.
    np.testing.assert_array_equal(features, _features(build_tiny_backbone(family), spec, images))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_converter_normalizes_as_the_familys_presets(family, preset_folder):
    spec = FAMILIES[family]
    folder = preset_folder(family)
    config = json.loads((folder / "image_converter.json").read_text())["config"]
    assert config["image_size"] == [spec.image_size, spec.image_size]
    np.testing.assert_allclose(config["scale"], spec.scale)
    np.testing.assert_allclose(config["offset"], spec.offset)

    converter = keras_hub.layers.ImageConverter.from_preset(str(folder))
    # A pixel of exactly the mean colour maps to 0 in every channel.
    mean_pixel = np.array(spec.mean, "float32") * 255
    image = np.broadcast_to(mean_pixel, (1, spec.image_size, spec.image_size, 3))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(converter(image)), 0, atol=1e-5)


def test_vit_uses_minus_one_to_one_and_the_others_imagenet_statistics():
    np.testing.assert_allclose(FAMILIES["vit"].scale, [1 / 127.5] * 3)
    np.testing.assert_allclose(FAMILIES["vit"].offset, [-1.0] * 3)
    np.testing.assert_allclose(
        FAMILIES["dinov2"].offset, [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]
    )


def test_batch_norm_statistics_are_not_the_initial_ones():
    backbone = build_tiny_backbone("mobilenetv3")
    norms = [
        layer
        for layer in backbone._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert norms
    for layer in norms:
        assert not np.allclose(keras.ops.convert_to_numpy(layer.moving_mean), 0)
        assert not np.allclose(keras.ops.convert_to_numpy(layer.moving_variance), 1)


@pytest.mark.parametrize("family", ["vit", "dinov2", "resnet"])
def test_image_size_sets_the_backbone_and_converter_size(family, tmp_path):
    spec = FAMILIES[family]
    folder = write_tiny_preset(family, tmp_path / family, image_size=48)
    converter = keras_hub.layers.ImageConverter.from_preset(str(folder))
    assert tuple(converter.image_size) == (48, 48)
    loaded = keras_hub.models.Backbone.from_preset(str(folder))
    features = _features(loaded, spec, keras.ops.convert_to_numpy(converter(_images(40))))
    assert features.shape == (2, *spec.output_shape(48))


def test_overrides_replace_the_tiny_config(tmp_path):
    folder = write_tiny_preset("dinov2", tmp_path / "registers", num_register_tokens=4)
    loaded = keras_hub.models.Backbone.from_preset(str(folder))
    assert loaded.num_register_tokens == 4
    features = _features(loaded, FAMILIES["dinov2"], _images(32))
    assert features.shape == (2, 1 + 4 + 16, 16)


def test_unknown_family_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"family='convnext'.*'deit'"):
        write_tiny_preset("convnext", tmp_path)

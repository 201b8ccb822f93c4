import keras
import pytest

from transferkit.schedules import backbone_blocks


def names(block):
    return {layer.name for layer in block}


def test_resnet50_blocks_are_its_residual_blocks():
    backbone = keras.applications.ResNet50(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    )
    blocks = backbone_blocks(backbone)
    # Stem, then 3 + 4 + 6 + 3 bottleneck blocks.
    assert len(blocks) == 17
    assert "conv1_conv" in names(blocks[0])
    for block in blocks[1:]:
        prefixes = {name.split("_")[0] + "_" + name.split("_")[1] for name in names(block)}
        assert len(prefixes) == 1, prefixes  # never two residual blocks in one
        assert any(name.endswith("_out") for name in names(block))  # the residual add closes it
    assert "conv5_block3_out" in names(blocks[-1])


def test_mobilenetv2_blocks_are_inverted_residual_blocks():
    backbone = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    )
    blocks = backbone_blocks(backbone)
    assert any({"block_3_expand", "block_3_project_BN"} <= names(b) for b in blocks)
    for block in blocks:
        numbered = {n.split("_")[1] for n in names(block) if n.startswith("block_")}
        assert len(numbered) <= 1
    # The final 1x1 conv joins the last block rather than standing alone.
    assert {"block_16_project", "Conv_1"} <= names(blocks[-1])


def test_every_layer_is_in_exactly_one_block():
    backbone = keras.applications.MobileNet(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    )
    blocks = backbone_blocks(backbone)
    flat = [layer.name for block in blocks for layer in block]
    expected = [layer.name for layer in backbone.layers[1:]]
    assert sorted(flat) == sorted(expected) and len(flat) == len(set(flat))
    assert len(blocks) == 14  # stem + 13 depthwise-separable blocks


@pytest.mark.parametrize(
    "application, kwargs, expected",
    [
        ("InceptionV3", {"input_shape": (75, 75, 3)}, 11),
        ("VGG16", {}, 5),
        ("EfficientNetB0", {}, 17),
    ],
)
def test_other_families(application, kwargs, expected):
    kwargs.setdefault("input_shape", (32, 32, 3))
    backbone = getattr(keras.applications, application)(include_top=False, weights=None, **kwargs)
    assert len(backbone_blocks(backbone)) == expected


def test_a_model_without_block_names_gets_one_block_per_weighted_layer():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(4, 3)(x)
    blocks = backbone_blocks(keras.Model(inputs, x))
    assert [len(block) for block in blocks] == [1, 1]

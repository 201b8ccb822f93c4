"""Tiny KerasHub presets written to a folder, for tests that must not download anything.

`write_tiny_preset(family, folder)` builds a KerasHub image backbone of the family's
architecture, a few thousand weights with a fixed seed, and saves it the way a real preset
is laid out: `config.json`, `metadata.json` and `model.weights.h5` from
`backbone.save_to_preset`, and `image_converter.json` from the family's own
`ImageConverter` subclass, with the normalization that family's real presets use. Both
`keras_hub.models.Backbone.from_preset(str(folder))` and
`keras_hub.layers.ImageConverter.from_preset(str(folder))` then read it offline.

Each backbone builds in well under 2 s on two CPU cores. BatchNormalization layers get
moving statistics far from their initial 0 and 1, so a model that runs them in
training mode, or loses them on reload, gives other outputs.

keras_hub is imported only when a preset is written: `FAMILIES` can be read, and this
module imported, where keras_hub is not installed.
"""

import dataclasses
import pathlib

import numpy as np

SEED = 1234
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class TinyFamily:
    """What a tiny preset of one family looks like from outside.

    Attributes:
        name: str. The family's key in `FAMILIES`, as `write_tiny_preset` takes it.
        backbone_class: str. The `keras_hub.models` class that the preset's config names.
        converter_class: str. The `keras_hub.layers` ImageConverter subclass saved with it.
        input_name: str or None. The key of the backbone's dict input
            (`backbone({"images": x})`), or None when it takes the image tensor itself.
        output_rank: int. 3 for tokens `(batch, tokens, dim)`, 4 for a feature map
            `(batch, height, width, channels)`.
        prefix_tokens: int. Tokens before the patch tokens: class, distillation and
            register tokens. 0 for feature maps, and for Swin, which has no class token.
        patch_size: int or None. Pixels per patch side; None for convolutional families.
        num_blocks: int. The repeated blocks of the tiny config: transformer blocks, or
            residual (inverted-residual) blocks of the convolutional families.
        fixed_image_shape: bool. Whether the backbone is built for one image size (its
            config holds `image_shape=(size, size, 3)`), as every transformer family is;
            the convolutional presets keep `(None, None, 3)`, as the real ones do.
        mean: tuple of 3 floats. The per-channel mean, on [0, 1] pixels, that the
            family's real presets normalize with.
        std: tuple of 3 floats. The matching per-channel standard deviation.
        image_size: int. The default square image side of the tiny preset.
    """

    name: str
    backbone_class: str
    converter_class: str
    input_name: str | None
    output_rank: int
    prefix_tokens: int
    patch_size: int | None
    num_blocks: int
    fixed_image_shape: bool
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    image_size: int = 32

    @property
    def scale(self):
        """The converter's per-channel scale, for pixels in [0, 255]: 1 / 255 / std."""
        return tuple(1.0 / 255.0 / s for s in self.std)

    @property
    def offset(self):
        """The converter's per-channel offset after scaling: -mean / std."""
        return tuple(-m / s for m, s in zip(self.mean, self.std, strict=True))

    def output_shape(self, image_size=None):
        """The tiny backbone's output shape, without the batch axis, at `image_size`."""
        size = image_size or self.image_size
        config = _backbone_config(self.name, size)
        if self.name == "swin":
            # Every stage after the first halves the grid and doubles the width.
            merges = len(config["depths"]) - 1
            grid = size // self.patch_size // 2**merges
            return (grid * grid, config["embed_dim"] * 2**merges)
        if self.output_rank == 3:
            return (self.prefix_tokens + (size // self.patch_size) ** 2, config["hidden_dim"])
        halvings, channels = _FEATURE_MAPS[self.name]
        side = size
        for _ in range(halvings):
            side = -(-side // 2)  # Each stride-2 step pads, so odd sides round up.
        return (side, side, channels)


FAMILIES = {
    family.name: family
    for family in (
        # ViT presets keep Google's [-1, 1] scaling: mean = std = 0.5.
        TinyFamily(
            name="vit",
            backbone_class="ViTBackbone",
            converter_class="ViTImageConverter",
            input_name=None,
            output_rank=3,
            prefix_tokens=1,
            patch_size=8,
            num_blocks=2,
            fixed_image_shape=True,
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
        ),
        TinyFamily(
            name="deit",
            backbone_class="DeiTBackbone",
            converter_class="DeiTImageConverter",
            input_name=None,
            output_rank=3,
            prefix_tokens=2,
            patch_size=8,
            num_blocks=2,
            fixed_image_shape=True,
        ),
        TinyFamily(
            name="dinov2",
            backbone_class="DINOV2Backbone",
            converter_class="DINOV2ImageConverter",
            input_name="images",
            output_rank=3,
            prefix_tokens=1,
            patch_size=8,
            num_blocks=2,
            fixed_image_shape=True,
        ),
        TinyFamily(
            name="dinov3",
            backbone_class="DINOV3Backbone",
            converter_class="DINOV3ImageConverter",
            input_name="pixel_values",
            output_rank=3,
            prefix_tokens=5,
            patch_size=8,
            num_blocks=2,
            fixed_image_shape=True,
        ),
        TinyFamily(
            name="swin",
            backbone_class="SwinTransformerBackbone",
            converter_class="SwinTransformerImageConverter",
            input_name=None,
            output_rank=3,
            prefix_tokens=0,
            patch_size=4,
            num_blocks=4,
            fixed_image_shape=True,
        ),
        TinyFamily(
            name="efficientnet",
            backbone_class="EfficientNetBackbone",
            converter_class="EfficientNetImageConverter",
            input_name=None,
            output_rank=4,
            prefix_tokens=0,
            patch_size=None,
            num_blocks=3,
            fixed_image_shape=False,
        ),
        TinyFamily(
            name="mobilenetv3",
            backbone_class="MobileNetBackbone",
            converter_class="MobileNetImageConverter",
            input_name=None,
            output_rank=4,
            prefix_tokens=0,
            patch_size=None,
            num_blocks=3,
            fixed_image_shape=False,
        ),
        TinyFamily(
            name="resnet",
            backbone_class="ResNetBackbone",
            converter_class="ResNetImageConverter",
            input_name=None,
            output_rank=4,
            prefix_tokens=0,
            patch_size=None,
            num_blocks=2,
            fixed_image_shape=False,
        ),
    )
}

# Resizing as each family's converted presets do it (keras-hub's conversion scripts and
# its timm and transformers loaders): converter arguments beside image_size, scale, offset.
_RESIZING = {
    "vit": {"interpolation": "bilinear"},
    "deit": {"interpolation": "bicubic", "antialias": True, "crop_to_aspect_ratio": False},
    "dinov2": {"interpolation": "bicubic"},
    "dinov3": {"interpolation": "bilinear", "antialias": True, "crop_to_aspect_ratio": False},
    "swin": {"interpolation": "bicubic", "crop_to_aspect_ratio": False},
    "efficientnet": {"interpolation": "bicubic"},
    "mobilenetv3": {"interpolation": "bilinear"},
    "resnet": {"interpolation": "bicubic"},
}


def _check_family(family):
    if family not in FAMILIES:
        raise ValueError(
            f"Unknown KerasHub family. Received: family={family!r}; "
            f"expected one of {sorted(FAMILIES)}."
        )


def _backbone_config(family, size):
    """The tiny constructor arguments of `family` at a square `size`."""
    image_shape = (size, size, 3)
    if family == "vit":
        return {
            "image_shape": image_shape,
            "patch_size": 8,
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 16,
            "mlp_dim": 32,
        }
    if family == "deit":
        return {
            "image_shape": image_shape,
            "patch_size": 8,
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 16,
            "intermediate_dim": 32,
        }
    if family == "dinov2":
        # Converted DINOv2 presets store position embeddings for the size they were
        # trained at; building at another image_shape interpolates them.
        return {
            "image_shape": image_shape,
            "position_embedding_shape": (size, size),
            "patch_size": 8,
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 16,
            "intermediate_dim": 32,
            "num_register_tokens": 0,
        }
    if family == "dinov3":
        return {
            "image_shape": image_shape,
            "patch_size": 8,
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 16,
            "intermediate_dim": 32,
            "num_register_tokens": 4,
        }
    if family == "swin":
        # drop_path defaults to 0.1, which draws random masks in training; 0 keeps tiny
        # training tests repeatable.
        return {
            "image_shape": image_shape,
            "patch_size": 4,
            "embed_dim": 8,
            "depths": (2, 2),
            "num_heads": (1, 2),
            "window_size": 4,
            "drop_path": 0.0,
        }
    if family == "efficientnet":
        # The layout of the timm-converted EfficientNet-B0 presets ("v1" blocks), cut to
        # two stacks at half width. num_features keeps its default: get_config drops it,
        # so any other value would not reload.
        return {
            "input_shape": (None, None, 3),
            "stackwise_width_coefficients": [0.5, 0.5],
            "stackwise_depth_coefficients": [1.0, 1.0],
            "stackwise_kernel_sizes": [3, 3],
            "stackwise_num_repeats": [1, 2],
            "stackwise_input_filters": [32, 16],
            "stackwise_output_filters": [16, 24],
            "stackwise_expansion_ratios": [1, 6],
            "stackwise_strides": [1, 2],
            "stackwise_squeeze_and_excite_ratios": [0.25, 0.25],
            "stackwise_block_types": ["v1", "v1"],
            "stackwise_force_input_filters": [0, 0],
            "stackwise_nores_option": [False, False],
            "min_depth": None,
            "include_stem_padding": True,
            "use_depth_divisor_as_min_depth": True,
            "cap_round_filter_decrease": True,
            "stem_conv_padding": "valid",
            "batch_norm_momentum": 0.9,
            "batch_norm_epsilon": 1e-5,
            "dropout": 0.0,
        }
    if family == "mobilenetv3":
        # MobileNetV3-Small's layout (timm mobilenetv3_small_050), one block a stack.
        return {
            "image_shape": (None, None, 3),
            "stackwise_num_blocks": [1, 1],
            "stackwise_expansion": [[16], [32]],
            "stackwise_num_filters": [[8], [16]],
            "stackwise_kernel_size": [[3], [5]],
            "stackwise_num_strides": [[2], [2]],
            "stackwise_se_ratio": [[None], [0.25]],
            "stackwise_activation": [["relu"], ["hard_swish"]],
            "stackwise_padding": [[1], [2]],
            "output_num_filters": 64,
            "input_num_filters": 16,
            "depthwise_filters": 8,
            "depthwise_stride": 2,
            "depthwise_residual": False,
            "squeeze_and_excite": 0.5,
            "last_layer_filter": 32,
            "input_activation": "hard_swish",
            "output_activation": "hard_swish",
        }
    if family == "resnet":
        # ResNetBackbone insists on 64 filters in the first stack.
        return {
            "image_shape": (None, None, 3),
            "input_conv_filters": [64],
            "input_conv_kernel_sizes": [7],
            "stackwise_num_filters": [64, 32],
            "stackwise_num_blocks": [1, 1],
            "stackwise_num_strides": [1, 2],
            "block_type": "basic_block",
        }
    _check_family(family)


# (stride-2 steps, channels) of the convolutional families' output maps.
_FEATURE_MAPS = {
    # Stem, then the second stack; the top conv keeps num_features 1280, at width 0.5.
    "efficientnet": (2, 640),
    # Stem, depthwise block, then both stacks; last_layer_filter is 32.
    "mobilenetv3": (4, 32),
    # Stem conv, max pool, then the second stack.
    "resnet": (3, 32),
}


def build_tiny_backbone(family, image_size=None, **overrides):
    """Builds the tiny backbone of `family` with the fixed seed, unsaved.

    Args:
        family: str. A key of `FAMILIES`.
        image_size: int or None. The square image side. Defaults to the family's
            `image_size`.
        **overrides: Constructor arguments that replace the tiny config's, e.g.
            `num_register_tokens=4` for DINOv2 with registers.

    Returns:
        The `keras_hub.models.Backbone`, with BatchNormalization statistics moved off 0
        and 1.
    """
    import keras
    import keras_hub

    _check_family(family)
    spec = FAMILIES[family]
    config = {**_backbone_config(family, image_size or spec.image_size), **overrides}
    keras.utils.set_random_seed(SEED)
    backbone = getattr(keras_hub.models, spec.backbone_class)(**config)
    _spread_batch_norm_statistics(backbone)
    return backbone


def _spread_batch_norm_statistics(model):
    import keras

    rng = np.random.default_rng(SEED)
    # Most of these families nest their BatchNormalization layers inside block layers.
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0.0, 0.2, channels).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels).astype("float32"))


def build_tiny_converter(family, image_size=None):
    """The family's ImageConverter, normalizing as its real presets do, at `image_size`."""
    import keras_hub

    _check_family(family)
    spec = FAMILIES[family]
    size = image_size or spec.image_size
    return getattr(keras_hub.layers, spec.converter_class)(
        image_size=(size, size),
        scale=list(spec.scale),
        offset=list(spec.offset),
        **_RESIZING[family],
    )


def write_tiny_preset(family, folder, image_size=None, **overrides):
    """Writes a tiny preset of `family` to `folder`, readable offline by KerasHub.

    Args:
        family: str. A key of `FAMILIES`: "vit", "deit", "dinov2", "dinov3", "swin",
            "efficientnet", "mobilenetv3" or "resnet".
        folder: str or path-like. Where the preset goes; created if missing.
        image_size: int or None. The square image side of the backbone (for the
            fixed-size transformer families) and of the converter. Defaults to the
            family's `image_size` (32).
        **overrides: Backbone constructor arguments that replace the tiny config's.

    Returns:
        pathlib.Path: `folder`, holding `config.json`, `metadata.json`,
        `model.weights.h5` and `image_converter.json`.

    Raises:
        ValueError: if `family` is not one of `FAMILIES`; KerasHub's own errors for a
            size its architecture rejects (e.g. ViT's not a multiple of the patch).

    Example:

    ```python
    folder = write_tiny_preset("dinov2", tmp_path / "dinov2")
    backbone = keras_hub.models.Backbone.from_preset(str(folder))
    converter = keras_hub.layers.ImageConverter.from_preset(str(folder))
    ```
    """
    folder = pathlib.Path(folder)
    backbone = build_tiny_backbone(family, image_size, **overrides)
    # The backbone goes first: ImageConverter.from_preset finds its subclass through
    # the backbone class in config.json.
    backbone.save_to_preset(str(folder))
    build_tiny_converter(family, image_size).save_to_preset(str(folder))
    return folder

"""Real-size KerasHub architectures with random weights, for offline speed benchmarks.

KerasHub's built-in presets download their weights; a speed benchmark only needs the
architecture. `CONFIGS` holds the constructor keyword arguments of the backbone and of the
image converter of five built-in presets, as their conversion from the timm and Hugging
Face checkpoints sets them, and `write_preset` saves one of them, with random weights, as a
preset folder that `keras_hub.models.Backbone.from_preset` (and so transferkit) can load
without a network.

    python -m bench.hub_configs     # build each at 224 px, compare with the built-in presets
"""

import tempfile
from pathlib import Path

import keras
import numpy as np

# ImageNet normalisation (timm's IMAGENET_DEFAULT_MEAN and _STD), as the converters write
# it: pixels in [0, 255] times `scale`, plus `offset`.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_SCALE = [1.0 / (255.0 * s) for s in IMAGENET_STD]
IMAGENET_OFFSET = [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]

# The converters of the Hugging Face checkpoints (DeiT, Swin) resize like the Hugging Face
# image processors: bicubic, antialiased, without cropping to the aspect ratio.
HF_BICUBIC = {"interpolation": "bicubic", "antialias": True, "crop_to_aspect_ratio": False}

# name -> (keras_hub backbone class name, constructor kwargs, converter class name,
#          converter kwargs, built-in preset name whose architecture this is)
CONFIGS = {
    # facebook/deit-small-distilled-patch16-224
    # (keras_hub.src.utils.transformers.convert_deit). The
    # backbone holds the class and the distillation token; the two classifier heads of
    # the checkpoint belong to the task. Same count as the preset.
    "deit_small_patch16_224": (
        "DeiTBackbone",
        {
            "image_shape": (224, 224, 3),
            "patch_size": 16,
            "num_layers": 12,
            "num_heads": 6,
            "hidden_dim": 384,
            "intermediate_dim": 1536,
            "dropout_rate": 0.0,
            "attention_dropout": 0.0,
            "layer_norm_epsilon": 1e-12,
        },
        "DeiTImageConverter",
        {
            "image_size": (224, 224),
            "scale": IMAGENET_SCALE,
            "offset": IMAGENET_OFFSET,
            **HF_BICUBIC,
        },
        "deit_small_distilled_patch16_224_imagenet",
    ),
    # google/vit-base-patch16-224 (keras_hub.src.utils.transformers.convert_vit), which keeps the
    # backbone's layer norm epsilon of 1e-6. Google's preprocessing maps pixels to [-1, 1]
    # with bilinear resizing. No pooler, no classifier head: same count as the preset.
    "vit_base_patch16_224": (
        "ViTBackbone",
        {
            "image_shape": (224, 224, 3),
            "patch_size": (16, 16),
            "num_layers": 12,
            "num_heads": 12,
            "hidden_dim": 768,
            "mlp_dim": 3072,
            "dropout_rate": 0.0,
            "attention_dropout": 0.0,
            "layer_norm_epsilon": 1e-6,
            "use_mha_bias": True,
        },
        "ViTImageConverter",
        {
            "image_size": (224, 224),
            "scale": [1.0 / 127.5] * 3,
            "offset": [-1.0] * 3,
            "interpolation": "bilinear",
        },
        "vit_base_patch16_224_imagenet",
    ),
    # microsoft/swin-tiny-patch4-window7-224
    # (keras_hub.src.utils.transformers.convert_swin_transformer).
    # Without the classifier head (768 * 1000 + 1000): same count as the preset.
    # It needs image_size >= 224: the last stage, image_size / 32 wide, must hold a 7 x 7
    # window (at 192 px the window attention fails).
    "swin_tiny_patch4_window7_224": (
        "SwinTransformerBackbone",
        {
            "image_shape": (224, 224, 3),
            "patch_size": 4,
            "embed_dim": 96,
            "depths": (2, 2, 6, 2),
            "num_heads": (3, 6, 12, 24),
            "window_size": 7,
            "mlp_ratio": 4.0,
            "qkv_bias": True,
            "dropout_rate": 0.0,
            "attention_dropout": 0.0,
            "drop_path": 0.1,
            "patch_norm": True,
        },
        "SwinTransformerImageConverter",
        {
            "image_size": (224, 224),
            "scale": IMAGENET_SCALE,
            "offset": IMAGENET_OFFSET,
            **HF_BICUBIC,
        },
        "swin_tiny_patch4_window7_224",
    ),
    # timm/efficientnet_b0.ra_in1k
    # (keras_hub.src.utils.timm.convert_efficientnet, variant "b0"). The
    # backbone ends with the 1280-filter top convolution; the classifier belongs to the
    # task. The preset's count is timm's: trainable weights plus the 1280 -> 1000
    # classifier, without the batch norms' moving statistics (see `PRESET_COUNT`).
    "efficientnet_b0": (
        "EfficientNetBackbone",
        {
            "input_shape": (224, 224, 3),
            "stackwise_width_coefficients": [1.0] * 7,
            "stackwise_depth_coefficients": [1.0] * 7,
            "stackwise_kernel_sizes": [3, 3, 5, 3, 5, 5, 3],
            "stackwise_num_repeats": [1, 2, 2, 3, 3, 4, 1],
            "stackwise_input_filters": [32, 16, 24, 40, 80, 112, 192],
            "stackwise_output_filters": [16, 24, 40, 80, 112, 192, 320],
            "stackwise_expansion_ratios": [1, 6, 6, 6, 6, 6, 6],
            "stackwise_squeeze_and_excite_ratios": [0.25] * 7,
            "stackwise_strides": [1, 2, 2, 2, 1, 2, 1],
            "stackwise_block_types": ["v1"] * 7,
            "min_depth": None,
            "include_stem_padding": True,
            "use_depth_divisor_as_min_depth": True,
            "cap_round_filter_decrease": True,
            "stem_conv_padding": "valid",
            "batch_norm_momentum": 0.9,
            "batch_norm_epsilon": 1e-5,
            "dropout": 0,
            "projection_activation": None,
        },
        "EfficientNetImageConverter",
        {
            "image_size": (224, 224),
            "scale": IMAGENET_SCALE,
            "offset": IMAGENET_OFFSET,
            "interpolation": "bicubic",
        },
        "efficientnet_b0_ra_imagenet",
    ),
    # timm/mobilenetv3_large_100.ra_in1k (keras_hub.src.utils.timm.convert_mobilenet). The backbone
    # ends with the 960-filter convolution; timm's 1280-feature head convolution and the
    # classifier belong to the task. `output_num_filters` is stored but builds nothing.
    # Same count as the preset.
    "mobilenetv3_large_100": (
        "MobileNetBackbone",
        {
            "image_shape": (224, 224, 3),
            "stackwise_num_blocks": [2, 3, 4, 2, 3],
            "stackwise_expansion": [
                [64, 72],
                [72, 120, 120],
                [240, 200, 184, 184],
                [480, 672],
                [672, 960, 960],
            ],
            "stackwise_num_filters": [
                [24, 24],
                [40, 40, 40],
                [80, 80, 80, 80],
                [112, 112],
                [160, 160, 160],
            ],
            "stackwise_kernel_size": [[3, 3], [5, 5, 5], [3, 3, 3, 3], [3, 3], [5, 5, 5]],
            "stackwise_num_strides": [[2, 1], [2, 1, 1], [2, 1, 1, 1], [1, 1], [2, 1, 1]],
            "stackwise_se_ratio": [
                [None, None],
                [0.25, 0.25, 0.25],
                [None, None, None, None],
                [0.25, 0.25],
                [0.25, 0.25, 0.25],
            ],
            "stackwise_activation": [
                ["relu", "relu"],
                ["relu", "relu", "relu"],
                ["hard_swish"] * 4,
                ["hard_swish"] * 2,
                ["hard_swish"] * 3,
            ],
            "stackwise_padding": [[1, 1], [2, 2, 2], [1, 1, 1, 1], [1, 1], [2, 2, 2]],
            "output_num_filters": 1024,
            "input_num_filters": 16,
            "depthwise_filters": 16,
            "depthwise_stride": 1,
            "depthwise_residual": True,
            "squeeze_and_excite": None,
            "last_layer_filter": 960,
            "input_activation": "hard_swish",
            "output_activation": "hard_swish",
        },
        "MobileNetImageConverter",
        {
            "image_size": (224, 224),
            "scale": IMAGENET_SCALE,
            "offset": IMAGENET_OFFSET,
            "interpolation": "bicubic",
        },
        "mobilenet_v3_large_100_imagenet",
    ),
}

# How the built-in presets count their parameters, where it is not `count_params()` of the
# backbone: EfficientNet's is timm's count, trainable weights (no moving mean and variance
# of the batch norms) plus the classifier head, 1280 * 1000 + 1000.
PRESET_COUNT = {
    "efficientnet_b0": (
        "trainable + classifier",
        lambda backbone: _trainable(backbone) + 1_281_000,
    ),
}

SEED = 0


def build(name, image_size=224):
    """The backbone, with random weights (seeded), and the image converter of `CONFIGS[name]`,
    at `image_size` x `image_size` pixels."""
    import keras_hub

    backbone_class, backbone_kwargs, converter_class, converter_kwargs, _ = CONFIGS[name]
    shape_key = "input_shape" if "input_shape" in backbone_kwargs else "image_shape"
    backbone_kwargs = {**backbone_kwargs, shape_key: (image_size, image_size, 3)}
    converter_kwargs = {**converter_kwargs, "image_size": (image_size, image_size)}
    keras.utils.set_random_seed(SEED)
    backbone = getattr(keras_hub.models, backbone_class)(**backbone_kwargs)
    converter = getattr(keras_hub.layers, converter_class)(**converter_kwargs)
    return backbone, converter


def save(backbone, converter, folder):
    """Saves the backbone, then the image converter, into the preset folder `folder`."""
    folder = Path(folder)
    backbone.save_to_preset(str(folder))
    converter.save_to_preset(str(folder))
    return folder


def write_preset(name, folder, image_size=224):
    """Builds `CONFIGS[name]` with random weights (fixed seed) at `image_size` and saves it
    with `backbone.save_to_preset(folder)`, then `converter.save_to_preset(folder)`.

    Returns:
        The preset folder, as a `pathlib.Path`.
    """
    backbone, converter = build(name, image_size)
    return save(backbone, converter, folder)


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _same_weights(a, b):
    return len(a.weights) == len(b.weights) and all(
        np.array_equal(keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y))
        for x, y in zip(a.weights, b.weights, strict=True)
    )


def main():
    import keras_hub
    from keras_hub.src.utils.preset_utils import BUILTIN_PRESETS

    header = (
        f"{'name':<30} {'built-in preset':<42} {'count_params':>12} {'preset':>12}"
        f" {'ratio':>7}  {'preset counts':<24} {'match':<6} reload"
    )
    rows = []
    for name, (_, _, _, _, preset) in CONFIGS.items():
        backbone, converter = build(name)
        built = backbone.count_params()
        what, count = PRESET_COUNT.get(name, ("count_params", keras.Model.count_params))
        compared = count(backbone)
        expected = BUILTIN_PRESETS[preset]["metadata"]["params"]
        with tempfile.TemporaryDirectory() as tmp:
            folder = save(backbone, converter, Path(tmp) / name)
            reloaded = keras_hub.models.Backbone.from_preset(str(folder))
            reloaded_converter = keras_hub.layers.ImageConverter.from_preset(str(folder))
            reloads = (
                type(reloaded) is type(backbone)
                and reloaded.count_params() == built
                and _same_weights(reloaded, backbone)
                and type(reloaded_converter) is type(converter)
                and reloaded_converter.get_config() == converter.get_config()
            )
        match = "yes" if compared == expected else f"{compared / expected:.4f}"
        rows.append(
            f"{name:<30} {preset:<42} {built:>12,} {expected:>12,} {built / expected:>7.4f}"
            f"  {what:<24} {match:<6} {'ok' if reloads else 'FAILED'}"
        )
        del backbone, converter, reloaded, reloaded_converter
        keras.backend.clear_session()
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()

"""The Keras Applications backbones transferkit knows, and what each expects as input."""

import dataclasses
import difflib

from transferkit.layers.image_preprocessing import PREPROCESSING_MODES


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """What transferkit needs to know to build a backbone and feed it.

    Attributes:
        name: str. Lower-case registry name, such as `"resnet50"`.
        application: str. The constructor's name in `keras.applications`, such as
            `"ResNet50"`.
        preprocessing: str. What `keras.applications.<module>.preprocess_input` does
            for this backbone: `"caffe"`, `"tf"`, `"torch"`, or `"none"` when the
            backbone scales its inputs internally. It is the `mode` of
            `transferkit.layers.BackbonePreprocessing`.
        default_size: int. The square input size the ImageNet weights were trained at.
        min_size: int. The smallest height and width the architecture accepts.
        family: str. Architecture family, such as `"resnet"` or `"efficientnetv2"`;
            backbones of a family share layer naming.
        extra_kwargs: tuple of (str, value) pairs. Keyword arguments passed to the
            application besides `include_top`, `weights`, `input_shape` and
            `pooling`. Defaults to `()`.
        source: str. Where the backbone comes from: `"keras.applications"` or
            `"keras_hub"` (a KerasHub preset, see `transferkit.backbones.hub`).
            Defaults to `"keras.applications"`.
        patch_size: int or None. Pixels per patch side of a vision transformer;
            None for a convolutional backbone. Defaults to `None`.
        size_step: int or None. Image sides must be multiples of it (a ViT's
            patch size; a Swin's patch size doubled per patch merge). None: any
            side of at least `min_size`. Defaults to `None`.
        pooling: str. The head pooling that `ClassificationHead(pooling="auto")`
            takes on this backbone (see `ClassificationHead`). Defaults to `"avg"`.
        scale: tuple of 3 floats or None. With `preprocessing="scale"`, the
            per-channel factor raw pixels (0-255) are multiplied by, as the
            preset's image converter does. Defaults to `None`.
        offset: tuple of 3 floats or None. With `preprocessing="scale"`, the
            per-channel term added after scaling. Defaults to `None`.
        interpolation: str. How images of another size are resized inside the
            model: `"bilinear"` or `"bicubic"`. Defaults to `"bilinear"`.
        antialias: bool. Whether downsizing is antialiased. Defaults to `False`.
    """

    name: str
    application: str
    preprocessing: str
    default_size: int
    min_size: int
    family: str
    extra_kwargs: tuple = ()
    source: str = "keras.applications"
    patch_size: int | None = None
    size_step: int | None = None
    pooling: str = "avg"
    scale: tuple | None = None
    offset: tuple | None = None
    interpolation: str = "bilinear"
    antialias: bool = False

    def __post_init__(self):
        if self.preprocessing not in PREPROCESSING_MODES:
            raise ValueError(
                f"`preprocessing` must be one of {PREPROCESSING_MODES}. "
                f"Received: preprocessing={self.preprocessing!r}"
            )


def _spec(application, preprocessing, default_size, family, min_size=32, **extra_kwargs):
    return BackboneSpec(
        name=application.lower(),
        application=application,
        preprocessing=preprocessing,
        default_size=default_size,
        min_size=min_size,
        family=family,
        extra_kwargs=tuple(sorted(extra_kwargs.items())),
    )


# Preprocessing modes and sizes are those of Keras 3's own applications modules; the
# tests check every mode against `keras.applications.<module>.preprocess_input`.
# `alpha=1.0` is Keras's default, spelled out so the registry's MobileNets stay full
# width (that of transferkit's offline MobileNet weights) whatever Keras defaults to
# later; likewise `include_preprocessing=True` keeps the scaling inside those models,
# which is what their "none" preprocessing relies on.
_SPECS = (
    _spec("ResNet50", "caffe", 224, "resnet"),
    _spec("ResNet101", "caffe", 224, "resnet"),
    _spec("ResNet152", "caffe", 224, "resnet"),
    _spec("ResNet50V2", "tf", 224, "resnetv2"),
    _spec("ResNet101V2", "tf", 224, "resnetv2"),
    _spec("ResNet152V2", "tf", 224, "resnetv2"),
    _spec("VGG16", "caffe", 224, "vgg"),
    _spec("VGG19", "caffe", 224, "vgg"),
    _spec("Xception", "tf", 299, "xception", min_size=71),
    _spec("InceptionV3", "tf", 299, "inception", min_size=75),
    _spec("InceptionResNetV2", "tf", 299, "inceptionresnet", min_size=75),
    _spec("MobileNet", "tf", 224, "mobilenet", alpha=1.0),
    _spec("MobileNetV2", "tf", 224, "mobilenetv2", alpha=1.0),
    _spec("MobileNetV3Small", "none", 224, "mobilenetv3", alpha=1.0, include_preprocessing=True),
    _spec("MobileNetV3Large", "none", 224, "mobilenetv3", alpha=1.0, include_preprocessing=True),
    _spec("DenseNet121", "torch", 224, "densenet"),
    _spec("DenseNet169", "torch", 224, "densenet"),
    _spec("DenseNet201", "torch", 224, "densenet"),
    _spec("NASNetMobile", "tf", 224, "nasnet"),
    _spec("NASNetLarge", "tf", 331, "nasnet"),
    # EfficientNet (v1) always rescales and normalizes inside the model.
    _spec("EfficientNetB0", "none", 224, "efficientnet"),
    _spec("EfficientNetB1", "none", 240, "efficientnet"),
    _spec("EfficientNetB2", "none", 260, "efficientnet"),
    _spec("EfficientNetB3", "none", 300, "efficientnet"),
    _spec("EfficientNetB4", "none", 380, "efficientnet"),
    _spec("EfficientNetB5", "none", 456, "efficientnet"),
    _spec("EfficientNetB6", "none", 528, "efficientnet"),
    _spec("EfficientNetB7", "none", 600, "efficientnet"),
    _spec("EfficientNetV2B0", "none", 224, "efficientnetv2", include_preprocessing=True),
    _spec("EfficientNetV2B1", "none", 240, "efficientnetv2", include_preprocessing=True),
    _spec("EfficientNetV2B2", "none", 260, "efficientnetv2", include_preprocessing=True),
    _spec("EfficientNetV2B3", "none", 300, "efficientnetv2", include_preprocessing=True),
    _spec("EfficientNetV2S", "none", 384, "efficientnetv2", include_preprocessing=True),
    _spec("EfficientNetV2M", "none", 480, "efficientnetv2", include_preprocessing=True),
    _spec("EfficientNetV2L", "none", 480, "efficientnetv2", include_preprocessing=True),
    _spec("ConvNeXtTiny", "none", 224, "convnext", include_preprocessing=True),
    _spec("ConvNeXtSmall", "none", 224, "convnext", include_preprocessing=True),
    _spec("ConvNeXtBase", "none", 224, "convnext", include_preprocessing=True),
    _spec("ConvNeXtLarge", "none", 224, "convnext", include_preprocessing=True),
    _spec("ConvNeXtXLarge", "none", 224, "convnext", include_preprocessing=True),
)

BACKBONES: dict[str, BackboneSpec] = {spec.name: spec for spec in _SPECS}


def _normalize_name(name):
    # "ResNet50", "resnet-50" and "efficientnet_v2_b0" all name a registry entry.
    return "".join(char for char in name.lower() if char not in "-_ ")


def get_backbone_spec(name: str) -> BackboneSpec:
    """Returns the registry entry of a backbone.

    Args:
        name: str. The backbone's name, case-insensitive, with or without `-` and
            `_` (`"resnet50"`, `"ResNet50"`, `"efficientnet_v2_b0"`), or a
            KerasHub preset (`"hub:vit_base_patch16_224_imagenet"`,
            `"hf://owner/name"`, `"kaggle://..."`, `"hub:/path/to/folder"`;
            see `transferkit.backbones.hub`).

    Returns:
        The `BackboneSpec` of that backbone.

    Raises:
        TypeError: if `name` is not a string.
        ValueError: if no backbone has that name; the message suggests close names.

    Example:

    ```python
    spec = get_backbone_spec("MobileNetV2")
    spec.preprocessing  # "tf"
    ```
    """
    if not isinstance(name, str):
        raise TypeError(
            f"The backbone name must be a string, such as 'resnet50'. Received: {name!r} "
            f"of type {type(name).__name__}"
        )
    from transferkit.backbones import hub  # hub imports this module

    if hub.is_hub_backbone(name):
        return hub.get_hub_spec(name)
    key = _normalize_name(name)
    if key in BACKBONES:
        return BACKBONES[key]
    close = difflib.get_close_matches(key, BACKBONES, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Unknown backbone {name!r}.{hint} transferkit.list_backbones() lists the "
        f"{len(BACKBONES)} available names; a KerasHub preset is spelled 'hub:<preset>' "
        "(or 'hf://...', a preset folder), and a keras.Model of your own is accepted too."
    )

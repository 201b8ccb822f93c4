"""`build_classifier`: a backbone, its preprocessing and a head, as one `ImageClassifier`."""

import keras

from transferkit.backbones import build_backbone
from transferkit.heads import ClassificationHead
from transferkit.layers import BackbonePreprocessing
from transferkit.models.image_classifier import ImageClassifier, backbone_input
from transferkit.utils.log import logger


def build_classifier(
    backbone: str | keras.Model,
    head: ClassificationHead,
    class_names: list[str],
    *,
    weights=None,
    input_shape: tuple[int, int, int] | None = None,
    multi_label: bool = False,
    image_size: tuple[int, int] | None = None,
) -> ImageClassifier:
    """Builds the backbone (with its weights), a head for `class_names` and the preprocessing.

    Call it inside a strategy's scope to mirror every variable. The log says
    what was built.

    Args:
        backbone: str or `keras.Model`. A registry name or your own backbone.
        head: `ClassificationHead`. Its settings; the classes are filled in.
        class_names: list of str. The classes, in output order.
        weights: As `FineTuner`'s `weights`. Defaults to `None`.
        input_shape: tuple or None. The backbone's input shape. Defaults to
            the backbone's own.
        multi_label: bool. Defaults to `False`.
        image_size: tuple or None. The size to resize to when the backbone
            takes any size. Defaults to `None`: the backbone's default size.

    Returns:
        The `ImageClassifier` (its backbone's trainable flags as built).
    """
    backbone, spec = build_backbone(backbone, weights=weights, input_shape=input_shape)
    size = tuple(backbone_input(backbone).shape[1:3])
    if None in size:
        size = image_size or (spec.default_size, spec.default_size)
    head = head.with_classes(
        len(class_names),
        list(class_names),
        name="head",
        multi_label=multi_label,
        pooling=spec.pooling,
        prefix_tokens=prefix_tokens(backbone, spec, size),
    )
    preprocessor = BackbonePreprocessing(
        image_size=size,
        mode=spec.preprocessing,
        scale=spec.scale,
        offset=spec.offset,
        interpolation=spec.interpolation,
        antialias=spec.antialias,
        name="preprocessing",
    )
    model = ImageClassifier(backbone, head, preprocessor)
    pooling = f", pooling {model.head.pooling!r}" if spec.source == "keras_hub" else ""
    logger.info(
        f"built {spec.name} ({backbone.count_params():,} parameters, input "
        f"{size[0]}x{size[1]}, preprocessing {spec.preprocessing!r}{pooling}) with a "
        f"{len(class_names)}-class {'multi-label ' if multi_label else ''}head "
        f"{list(class_names)}"
    )
    return model


def prefix_tokens(backbone, spec, size) -> int | None:
    """Tokens before the patch tokens of a transformer's output; None for a feature map."""
    shape = backbone.output_shape
    if len(shape) != 3:
        return None
    if not spec.patch_size:
        return 0
    if spec.family == "swin":
        return 0  # patch tokens only, on the last stage's grid
    patches = (size[0] // spec.patch_size) * (size[1] // spec.patch_size)
    return int(shape[1]) - patches

"""Builds a backbone (a Keras Applications model without its top) with its weights."""

import numbers
import os

import keras

from transferkit.backbones import hub
from transferkit.backbones.registry import BackboneSpec, get_backbone_spec
from transferkit.backbones.weights import (
    WeightsDownloadError,
    download_imagenet_backbone,
    load_weights_file,
    weights_file_path,
)

# WeightsDownloadError lives with the weights code; it is importable from here too.
__all__ = ["WeightsDownloadError", "build_backbone"]


def build_backbone(
    backbone: str | keras.Model = "resnet50",
    weights: str | os.PathLike | None = "imagenet",
    input_shape: tuple[int, int, int] | None = None,
) -> tuple[keras.Model, BackboneSpec]:
    """Builds a feature extractor: a Keras Applications model without its classifier.

    The model is `keras.applications.<Application>(include_top=False,
    pooling=None, ...)`: it outputs a 4-D feature map, and expects inputs
    preprocessed as `spec.preprocessing` says (see
    `transferkit.layers.BackbonePreprocessing`).

    Args:
        backbone: str or `keras.Model`. A registry name (see
            `transferkit.list_backbones()`), case-insensitive; a KerasHub
            preset (`"hub:<preset>"`, `"hf://owner/name"`, `"kaggle://..."` or
            `"hub:<folder>"`, see `transferkit.backbones.hub`); or a model of your
            own, returned as is with a spec of family `"custom"` and preprocessing
            `"none"` (feed it what it expects). Defaults to `"resnet50"`.
        weights: str, path or None. `"imagenet"` for Keras's ImageNet weights
            (for a KerasHub preset: the preset's own weights)
            (downloaded once, then cached by Keras), `None` for random
            initialization (training from scratch), or the path of a weights file
            (`.weights.h5`, `.keras`, or legacy `.h5`) saved from the same
            application without its top, at any input size. For a model of your
            own, a path is loaded into it, while `"imagenet"` and `None` leave it
            as it is. Defaults to `"imagenet"`.
        input_shape: tuple of 3 ints, or None. `(height, width, 3)` of the input
            images; at least `spec.min_size` on each side. Defaults to the
            backbone's `(default_size, default_size, 3)`.

    Returns:
        A tuple `(model, spec)`: the `keras.Model` and its `BackboneSpec`.

    Raises:
        ValueError: if the name is unknown, `input_shape` is invalid, or the
            weights file does not fit the backbone.
        FileNotFoundError: if `weights` names a file that does not exist.
        WeightsDownloadError: if the ImageNet weights cannot be downloaded.
        TypeError: if `backbone` or `weights` has an unsupported type.

    Example:

    ```python
    model, spec = build_backbone("mobilenet", weights=None, input_shape=(160, 160, 3))
    model.output.shape  # (None, 5, 5, 1024)
    spec.preprocessing  # "tf"
    ```
    """
    _check_weights_type(weights)
    if isinstance(backbone, keras.Model):
        return _custom_backbone(backbone, weights)
    if not isinstance(backbone, str):
        raise TypeError(
            "`backbone` must be a registry name (str), such as 'resnet50', or a "
            f"keras.Model. Received: backbone of type {type(backbone).__name__}"
        )
    if hub.is_hub_backbone(backbone):
        spec = hub.get_hub_spec(backbone)
        shape = None if input_shape is None else _standardize_input_shape(input_shape, spec)
        return hub.build_hub_backbone(backbone, weights, shape, spec=spec)
    spec = get_backbone_spec(backbone)
    input_shape = _standardize_input_shape(input_shape, spec)
    application = getattr(keras.applications, spec.application)
    kwargs = dict(spec.extra_kwargs)
    # NASNet only loads ImageNet weights for a fully static input shape, and MobileNet
    # picks its weights file from it: a static (height, width, 3) suits them all.
    kwargs.update(include_top=False, input_shape=input_shape, pooling=None)
    if weights is None:
        return application(weights=None, **kwargs), spec
    if weights == "imagenet":
        return download_imagenet_backbone(application, spec, kwargs), spec
    path = weights_file_path(weights)
    # Applications would load the file themselves, but building without weights and
    # loading here gives every application the same checks and error messages.
    model = application(weights=None, **kwargs)
    load_weights_file(model, path, backbone=spec.name, input_shape=input_shape)
    return model, spec


def _check_weights_type(weights):
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            "`weights` must be 'imagenet', None, or the path of a weights file. "
            f"Received: weights={weights!r} of type {type(weights).__name__}"
        )


def _custom_backbone(model, weights):
    input_shape = model.input_shape
    if isinstance(input_shape, list) or len(input_shape) != 4:
        raise ValueError(
            "A keras.Model used as backbone must take one batch of images, of shape "
            f"(batch, height, width, channels). Received a model {model.name!r} with "
            f"input_shape={input_shape}"
        )
    if weights is not None and weights != "imagenet":
        path = weights_file_path(weights)
        load_weights_file(model, path, backbone=model.name, input_shape=input_shape[1:])
    height = input_shape[1]
    spec = BackboneSpec(
        name=model.name,
        application=type(model).__name__,
        preprocessing="none",
        default_size=height if isinstance(height, int) else 224,
        min_size=32,
        family="custom",
    )
    return model, spec


def _standardize_input_shape(input_shape, spec):
    if input_shape is None:
        return (spec.default_size, spec.default_size, 3)
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or not all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in shape
    ):
        raise ValueError(
            f"`input_shape` must be a tuple of 3 integers (height, width, channels), "
            f"such as {(spec.default_size, spec.default_size, 3)}. "
            f"Received: input_shape={input_shape!r}"
        )
    height, width, channels = (int(d) for d in shape)
    if channels != 3:
        raise ValueError(
            f"Backbone {spec.name!r} takes RGB images: `input_shape` must end with 3 "
            f"channels. Received: input_shape={input_shape!r}. For grayscale images, pass "
            f"input_shape=({height}, {width}, 3): transferkit.layers.BackbonePreprocessing "
            "repeats one channel to three."
        )
    if min(height, width) < spec.min_size:
        raise ValueError(
            f"Backbone {spec.name!r} needs images of at least {spec.min_size}x"
            f"{spec.min_size} pixels. Received: input_shape={input_shape!r}. Pass a larger "
            f"input_shape, such as ({max(height, spec.min_size)}, "
            f"{max(width, spec.min_size)}, 3) (images are resized to it), or pick a backbone "
            "that accepts smaller images."
        )
    return (height, width, channels)

"""The layer that turns raw RGB pixels into what a Keras Applications backbone expects."""

import numbers

import keras
from keras import ops

PREPROCESSING_MODES = ("caffe", "tf", "torch", "scale", "none")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")

# The constants of `keras.applications.imagenet_utils.preprocess_input`, so that a model
# holding this layer sees exactly the inputs its ImageNet weights were trained on.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


def _caffe(x):
    # Caffe-trained weights (ResNet, VGG) expect BGR with the ImageNet mean removed.
    return ops.flip(x, axis=-1) - ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype="float32")


def _tf(x):
    return x / 127.5 - 1.0


def _torch(x):
    mean = ops.convert_to_tensor(_TORCH_MEAN, dtype="float32")
    std = ops.convert_to_tensor(_TORCH_STD, dtype="float32")
    return (x / 255.0 - mean) / std


_NORMALIZERS = {"caffe": _caffe, "tf": _tf, "torch": _torch, "none": lambda x: x}


def _standardize_image_size(image_size):
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        size = tuple(image_size)
    except TypeError:
        size = None
    if (
        size is None
        or len(size) != 2
        or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in size)
        or min(size) < 1
    ):
        raise ValueError(
            "`image_size` must be a (height, width) pair of positive integers, such as "
            f"(224, 224). Received: image_size={image_size!r}"
        )
    return tuple(int(d) for d in size)


def per_channel(value, name: str) -> tuple | None:
    """`value` (a number, or one per RGB channel) as 3 floats; None stays None."""
    if value is None:
        return None
    values = [value] * 3 if isinstance(value, (int, float)) else list(value)
    if len(values) != 3 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise ValueError(
            f"`{name}` must be a number or 3 numbers (one per RGB channel). "
            f"Received: {name}={value!r}"
        )
    return tuple(float(v) for v in values)


def _check_image_shape(shape):
    if len(shape) not in (3, 4) or shape[-1] not in (1, 3, None):
        raise ValueError(
            "BackbonePreprocessing expects images of shape (batch, height, width, 3) "
            "or (height, width, 3), with 3 channels (RGB) or 1 (grayscale). "
            f"Received: input_shape={tuple(shape)}"
        )


@keras.saving.register_keras_serializable(package="transferkit")
class BackbonePreprocessing(keras.layers.Layer):
    """Resizes RGB images and scales them the way a backbone's ImageNet weights expect.

    Putting this layer inside the model means a saved model takes raw pixels, so
    whoever serves it cannot forget, or get wrong, the backbone's preprocessing.

    Inputs are images with values in [0, 255], of any dtype (`uint8` or float),
    batched (4-D) or single (3-D), of any height and width, with 3 channels (RGB) or
    1 (grayscale, repeated to RGB). The output is `float32`, of size `image_size`,
    scaled per `mode`, matching `keras.applications.<module>.preprocess_input`:

    - `"caffe"` (ResNet, VGG): RGB to BGR, then the ImageNet mean
      `[103.939, 116.779, 123.68]` (BGR order) is subtracted.
    - `"tf"` (MobileNet, Xception, Inception, ResNetV2, NASNet): `x / 127.5 - 1`.
    - `"torch"` (DenseNet): `x / 255`, then normalized per channel with mean
      `[0.485, 0.456, 0.406]` and std `[0.229, 0.224, 0.225]`.
    - `"scale"` (KerasHub presets): `x * scale + offset` per channel, the
      `scale` and `offset` of the preset's image converter (for ImageNet
      statistics, `scale = 1 / (255 * std)` and `offset = -mean / std`).
    - `"none"` (EfficientNet, EfficientNetV2, ConvNeXt, MobileNetV3): values kept,
      as those backbones scale their inputs internally.

    Images are resized (bilinearly, without antialiasing, unless `interpolation`
    and `antialias` say otherwise) only when their static size is unknown or
    differs from `image_size`; a `tf.data` pipeline that already resized them
    costs nothing here.

    Args:
        image_size: tuple of 2 ints, or int. The output (height, width); an int
            means a square. Defaults to `(224, 224)`.
        mode: str. One of `"caffe"`, `"tf"`, `"torch"`, `"scale"` or `"none"`,
            as in `BackboneSpec.preprocessing`. Defaults to `"caffe"`.
        scale: float, 3 floats or None. The factor of `mode="scale"` (and only
            of it). Defaults to `None`.
        offset: float, 3 floats or None. The term of `mode="scale"`. Defaults
            to `None` (0).
        interpolation: str. `"bilinear"`, `"bicubic"` or `"nearest"`. Defaults
            to `"bilinear"`.
        antialias: bool. Whether downsizing is antialiased. Defaults to `False`.
        **kwargs: Base layer keyword arguments, such as `name`.

    Raises:
        ValueError: if `mode` or `image_size` is not one of the accepted values, or
            the images have neither 1 nor 3 channels.

    Example:

    ```python
    inputs = keras.Input(shape=(None, None, 3), dtype="uint8")
    x = BackbonePreprocessing(image_size=(160, 160), mode="tf")(inputs)
    features = keras.applications.MobileNet(include_top=False, input_shape=(160, 160, 3))(x)
    ```
    """

    def __init__(
        self,
        image_size: tuple[int, int] | int = (224, 224),
        mode: str = "caffe",
        scale: float | tuple | None = None,
        offset: float | tuple | None = None,
        interpolation: str = "bilinear",
        antialias: bool = False,
        **kwargs,
    ):
        # Autocasting would turn float inputs to float16 under mixed precision before
        # the scaling below; this layer computes in float32 whatever the policy.
        kwargs.pop("autocast", None)
        super().__init__(autocast=False, **kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(
                f"`mode` must be one of {PREPROCESSING_MODES}. Received: mode={mode!r}"
            )
        if (mode == "scale") != (scale is not None) or (offset is not None and scale is None):
            raise ValueError(
                "`scale` (and `offset`) go with mode='scale', and mode='scale' needs a "
                f"`scale`. Received: mode={mode!r}, scale={scale!r}, offset={offset!r}"
            )
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"`interpolation` must be one of {INTERPOLATIONS}. "
                f"Received: interpolation={interpolation!r}"
            )
        self.image_size = _standardize_image_size(image_size)
        self.mode = mode
        self.scale = per_channel(scale, "scale")
        self.offset = per_channel(offset, "offset")
        if self.scale is not None and self.offset is None:
            self.offset = (0.0, 0.0, 0.0)
        self.interpolation = interpolation
        self.antialias = bool(antialias)

    def call(self, images):
        _check_image_shape(images.shape)
        x = ops.cast(images, "float32")
        if x.shape[-1] == 1:
            x = ops.repeat(x, 3, axis=-1)
        if tuple(x.shape[-3:-1]) != self.image_size:
            x = ops.image.resize(
                x,
                self.image_size,
                interpolation=self.interpolation,
                antialias=self.antialias,
                data_format="channels_last",
            )
        if self.mode == "scale":
            scale = ops.convert_to_tensor(self.scale, dtype="float32")
            return x * scale + ops.convert_to_tensor(self.offset, dtype="float32")
        return _NORMALIZERS[self.mode](x)

    def compute_output_shape(self, input_shape):
        _check_image_shape(input_shape)
        return (*input_shape[:-3], *self.image_size, 3)

    def compute_output_spec(self, images):
        shape = self.compute_output_shape(images.shape)
        return keras.KerasTensor(shape, dtype="float32")

    def get_config(self):
        config = {**super().get_config(), "image_size": self.image_size, "mode": self.mode}
        # Written only where they differ from the defaults, so configs written before
        # these arguments existed read the same.
        if self.scale is not None:
            config.update(scale=self.scale, offset=self.offset)
        if self.interpolation != "bilinear" or self.antialias:
            config.update(interpolation=self.interpolation, antialias=self.antialias)
        return config

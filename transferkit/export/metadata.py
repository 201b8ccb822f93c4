"""What an exported model carries besides its graph: class names, input contract, versions.

Every export carries one JSON document, the same for all formats, stored where
each format has room for it:

- SavedModel: `assets.extra/transferkit.json` inside the SavedModel folder (the
  folder SavedModel sets aside for files its graph does not load);
- ONNX: the model's `metadata_props`, under the key `transferkit`;
- LiteRT: a file beside the model, `model.tflite` -> `model.tflite.json`.

Plain JSON, so any runtime reads it; `read_export_info` reads it for any format.
"""

import dataclasses
import json
import os
from pathlib import Path

METADATA_KEY = "transferkit"
SAVED_MODEL_METADATA = Path("assets.extra") / "transferkit.json"


@dataclasses.dataclass(frozen=True)
class ExportInfo:
    """What an exported classifier takes and returns, and how it was made.

    Attributes:
        format: str. `"saved_model"`, `"litert"` or `"onnx"`.
        quantization: str or None. The LiteRT quantization, None for float32.
        class_names: list of str. The classes, in the order of the probability columns.
        image_size: tuple of 2 ints. The (height, width) images are resized to
            inside the model.
        preprocessing: str. The backbone's scaling applied inside the model
            (`"caffe"`, `"tf"`, `"torch"` or `"none"`); callers pass raw pixels.
        input_name: str. The name of the input tensor.
        input_dtype: str. `"float32"` (raw RGB values 0-255), or `"uint8"` for a
            full-integer LiteRT model.
        output_name: str. The name of the probabilities output.
        multi_label: bool. Whether the probabilities are independent (sigmoids)
            rather than summing to 1.
        transferkit_version: str. The version that wrote the export.
        keras_version: str. The Keras version that wrote the export.
        thresholds: list of float or None. A multi-label model's per-class
            decision thresholds (in class order): a class is predicted where
            its probability reaches its threshold. None for other models (and
            for exports written before thresholds were stored).
    """

    format: str
    quantization: str | None
    class_names: list[str]
    image_size: tuple[int, int]
    preprocessing: str
    input_name: str
    input_dtype: str
    output_name: str
    multi_label: bool
    transferkit_version: str
    keras_version: str
    thresholds: list[float] | None = None

    def to_json(self) -> str:
        """The info as a JSON document (the form stored with the export)."""
        data = dataclasses.asdict(self)
        data["image_size"] = list(self.image_size)
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "ExportInfo":
        """Reads the JSON document `to_json` writes.

        Raises:
            ValueError: if the document lacks a field, or has one this version
                does not know.
        """
        data = json.loads(text)
        fields = {field.name for field in dataclasses.fields(cls)}
        # `thresholds` came later: older exports lack it.
        if isinstance(data, dict):
            data.setdefault("thresholds", None)
        if not isinstance(data, dict) or set(data) != fields:
            raise ValueError(
                f"Not a transferkit export description: expected the fields {sorted(fields)}. "
                f"Received: {sorted(data) if isinstance(data, dict) else type(data).__name__}"
            )
        data["image_size"] = tuple(data["image_size"])
        return cls(**data)


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON file written beside a LiteRT model: `model.tflite` -> `model.tflite.json`."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_export_info(path: str | os.PathLike) -> ExportInfo:
    """Reads the class names and input contract stored with an exported model.

    Args:
        path: str or path. A SavedModel folder, a `.tflite` file or an `.onnx`
            file written by `FineTuner.export` (or `transferkit export`).

    Returns:
        An `ExportInfo`.

    Raises:
        FileNotFoundError: if there is no export (or, for LiteRT, no JSON file
            beside it) at `path`.
        ValueError: if the export was not written by transferkit.

    Example:

    ```python
    info = tk.export.read_export_info("exported/cats.tflite")
    info.class_names, info.image_size, info.input_dtype
    ```
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"No exported model at {str(path)!r}.")
    if path.is_dir():
        document = path / SAVED_MODEL_METADATA
        if not document.is_file():
            raise ValueError(
                f"{str(path)!r} has no {SAVED_MODEL_METADATA.as_posix()}: it is not a "
                "SavedModel written by transferkit's export."
            )
        return ExportInfo.from_json(document.read_text())
    if path.suffix.lower() == ".onnx":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        properties = {prop.key: prop.value for prop in model.metadata_props}
        if METADATA_KEY not in properties:
            raise ValueError(
                f"{str(path)!r} has no {METADATA_KEY!r} metadata: it is not an ONNX model "
                "written by transferkit's export."
            )
        return ExportInfo.from_json(properties[METADATA_KEY])
    if path.suffix.lower() == ".tflite":
        document = sidecar_path(path)
        if not document.is_file():
            raise FileNotFoundError(
                f"No {document.name} beside {str(path)!r}: transferkit writes the class names "
                "of a LiteRT model there. Keep the two files together."
            )
        return ExportInfo.from_json(document.read_text())
    raise ValueError(
        "Not an exported model: pass a SavedModel folder, a .tflite or an .onnx file. "
        f"Received: path={str(path)!r}"
    )


def write_onnx_metadata(model, info: ExportInfo) -> None:
    """Stores `info` in an `onnx.ModelProto`'s `metadata_props` (in place)."""
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = info.to_json()

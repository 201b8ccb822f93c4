"""Exporting a classifier to where models run: SavedModel, LiteRT and ONNX, with parity checked.

`FineTuner.export` (and `transferkit export`) writes one artifact; the functions
here read what an export carries, run it in its runtime, and compare it with the
Keras model.
"""

from transferkit.export.exporter import export_model
from transferkit.export.failures import ConversionError
from transferkit.export.formats import FORMATS, QUANTIZATIONS, TOLERANCES
from transferkit.export.metadata import ExportInfo, read_export_info
from transferkit.export.parity import ParityError, check_parity
from transferkit.export.runtimes import ExportedModel, load_exported

__all__ = [
    "export_model",
    "check_parity",
    "read_export_info",
    "load_exported",
    "ExportInfo",
    "ExportedModel",
    "ParityError",
    "ConversionError",
    "FORMATS",
    "QUANTIZATIONS",
    "TOLERANCES",
]

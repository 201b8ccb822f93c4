"""`export_model`: one transferkit classifier to one artifact, written atomically, checked."""

import os

import keras
import numpy as np
import pandas as pd

from transferkit import defaults
from transferkit.export.formats import (
    REQUIREMENTS,
    RUNTIMES,
    SUFFIXES,
    check_format,
    check_path,
    check_quantization,
    require,
)
from transferkit.export.litert import write_litert
from transferkit.export.metadata import ExportInfo, sidecar_path
from transferkit.export.onnx import write_onnx
from transferkit.export.parity import check_images, file_megabytes, parity_table
from transferkit.export.runtimes import load_exported
from transferkit.export.saved_model import write_saved_model
from transferkit.export.serving_model import INPUT_NAME, OUTPUT_NAME, check_classifier
from transferkit.export.serving_model import serving_model as build_serving_model
from transferkit.utils.files import atomic_path
from transferkit.utils.log import logger
from transferkit.version import __version__


def export_info(classifier, format: str, quantize: str | None) -> ExportInfo:
    """The description stored with an export of `classifier`."""
    head = classifier.head
    return ExportInfo(
        format=format,
        quantization=quantize,
        class_names=list(classifier.class_names),
        image_size=tuple(int(side) for side in classifier.image_size),
        preprocessing=classifier.preprocessor.mode,
        input_name=INPUT_NAME,
        input_dtype="uint8" if quantize == "full_integer" else "float32",
        output_name=OUTPUT_NAME,
        multi_label=bool(head.multi_label),
        transferkit_version=__version__,
        keras_version=keras.__version__,
        thresholds=[float(value) for value in head.threshold_array()]
        if head.multi_label
        else None,
    )


def representative_images(
    classifier, data, count: int = defaults.REPRESENTATIVE_IMAGES, seed: int = 0
) -> np.ndarray:
    """Up to `count` images drawn at random (seeded) from `data`, as the model sees them."""
    from transferkit.data import as_image_source

    source = as_image_source(data, require_labels=False)
    if source.dataset is None and len(source) > count:
        chosen = np.random.default_rng(seed).choice(len(source), count, replace=False)
        source = source.subset(np.sort(chosen))
    images, _ = check_images(classifier, source)
    return images[:count]


def export_model(
    classifier,
    path: str | os.PathLike,
    format: str = defaults.EXPORT_FORMAT,
    *,
    quantize: str | None = None,
    representative_data=None,
    check=None,
    tolerance: float | None = None,
    overwrite: bool = False,
    batch_size: int = defaults.BATCH_SIZE,
) -> pd.DataFrame | None:
    """Exports a transferkit classifier to a SavedModel, LiteRT or ONNX model.

    What `FineTuner.export` does (see it for the formats, what every export
    carries, and the errors), for an `ImageClassifier` you hold without a
    FineTuner, such as `keras.saving.load_model(path)` after `import transferkit`.

    Args:
        classifier: `ImageClassifier`. The model to export.
        path: str or path. A folder for `"saved_model"`, a file ending in
            `.tflite` or `.onnx` for the others.
        format: str. `"saved_model"`, `"litert"` or `"onnx"`. Defaults to
            `"saved_model"`.
        quantize: str or None. LiteRT only: `"float16"`, `"dynamic_range"` or
            `"full_integer"`; None for float32. Defaults to `None`.
        representative_data: Images to calibrate `"full_integer"` on. Defaults
            to `None`.
        check: Images to run the export on and compare with the classifier.
            Defaults to `None`.
        tolerance: float or None. Replaces the float tolerances of the check.
            Defaults to `None`.
        overwrite: bool. Whether to replace an existing export. Defaults to
            `False`.
        batch_size: int. Images per batch when reading the check images.
            Defaults to `32`.

    Returns:
        The parity table (see `check_parity`) when `check` is given, else None.

    Raises:
        ValueError, FileExistsError, ImportError, ConversionError, ParityError:
            as `FineTuner.export`.
    """
    classifier = check_classifier(classifier)
    format = check_format(format)
    quantize = check_quantization(quantize, format)
    path = check_path(path, format)
    if quantize == "full_integer" and representative_data is None:
        raise ValueError(
            "quantize='full_integer' calibrates on representative images: pass "
            "representative_data= (a sample of the training images, such as the training "
            f"folder; up to {defaults.REPRESENTATIVE_IMAGES} are drawn from it)."
        )
    if representative_data is not None and quantize != "full_integer":
        raise ValueError(
            "representative_data is used by quantize='full_integer' only. Received: "
            f"quantize={quantize!r} with representative_data"
        )
    if tolerance is not None and check is None:
        raise ValueError("tolerance applies to the parity check: pass check= images too.")
    if tolerance is not None and not tolerance > 0:
        raise ValueError(f"`tolerance` must be a number > 0. Received: tolerance={tolerance!r}")
    require(REQUIREMENTS[format], f"Exporting to {format!r}")
    if check is not None:
        require(RUNTIMES[format], f"Checking the {format!r} export")
    sidecar = sidecar_path(path) if format == "litert" else None
    for target in (path, sidecar):
        if target is not None and target.exists() and not overwrite:
            raise FileExistsError(
                f"{target} already exists. Pass overwrite=True to replace it, or choose "
                "another path."
            )

    # Reading images fails fast, before a conversion that can take minutes.
    calibration = None
    if representative_data is not None:
        calibration = representative_images(classifier, representative_data)
    if check is not None:
        check = check_images(classifier, check, batch_size)

    info = export_info(classifier, format, quantize)
    # LiteRT has no bicubic resize: such a classifier's LiteRT file takes images of its
    # own size (the sidecar says which), which skip the model's resize.
    fixed_size = format == "litert" and classifier.preprocessor.interpolation == "bicubic"
    if fixed_size:
        height, width = classifier.image_size
        logger.info(
            f"LiteRT has no bicubic resize: the {format} file takes images of {height}x{width} "
            "(resize them first; the sidecar's image_size says so)"
        )
    model = build_serving_model(classifier, fixed_size=fixed_size)
    table = None
    # Keras's LiteRT export insists on a lower-case `.tflite` name.
    with atomic_path(path, overwrite=overwrite, suffix=SUFFIXES.get(format, "")) as tmp:
        if format == "saved_model":
            write_saved_model(model, tmp, info)
        elif format == "litert":
            write_litert(model, tmp, quantize, calibration)
        else:
            write_onnx(model, tmp, info)
        if check is not None:
            # Checked before it takes its place: an export that fails the check
            # never replaces anything.
            images, labels = check
            table = parity_table(
                classifier, [load_exported(tmp, info)], images, labels, tolerance, batch_size
            )
        if sidecar is not None:
            with atomic_path(sidecar, overwrite=overwrite) as tmp_sidecar:
                tmp_sidecar.write_text(info.to_json())
    kind = format + (f" ({quantize})" if quantize else "")
    logger.info(f"exported {kind} to {path} ({file_megabytes(path):.1f} MB)")
    return table

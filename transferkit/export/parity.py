"""The parity check: an export's answers against the Keras model's, on the same images."""

import contextlib
import logging
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from transferkit import defaults
from transferkit.export.formats import TOLERANCES, is_float
from transferkit.export.runtimes import ExportedModel, load_exported
from transferkit.export.serving_model import check_classifier

# Single-image calls timed per model for the latency column (after two warm-up calls).
LATENCY_CALLS = 20

COLUMNS = [
    "format",
    "quantization",
    "file_mb",
    "max_abs_diff",
    "float16_weights_max_abs_diff",
    "mean_abs_diff",
    "agreement",
    "accuracy",
    "latency_ms",
    "tolerance",
    "within_tolerance",
]


# A float16 export passes with at least this share of images given the Keras model's class
# (its mean probability difference is judged by `TOLERANCES["float16"]`).
FLOAT16_AGREEMENT = defaults.FLOAT16_AGREEMENT


class ParityError(ValueError):
    """An export whose probabilities differ from the Keras model's beyond the tolerance.

    Attributes:
        table: `pandas.DataFrame`. The parity table (see `check_parity`).
    """

    def __init__(self, table: pd.DataFrame):
        failed = table[failed_rows(table)]
        names = ", ".join(f"{name} ({_failure(row)})" for name, row in failed.iterrows())
        super().__init__(
            f"The export does not match the Keras model: {names}.\n{format_table(table)}"
        )
        self.table = table


def _failure(row) -> str:
    """Why a row failed its rule, in words."""
    if row.quantization != "float16":
        return f"max difference {row.max_abs_diff:.3g} > {row.tolerance:g}"
    reasons = []
    if row.agreement < FLOAT16_AGREEMENT:
        reasons.append(f"agreement {row.agreement:.4g} < {FLOAT16_AGREEMENT:g}")
    if row.mean_abs_diff > row.tolerance:
        reasons.append(f"mean difference {row.mean_abs_diff:.3g} > {row.tolerance:g}")
    return ", ".join(reasons)


def passes(quantization: str | None, max_abs_diff, mean_abs_diff, agreement, tolerance) -> bool:
    """Whether a float export's differences from the Keras model pass its rule.

    float32 (`quantization=None`): the largest probability difference is at most
    `tolerance`. float16: at least `FLOAT16_AGREEMENT` of the images get the Keras
    model's class and the mean probability difference is at most `tolerance`; its
    largest difference is reported, not judged, because rounding the weights to float16
    moves it by itself (see `float16_weights_difference`).

    Args:
        quantization: str or None. `None` (float32) or `"float16"`.
        max_abs_diff: float. The largest absolute probability difference.
        mean_abs_diff: float. The mean absolute probability difference.
        agreement: float. The share of images with the Keras model's prediction.
        tolerance: float. The limit on `max_abs_diff` (float32) or on `mean_abs_diff`
            (float16).

    Returns:
        bool.
    """
    if quantization == "float16":
        return bool(agreement >= FLOAT16_AGREEMENT and mean_abs_diff <= tolerance)
    return bool(max_abs_diff <= tolerance)


def _keras_probabilities(classifier, images: np.ndarray, batch_size: int) -> np.ndarray:
    with _retracing_notes_off():
        return classifier.head.probabilities(
            np.concatenate(
                [
                    classifier.predict_on_batch(images[start : start + batch_size])
                    for start in range(0, len(images), batch_size)
                ]
            )
        )


def float16_weights_difference(
    classifier, images: np.ndarray, batch_size: int = defaults.BATCH_SIZE, reference=None
) -> float:
    """The largest probability difference that float16 weights alone cause in Keras.

    Rounds every float32 weight of the Keras model to float16 (and back), computes in
    float32 as before, and compares its probabilities with the original's: the part
    of a float16 export's difference that comes from the format itself, with no
    converter or runtime involved. The model's weights are restored afterwards.

    Args:
        classifier: `ImageClassifier`.
        images: float32 `(N, height, width, 3)`, as `check_images` reads them.
        batch_size: int. Defaults to `32`.
        reference: The model's probabilities on `images`, if already computed.
            Defaults to `None` (computed here).

    Returns:
        float: the largest absolute difference of any probability.
    """
    if reference is None:
        reference = _keras_probabilities(classifier, images, batch_size)
    saved = [variable.numpy() for variable in classifier.weights]
    try:
        for variable, value in zip(classifier.weights, saved, strict=True):
            if value.dtype == np.float32:
                variable.assign(value.astype(np.float16).astype(np.float32))
        rounded = _keras_probabilities(classifier, images, batch_size)
    finally:
        for variable, value in zip(classifier.weights, saved, strict=True):
            variable.assign(value)
    return float(np.abs(rounded - reference).max())


def failed_rows(table: pd.DataFrame) -> pd.Series:
    """A boolean mask of the rows of float exports beyond their tolerance."""
    return table["within_tolerance"].eq(False).fillna(False).astype(bool)


def format_table(table: pd.DataFrame) -> str:
    """The parity table as aligned text, `-` where a value does not apply."""
    shown = table.astype(object).where(table.notna(), "-")
    shown.index.name = None

    def number(value):
        return value if isinstance(value, str) else f"{value:.4g}"

    numbers = [column for column in table if pd.api.types.is_float_dtype(table[column])]
    return shown.to_string(formatters={column: number for column in numbers})


def check_images(classifier, data, batch_size: int = defaults.BATCH_SIZE):
    """Reads check images as the Keras model sees them, and their labels.

    Args:
        classifier: `ImageClassifier`.
        data: Images in any form `FineTuner.predict` accepts; labelled data
            (a class folder, `(images, labels)`, a DataFrame with labels) adds
            the accuracy columns.
        batch_size: int. Defaults to `32`.

    Returns:
        `(images, labels)`: float32 `(N, height, width, 3)` at the model's
        image size, values 0-255, and int class indices `(N,)` or None.
    """
    from transferkit.data import as_image_source, make_dataset

    source = as_image_source(data, class_names=classifier.class_names, require_labels=False)
    images, labels = [], []
    for batch in make_dataset(source, classifier.image_size, batch_size):
        if isinstance(batch, tuple):
            batch, batch_labels = batch
            labels.append(np.asarray(batch_labels))
        images.append(np.asarray(batch, dtype="float32"))
    return np.concatenate(images), (np.concatenate(labels) if labels else None)


def file_megabytes(path) -> float:
    """The size of a file, or of all files in a folder, in MB (10^6 bytes)."""
    path = Path(path)
    if path.is_dir():
        return sum(item.stat().st_size for item in path.rglob("*") if item.is_file()) / 1e6
    return path.stat().st_size / 1e6


def latency_ms(predict, image: np.ndarray, calls: int = LATENCY_CALLS) -> float:
    """The median time of `predict(image[None])` in milliseconds, after two warm-up calls."""
    batch = image[None]
    for _ in range(2):
        predict(batch)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        predict(batch)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


@contextlib.contextmanager
def _retracing_notes_off():
    # After `fit`, TensorFlow warns that Keras's predict function "triggered
    # retracing" when it sees a second batch size, though it traces once per size.
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        tf_logger.setLevel(level)


def _accuracy(probabilities, labels):
    if labels is None or labels.ndim != 1:
        return np.nan
    return float((probabilities.argmax(axis=1) == labels).mean())


def _agreement(probabilities, reference, info):
    """Images with the same prediction: the top class, or a multi-label model's class set."""
    if info.multi_label:
        thresholds = np.asarray(info.thresholds if info.thresholds else 0.5)
        same = (probabilities >= thresholds) == (reference >= thresholds)
        return float(same.all(axis=1).mean())
    return float((probabilities.argmax(1) == reference.argmax(1)).mean())


def check_parity(
    classifier,
    exported,
    data,
    *,
    tolerance: float | None = None,
    batch_size: int = defaults.BATCH_SIZE,
    latency_calls: int = LATENCY_CALLS,
    raise_on_failure: bool = True,
) -> pd.DataFrame:
    """Runs exports in their own runtimes and compares them with the Keras model.

    Every model sees the same images, read as `FineTuner.predict` reads them.
    The table has one row for the Keras model (the reference), then one per
    export:

    - `format`, `quantization`: the export's.
    - `file_mb`: size on disk in MB (a SavedModel's whole folder).
    - `max_abs_diff`: largest absolute difference of any probability from the
      Keras model's.
    - `float16_weights_max_abs_diff`: for a float16 export, the `max_abs_diff` of
      the Keras model itself with its weights rounded to float16: how much of the
      export's largest difference the format alone explains. NaN for other rows.
    - `mean_abs_diff`: mean absolute difference of the probabilities.
    - `agreement`: share of images whose most probable class is the Keras model's.
    - `accuracy`: share of images classified as labelled (NaN without labels).
    - `latency_ms`: median time to classify one image (batch of 1); for Keras,
      `predict_on_batch`, its cheapest call.
    - `tolerance`, `within_tolerance`: a float export's limit and whether its
      rule holds (see `passes`). float32: `max_abs_diff` at most 1e-4
      (`TOLERANCES[None]`). float16: `agreement` at least 0.999
      (`FLOAT16_AGREEMENT`) and `mean_abs_diff` at most 1e-3
      (`TOLERANCES["float16"]`); its largest difference is not judged, since
      float16 weights alone move it (`float16_weights_max_abs_diff`). NaN and NA
      for integer quantization, which is reported, not judged.

    Args:
        classifier: `ImageClassifier`. The Keras model.
        exported: a path, an `ExportedModel`, or a list of them.
        data: The check images, in any form `FineTuner.predict` accepts
            (labelled for the accuracy column).
        tolerance: float or None. Replaces the float32 limit on `max_abs_diff`
            and the float16 limit on `mean_abs_diff`. Defaults to `None`
            (`TOLERANCES`).
        batch_size: int. Images per call when comparing. Defaults to `32`.
        latency_calls: int. Single-image calls timed per model for
            `latency_ms` (after two warm-up calls). Defaults to `20`.
        raise_on_failure: bool. Whether to raise `ParityError` when a float
            export exceeds its tolerance. Defaults to `True`.

    Returns:
        The table, a `pandas.DataFrame` indexed by model name.

    Raises:
        ParityError: if a float export fails its rule (and `raise_on_failure`);
            its `table` attribute holds the table.
    """
    check_classifier(classifier)
    if tolerance is not None and not tolerance > 0:
        raise ValueError(f"`tolerance` must be a number > 0. Received: tolerance={tolerance!r}")
    if not isinstance(exported, (list, tuple)):
        exported = [exported]
    models = [
        each if isinstance(each, ExportedModel) else load_exported(each) for each in exported
    ]
    images, labels = check_images(classifier, data, batch_size)
    return parity_table(
        classifier,
        models,
        images,
        labels,
        tolerance,
        batch_size,
        raise_on_failure,
        latency_calls,
    )


def parity_table(
    classifier,
    models: list[ExportedModel],
    images: np.ndarray,
    labels: np.ndarray | None,
    tolerance: float | None = None,
    batch_size: int = defaults.BATCH_SIZE,
    raise_on_failure: bool = True,
    latency_calls: int = LATENCY_CALLS,
) -> pd.DataFrame:
    """`check_parity` on images already read by `check_images`."""
    reference = _keras_probabilities(classifier, images, batch_size)
    with _retracing_notes_off():
        keras_latency = latency_ms(classifier.predict_on_batch, images[0], latency_calls)
    rows = {
        "keras": {
            "format": "keras",
            "quantization": None,
            "file_mb": np.nan,
            "max_abs_diff": 0.0,
            "float16_weights_max_abs_diff": np.nan,
            "mean_abs_diff": 0.0,
            "agreement": 1.0,
            "accuracy": _accuracy(reference, labels),
            "latency_ms": keras_latency,
            "tolerance": np.nan,
            "within_tolerance": pd.NA,
        }
    }
    float16_floor = None  # computed once, for the first float16 export
    for model in models:
        info = model.info
        probabilities = np.concatenate(
            [model.predict(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        )
        differences = np.abs(probabilities - reference)
        difference, mean_difference = float(differences.max()), float(differences.mean())
        agreement = _agreement(probabilities, reference, info)
        rounded = np.nan
        if info.quantization == "float16":
            if float16_floor is None:
                float16_floor = float16_weights_difference(
                    classifier, images, batch_size, reference
                )
            rounded = float16_floor
        limit = np.nan
        if is_float(info.quantization):
            limit = tolerance if tolerance is not None else TOLERANCES[info.quantization]
        name = info.format + (f" {info.quantization}" if info.quantization else "")
        if name in rows:
            name = f"{name} ({model.path.name})"
        rows[name] = {
            "format": info.format,
            "quantization": info.quantization,
            "file_mb": file_megabytes(model.path),
            "max_abs_diff": difference,
            "float16_weights_max_abs_diff": rounded,
            "mean_abs_diff": mean_difference,
            "agreement": agreement,
            "accuracy": _accuracy(probabilities, labels),
            "latency_ms": latency_ms(model.predict, images[0], latency_calls),
            "tolerance": limit,
            "within_tolerance": pd.NA
            if np.isnan(limit)
            else passes(info.quantization, difference, mean_difference, agreement, limit),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")[COLUMNS]
    table["within_tolerance"] = table["within_tolerance"].astype("boolean")
    table.index.name = "model"
    if raise_on_failure and failed_rows(table).any():
        raise ParityError(table)
    return table

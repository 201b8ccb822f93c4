"""A float16 export is judged by what the format can promise, not by its largest difference.

Rounding a model's weights to float16 moves single probabilities by itself (by 0.02 on
the reference example's MobileNet), so the rule is agreement in the predicted class of
at least 99.9% and a mean probability difference of at most 1e-3; the largest
difference stays in the table beside that of the Keras model with float16 weights.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import transferkit as tk
from transferkit.export.parity import (
    FLOAT16_AGREEMENT,
    ParityError,
    float16_weights_difference,
    parity_table,
    passes,
)


def test_the_rule_of_each_float_export():
    assert FLOAT16_AGREEMENT == 0.999 and tk.export.TOLERANCES == {None: 1e-4, "float16": 1e-3}
    # float16: a large single difference passes when the classes and the mean hold...
    assert passes("float16", 0.05, mean_abs_diff=4e-4, agreement=0.999, tolerance=1e-3)
    # ...but one disagreement too many, or a mean too large, fails.
    assert not passes("float16", 0.05, 4e-4, agreement=0.998, tolerance=1e-3)
    assert not passes("float16", 0.05, mean_abs_diff=2e-3, agreement=1.0, tolerance=1e-3)
    # float32: the largest difference is what is judged.
    assert passes(None, max_abs_diff=1e-4, mean_abs_diff=1e-4, agreement=1.0, tolerance=1e-4)
    assert not passes(None, max_abs_diff=2e-4, mean_abs_diff=0.0, agreement=1.0, tolerance=1e-4)


class _Fake:
    """An export that answers with given probabilities (the runtime is not the point)."""

    def __init__(self, probabilities, quantization):
        self._probabilities = probabilities
        self.info = type("Info", (), {"format": "litert", "quantization": quantization})()
        self.info.multi_label = False
        self.path = Path(__file__)
        self._seen = 0

    def predict(self, images):
        start = self._seen % len(self._probabilities)
        self._seen += len(images)
        return self._probabilities[start : start + len(images)]


def _keras(finetuner, images):
    return finetuner.model.head.probabilities(finetuner.model.predict(images, verbose=0))


def _moved(reference, image, amount):
    """`reference` with one image's probabilities moved by `amount` (still summing to 1)."""
    moved = reference.copy()
    top = moved[image].argmax()
    other = (top + 1) % moved.shape[1]
    step = min(amount, moved[image, top])
    moved[image, top] -= step
    moved[image, other] += step
    return moved


def test_a_float16_export_with_one_large_difference_passes(finetuner, images):
    reference = _keras(finetuner, images)
    # One probability moved by 0.004 on one image of 12: the mean stays below 1e-3.
    export = _Fake(_moved(reference, 0, 0.004), "float16")
    table = parity_table(finetuner.model, [export], images, None, batch_size=len(images))
    row = table.loc["litert float16"]
    assert row["max_abs_diff"] == pytest.approx(0.004, rel=1e-3)
    assert row["mean_abs_diff"] < 1e-3 and row["tolerance"] == 1e-3
    assert bool(row["within_tolerance"]) is True


def test_a_float16_export_that_changes_a_prediction_fails_on_agreement(finetuner, images):
    reference = _keras(finetuner, images)
    changed = reference.copy()
    changed[0] = np.roll(changed[0], 1)  # another class on top, on one image of 12
    export = _Fake(changed, "float16")
    with pytest.raises(ParityError, match=r"litert float16 \(agreement 0\.9167 < 0\.999"):
        parity_table(finetuner.model, [export], images, None, batch_size=len(images))


def test_the_table_shows_the_float16_weights_difference_beside_the_export(
    finetuner, images, tmp_path
):
    pytest.importorskip("ai_edge_litert", reason="LiteRT's runtime comes with transferkit[export]")
    paths = [tmp_path / "float32.tflite", tmp_path / "float16.tflite"]
    finetuner.export(paths[0], "litert")
    finetuner.export(paths[1], "litert", quantize="float16")
    table = tk.export.check_parity(finetuner.model, paths, images)

    floor = float16_weights_difference(finetuner.model, images)
    assert table.loc["litert float16", "float16_weights_max_abs_diff"] == pytest.approx(floor)
    assert 0 < floor < 1e-2
    assert pd.isna(table.loc["keras", "float16_weights_max_abs_diff"])
    assert pd.isna(table.loc["litert", "float16_weights_max_abs_diff"])
    assert table.loc["litert", "tolerance"] == 1e-4
    float16 = table.loc["litert float16"]
    assert 0 < float16["mean_abs_diff"] <= float16["max_abs_diff"]


def test_the_float16_weights_difference_restores_the_weights(finetuner, images):
    model = finetuner.model
    before = [variable.numpy().copy() for variable in model.weights]
    probabilities = model.predict(images, verbose=0)

    assert float16_weights_difference(model, images) > 0

    for variable, value in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
    np.testing.assert_array_equal(model.predict(images, verbose=0), probabilities)

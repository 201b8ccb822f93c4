"""Calibration: the error measured, temperature scaling kept in the model, a decision threshold."""

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

import transferkit as tk
from transferkit.interpret import (
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    reliability_table,
)
from transferkit.interpret.calibration import calibrate_logits, probabilities_from_logits

FIXTURES = Path(__file__).parents[1] / "finetuner" / "fixtures"


# === The measures, on numbers ===
def test_expected_calibration_error_by_hand():
    # Two bins used: 0.9 confidence right 1 time in 2, 0.6 confidence right 2 times in 2.
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 1])
    table = reliability_table(probabilities, labels, bins=10)
    filled = table[table["count"] > 0]
    assert filled["count"].tolist() == [2, 2]
    np.testing.assert_allclose(filled["confidence"], [0.6, 0.9])
    np.testing.assert_allclose(filled["accuracy"], [1.0, 0.5])
    # (2 * |0.6 - 1| + 2 * |0.9 - 0.5|) / 4
    assert expected_calibration_error(probabilities, labels, bins=10) == pytest.approx(0.4)
    assert list(table.columns) == ["lower", "upper", "count", "confidence", "accuracy"]


def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20000, 4))
    true = probabilities_from_logits(logits, 2.5)
    labels = np.array([rng.choice(4, p=row) for row in true])
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.05)
    # One sigmoid logit per row for two classes.
    binary = rng.normal(0, 4, (20000, 1))
    positive = probabilities_from_logits(binary, 0.5)[:, 1]
    assert fit_temperature(binary, rng.random(20000) < positive) == pytest.approx(0.5, rel=0.05)


def test_temperature_scaling_cuts_the_error_of_an_overconfident_model():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (5000, 3))
    labels = np.array([rng.choice(3, p=row) for row in probabilities_from_logits(logits, 1.0)])
    result = calibrate_logits(logits * 3, labels)  # three times too confident
    assert result.temperature == pytest.approx(3.0, rel=0.1)
    assert result.expected_calibration_error_after < result.expected_calibration_error_before / 2
    assert result.loss_after < result.loss_before
    assert "temperature=" in repr(result) and "on 5000 images" in repr(result)


def test_choose_threshold_maximises_the_metric():
    positive = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.8, 0.9])
    labels = np.array([0, 0, 1, 1, 1, 1, 1])
    # Everything from 0.3 up is positive: perfect accuracy and F1 between 0.2 and 0.3.
    assert choose_threshold(positive, labels, "accuracy") == pytest.approx(0.25)
    assert choose_threshold(positive, labels, "f1") == pytest.approx(0.25)
    assert choose_threshold(positive, labels, "balanced_accuracy") == pytest.approx(0.25)
    with pytest.raises(ValueError, match="threshold_metric='auc'"):
        choose_threshold(positive, labels, "auc")


# === The head: a temperature weight, a threshold setting ===
def test_the_head_keeps_its_variable_paths_and_a_temperature():
    head = tk.ClassificationHead(num_classes=2, name="head")
    head.build((None, 2, 2, 5))
    assert {w.path for w in head.weights} == {
        "head/temperature",
        "head/predictions/kernel",
        "head/predictions/bias",
    }
    assert [w.path for w in head.non_trainable_weights] == ["head/temperature"]
    assert head.output_layer.get_config()["activation"] == "linear"
    x = np.random.default_rng(0).random((3, 2, 2, 5)).astype("float32")
    logits = np.asarray(head.logits(head.pool(x)))
    head.temperature.assign(2.0)
    np.testing.assert_allclose(head(x), 1 / (1 + np.exp(-logits / 2.0)), rtol=1e-5)


def test_the_decision_threshold_is_a_checked_setting():
    head = tk.ClassificationHead(num_classes=2, decision_threshold=0.3)
    assert tk.ClassificationHead.from_config(head.get_config()).decision_threshold == 0.3
    probabilities = np.array([[0.75, 0.25], [0.65, 0.35]])
    assert head.predicted_indices(probabilities).tolist() == [0, 1]
    with pytest.raises(ValueError, match="decision_threshold=1.5"):
        tk.ClassificationHead(num_classes=2, decision_threshold=1.5)
    with pytest.raises(ValueError, match="two-class"):
        tk.ClassificationHead(num_classes=3, decision_threshold=0.5)
    with pytest.raises(ValueError, match="decision_threshold=0.3, which is for a two-class"):
        head.with_classes(3)


def test_a_model_saved_before_the_temperature_loads_uncalibrated():
    ft = tk.load(FIXTURES / "classifier_v0_1_0.keras")
    assert float(np.asarray(ft.model.head.temperature)) == 1.0
    with zipfile.ZipFile(FIXTURES / "classifier_v0_1_0.keras") as archive:
        assert "temperature" not in archive.read("config.json").decode()


# === FineTuner.calibrate ===
@pytest.fixture(scope="module")
def trained(write_class_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("calibration")
    write_class_folder(root / "train", per_class=10)
    write_class_folder(root / "validation", per_class=6)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    backbone = keras.Model(inputs, keras.layers.Conv2D(6, 3, name="conv")(x), name="tiny")
    ft = tk.FineTuner(backbone, weights=None, schedule="freeze", seed=0)
    ft.fit(root / "train", epochs=3, batch_size=8, verbose=0)
    return ft, root


def _copy(ft, tmp_path):
    ft.save(tmp_path / "copy.keras", overwrite=True)
    return tk.load(tmp_path / "copy.keras")


def test_calibrate_keeps_the_temperature_in_the_model(trained, tmp_path):
    ft = _copy(trained[0], tmp_path)
    validation = trained[1] / "validation"
    before = ft.predict(validation)
    result = ft.calibrate(validation)
    after = ft.predict(validation)
    temperature = float(np.asarray(ft.model.head.temperature))
    assert temperature == pytest.approx(result.temperature) and temperature != 1.0
    assert result.loss_after <= result.loss_before + 1e-9
    assert ft.model.head.decision_threshold is None and result.threshold is None
    assert list(after["label"]) == list(before["label"])  # confidence moves, classes do not
    assert not np.allclose(after["prob_dog"], before["prob_dog"])
    report = ft.evaluate(validation)
    assert report["expected_calibration_error"] == pytest.approx(
        result.expected_calibration_error_after, abs=1e-6
    )

    # Saved, loaded (by transferkit and by Keras) and exported with the model.
    ft.save(tmp_path / "calibrated.keras")
    loaded = tk.load(tmp_path / "calibrated.keras")
    assert float(np.asarray(loaded.model.head.temperature)) == pytest.approx(temperature)
    np.testing.assert_allclose(loaded.predict(validation)["prob_dog"], after["prob_dog"], 1e-5)
    plain = keras.saving.load_model(tmp_path / "calibrated.keras")
    images = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    expected = ft.model.predict(images, verbose=0)
    np.testing.assert_allclose(plain.predict(images, verbose=0), expected, rtol=1e-5)
    import tensorflow as tf

    ft.model.export(str(tmp_path / "exported"), format="tf_saved_model", verbose=False)
    exported = tf.saved_model.load(str(tmp_path / "exported"))  # kept: it owns the variables
    served = exported.serve(tf.constant(images))
    np.testing.assert_allclose(np.asarray(served), expected, rtol=1e-5, atol=1e-6)


def test_a_threshold_for_a_named_metric_is_saved_and_used(trained, tmp_path):
    ft = _copy(trained[0], tmp_path)
    validation = trained[1] / "validation"
    result = ft.calibrate(validation, threshold_metric="f1")
    threshold = ft.model.head.decision_threshold
    assert threshold == result.threshold and 0 < threshold < 1
    assert result.metric_after >= result.metric_before
    predictions = ft.predict(validation)
    expected = np.where(predictions["prob_dog"] >= threshold, "dog", "cat")
    assert list(predictions["label"]) == list(expected)
    report = ft.evaluate(validation)
    assert list(report.predictions["label"]) == list(expected)
    explained = ft.explain(validation).predictions  # explains the class predict gives
    assert list(explained["label"]) == list(explained["explained"]) == list(expected)
    ft.save(tmp_path / "threshold.keras")
    assert tk.load(tmp_path / "threshold.keras").model.head.decision_threshold == threshold
    # Calibrating again without a metric goes back to the most probable class.
    ft.calibrate(validation)
    assert ft.model.head.decision_threshold is None


def test_fitting_again_resets_the_calibration(trained, tmp_path, capfd):
    ft = _copy(trained[0], tmp_path)
    ft.calibrate(trained[1] / "validation", threshold_metric="accuracy")
    ft.fit(trained[1] / "train", epochs=1, batch_size=8, verbose=0)
    assert float(np.asarray(ft.model.head.temperature)) == 1.0
    assert ft.model.head.decision_threshold is None
    err = capfd.readouterr().err
    assert "the calibration (temperature" in err and "is reset" in err


def test_calibrate_refuses_what_it_cannot_use(trained, tmp_path, write_class_folder):
    ft = trained[0]
    paths = sorted(str(p) for p in (trained[1] / "validation").rglob("*.png"))
    with pytest.raises(ValueError, match="calibrate needs labelled held-out images"):
        ft.calibrate(paths)
    birds = write_class_folder(tmp_path / "birds", per_class=3, classes=("cat", "bird"))
    with pytest.raises(ValueError, match="calibrate needs labelled.*bird"):
        ft.calibrate(birds)
    with pytest.raises(ValueError, match="threshold_metric='auc'"):
        ft.calibrate(trained[1] / "validation", threshold_metric="auc")
    assert float(np.asarray(ft.model.head.temperature)) == 1.0  # nothing was changed


def test_a_threshold_needs_two_classes(write_class_folder, tmp_path):
    root = write_class_folder(tmp_path / "three", per_class=3, classes=("cat", "dog", "bird"))
    inputs = keras.Input((16, 16, 3))
    backbone = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs), name="tiny3")
    ft = tk.FineTuner(backbone, weights=None, schedule="freeze", validation_split=0)
    ft.build(["bird", "cat", "dog"])
    with pytest.raises(ValueError, match="threshold is for two classes; this model has 3"):
        ft.calibrate(root, threshold_metric="f1")
    result = ft.calibrate(root)  # temperature scaling alone works for any number
    assert result.num_images == 9


def test_evaluate_reports_the_calibration_error_and_the_diagram(trained, tmp_path):
    ft = trained[0]
    report = ft.evaluate(trained[1] / "validation")
    assert 0 <= report["expected_calibration_error"] <= 1
    assert isinstance(report.calibration, pd.DataFrame) and report.calibration["count"].sum() == 12
    figure = tk.plots.plot_reliability_diagram(report.calibration, tmp_path / "reliability.png")
    assert (tmp_path / "reliability.png").stat().st_size > 0
    assert "ECE" in figure.axes[0].get_legend().get_texts()[1].get_text()
    result = ft.calibrate(trained[1] / "validation")
    ft.model.head.temperature.assign(1.0)
    figure = tk.plots.plot_reliability_diagram(
        {"before": result.reliability_before, "after": result.reliability_after}
    )
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert labels[1].startswith("before, ECE") and labels[2].startswith("after, ECE")
    with pytest.raises(ValueError, match="no column 'accuracy'"):
        tk.plots.plot_reliability_diagram(report.calibration.drop(columns="accuracy"))
    assert json.dumps(report.metrics)  # still plain JSON

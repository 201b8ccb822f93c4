"""The evaluation report's mistakes (top losses, most confused) and the history's seconds."""

import time
from types import SimpleNamespace

import numpy as np
import pytest

import transferkit as tk
from transferkit.evaluation.report import evaluation_report
from transferkit.training.history import HistoryRecorder

CLASSES = ["bird", "cat", "dog"]


def _report(with_paths=True):
    probabilities = np.array(
        [
            [0.8, 0.1, 0.1],  # bird, right
            [0.1, 0.2, 0.7],  # cat taken for a dog
            [0.2, 0.1, 0.7],  # bird taken for a dog
            [0.05, 0.05, 0.9],  # cat taken for a dog, surely
            [0.1, 0.6, 0.3],  # dog taken for a cat
            [0.1, 0.1, 0.8],  # dog, right
        ]
    )
    labels = np.array([0, 1, 0, 1, 2, 2])
    paths = [f"img_{index}.png" for index in range(6)] if with_paths else None
    return evaluation_report(probabilities, labels, CLASSES, paths)


def test_top_losses_are_the_worst_images_first():
    top = _report().top_losses(3)
    assert list(top.index) == [3, 1, 2]  # positions in the evaluated data
    assert list(top.columns) == ["path", "true_label", "label", "probability", "loss"]
    assert list(top["path"]) == ["img_3.png", "img_1.png", "img_2.png"]
    np.testing.assert_allclose(top["loss"], -np.log([0.05, 0.2, 0.2]), rtol=1e-6)
    assert list(top["label"]) == ["dog", "dog", "dog"]
    assert len(_report().top_losses(100)) == 6
    assert "path" not in _report(with_paths=False).top_losses(2)
    with pytest.raises(ValueError, match="k=0"):
        _report().top_losses(0)


def test_most_confused_counts_the_pairs_of_classes():
    confused = _report().most_confused()
    assert confused[["true_label", "label", "count"]].values.tolist() == [
        ["cat", "dog", 2],
        ["bird", "dog", 1],
        ["dog", "cat", 1],
    ]
    assert confused["paths"].iloc[0] == ["img_1.png", "img_3.png"]
    assert confused["mean_probability"].iloc[0] == pytest.approx(0.8)
    assert confused["mean_loss"].iloc[0] == pytest.approx(-np.log([0.2, 0.05]).mean())
    assert _report().most_confused(min_count=2)["count"].tolist() == [2]
    assert "paths" not in _report(with_paths=False).most_confused()
    with pytest.raises(ValueError, match="min_count=0"):
        _report().most_confused(0)


def test_the_report_measures_calibration():
    report = _report()
    assert report.calibration["count"].sum() == 6
    assert 0 < report["expected_calibration_error"] < 1


def test_the_first_epoch_of_a_phase_counts_its_set_up():
    run = SimpleNamespace(rows=[])
    recorder = HistoryRecorder()
    recorder.set_model(type("Model", (), {"optimizer": None})())
    recorder.on_run_begin(run)
    recorder.on_phase_begin(run, SimpleNamespace(name="frozen"))
    time.sleep(0.2)  # the features being extracted
    recorder.on_epoch_begin(0)
    recorder.on_epoch_end(0)
    recorder.on_epoch_begin(1)
    recorder.on_epoch_end(1)
    rows = run.rows
    assert rows[0]["phase"] == "frozen" and rows[0]["seconds"] >= 0.2
    assert rows[1]["seconds"] < 0.1


def test_the_frozen_epochs_time_includes_the_feature_extraction(image_folder, monkeypatch):
    from transferkit.training import phases as training

    extract = training.extract_features

    def slow_extract(*args, **kwargs):
        time.sleep(0.5)
        return extract(*args, **kwargs)

    monkeypatch.setattr(training, "extract_features", slow_extract)
    ft = tk.FineTuner("mobilenet", weights=None, input_shape=32, seed=0)
    ft.cache_features = tk.features.FeatureCache()
    history = ft.fit(image_folder(per_class=6), epochs=2, batch_size=8, verbose=0)
    # Training and validation features: two extractions before the first epoch.
    assert history["seconds"].iloc[0] >= 1.0

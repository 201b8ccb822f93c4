"""bench/interpret.py end to end on a tiny model and synthetic images (never the real data)."""

import json

import keras
import numpy as np

import transferkit as tk
from transferkit.demos.cats_vs_dogs import Split


def _split(count, seed):
    rng = np.random.default_rng(seed)
    labels = np.array(["cat", "dog"] * (count // 2))
    images = rng.uniform(0, 255, (count, 16, 16, 3)).astype("float32")
    images[labels == "cat", :8, :, 0] = 250  # something to learn, not mirror-symmetric
    return Split(images, labels, images, f"{count} synthetic images")


def test_the_benchmark_runs_on_a_tiny_model(tmp_path, monkeypatch, capsys):
    from bench import interpret

    train, test = _split(40, 0), _split(20, 1)
    calls = []

    def fake_load_data(source, train_images, seed):
        calls.append((source, train_images, seed))
        return train, test

    monkeypatch.setattr(interpret, "load_data", fake_load_data)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    backbone = keras.Model(inputs, keras.layers.Conv2D(6, 3, strides=2)(x), name="tiny")
    ft = tk.FineTuner(backbone, weights=None, schedule="freeze", seed=0)
    ft.fit(train.data, train.labels, epochs=3, batch_size=8, verbose=0)
    ft.save(tmp_path / "model.keras")

    figures = interpret.main(
        [
            "--model",
            str(tmp_path / "model.keras"),
            "--train-images",
            "40",
            "--gradcam-images",
            "5",
            "--batch-size",
            "8",
            "--json",
            str(tmp_path / "figures.json"),
        ]
    )
    assert calls == [("cifar10", 40, 0)]
    out = capsys.readouterr().out
    assert "temperature fitted on 8 validation images, measured on 20 test images" in out
    assert "Test-time augmentation" in out and "Grad-CAM of 5 images" in out
    table = figures["tta"]
    assert list(table["tta"]) == ["none", "flip (default)", "flip and zoom"]
    assert table["accuracy_gain"].iloc[0] == 0 and (table["seconds"] > 0).all()
    calibration = figures["calibration"]
    assert calibration["validation_images"] == 8 and calibration["accuracy_unchanged"]
    # Temperature scaling minimises the loss, not this error: on 8 images of a model that
    # learned little, the error may go either way. The figures must be there and sane.
    for key in ("validation_ece_before", "validation_ece_after", "test_ece_before"):
        assert 0 <= calibration[key] <= 1
    assert calibration["temperature"] > 0
    written = json.loads((tmp_path / "figures.json").read_text())
    assert written["gradcam"]["images"] == 5 and len(written["tta"]) == 3

"""Test-time augmentation: fixed views, averaged; the same after loading and on the CLI."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import transferkit as tk
from transferkit.interpret.tta import tta_views, view


@pytest.fixture(scope="module")
def trained(write_class_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("tta")
    data = write_class_folder(root / "data", per_class=6)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    # No padding and a stride: the model is not mirror-symmetric, so views differ.
    x = keras.layers.Conv2D(6, 5, strides=2, name="conv")(x)
    backbone = keras.Model(inputs, x, name="tiny")
    ft = tk.FineTuner(backbone, weights=None, schedule="freeze", seed=0)
    ft.fit(data, epochs=2, batch_size=8, verbose=0)
    ft.save(root / "model.keras")
    return ft, data, root


def _images(count=5, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, 20, 24, 3)).astype("float32")


def test_the_views():
    images = tf.constant(_images(2))
    np.testing.assert_array_equal(view(images, "original"), images)
    np.testing.assert_array_equal(view(images, "flip"), images.numpy()[:, :, ::-1])
    zoomed = view(images, "zoom")
    assert zoomed.shape == images.shape  # the central 87.5%, resized back
    centre = tf.image.resize(images[:, 1:19, 1:22], (20, 24)).numpy()  # 18x21 of 20x24
    np.testing.assert_allclose(zoomed, centre, atol=1e-4)
    np.testing.assert_allclose(view(images, "zoom_flip"), centre[:, :, ::-1], atol=1e-4)
    assert tta_views(True) == ("original", "flip")
    assert tta_views(False) is None and tta_views("zoom") == ("zoom",)


def test_tta_averages_the_probabilities_of_the_views(trained):
    ft = trained[0]
    images = _images()
    plain = ft.predict(images)
    mirrored = ft.predict(images[:, :, ::-1])
    assert not np.allclose(plain["prob_dog"], mirrored["prob_dog"])
    averaged = ft.predict(images, tta=True)
    np.testing.assert_allclose(
        averaged["prob_dog"], (plain["prob_dog"] + mirrored["prob_dog"]) / 2, rtol=1e-5
    )
    np.testing.assert_allclose(
        ft.predict(images, tta=["original"])["prob_dog"], plain["prob_dog"], rtol=1e-6
    )
    several = ft.predict(images, tta=["original", "flip", "zoom", "zoom_flip"])
    assert np.allclose(several[["prob_cat", "prob_dog"]].sum(axis=1), 1.0)


def test_tta_after_loading_and_on_a_batched_dataset(trained):
    ft, data, root = trained
    loaded = tk.load(root / "model.keras")
    images = _images()
    expected = ft.predict(images, tta=True)["prob_dog"]
    np.testing.assert_allclose(loaded.predict(images, tta=True)["prob_dog"], expected, rtol=1e-5)
    batched = tf.data.Dataset.from_tensor_slices(images).batch(2)
    np.testing.assert_allclose(loaded.predict(batched, tta=True)["prob_dog"], expected, rtol=1e-5)
    report = loaded.evaluate(data, tta=True)
    plain = loaded.evaluate(data)
    assert report["num_images"] == plain["num_images"] == 12
    assert not np.allclose(report.predictions["prob_dog"], plain.predictions["prob_dog"])


def test_bad_tta_values(trained):
    with pytest.raises(ValueError, match=r"Unknown test-time augmentation view 'rotate'"):
        trained[0].predict(_images(), tta=["flip", "rotate"])
    with pytest.raises(ValueError, match="tta=\\[\\]"):
        trained[0].evaluate(_images(), ["cat"] * 5, tta=[])


def test_the_command_line_takes_tta(trained, capsys):
    from transferkit.cli import main

    ft, data, root = trained
    csv = root / "tta.csv"
    assert main(["predict", str(root / "model.keras"), str(data), "--tta", "--csv", str(csv)]) == 0
    import pandas as pd

    written = pd.read_csv(csv)
    expected = ft.predict(sorted(data.rglob("*.png")), tta=True)
    np.testing.assert_allclose(
        written.sort_values("path")["prob_dog"], expected.sort_values("path")["prob_dog"], 1e-5
    )
    capsys.readouterr()
    assert main(["evaluate", str(root / "model.keras"), str(data), "--tta", "--json"]) == 0
    import json

    accuracy = json.loads(capsys.readouterr().out)["accuracy"]
    assert accuracy == pytest.approx(ft.evaluate(data, tta=True)["accuracy"])

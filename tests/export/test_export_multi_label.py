"""A multi-label model's exports carry its per-class thresholds and apply them."""

import json

import keras
import numpy as np
import tensorflow as tf

import transferkit as tk
from transferkit.export import read_export_info
from transferkit.export.metadata import ExportInfo
from transferkit.heads import ClassificationHead


def tiny_multi_label(thresholds):
    keras.utils.set_random_seed(7)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    backbone = keras.Model(inputs, x, name="tiny")
    ft = tk.FineTuner(
        backbone, weights=None, head=ClassificationHead(multi_label=True), input_shape=16
    )
    ft.build(["cat", "dog", "bird"])
    ft.model.head.thresholds = thresholds
    return ft


def test_the_saved_model_predicts_the_class_set_from_the_thresholds(tmp_path):
    ft = tiny_multi_label(None)
    images = np.random.default_rng(0).uniform(0, 255, (6, 16, 16, 3)).astype("float32")
    probabilities = ft.predict(images)[["prob_cat", "prob_dog", "prob_bird"]].to_numpy()
    # Thresholds that split these images: each class's median probability.
    thresholds = [float(value) for value in np.median(probabilities, axis=0)]
    ft.model.head.thresholds = thresholds
    ft.export(tmp_path / "model", format="saved_model")
    info = read_export_info(tmp_path / "model")
    assert info.multi_label and info.thresholds == thresholds
    serving = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"]
    outputs = serving(images=tf.constant(images))
    expected = ft.predict(images)["labels"].tolist()
    np.testing.assert_array_equal(outputs["predicted"].numpy(), probabilities >= thresholds)
    names = [value.decode() for value in outputs["class_name"].numpy()]
    assert names == [",".join(labels) for labels in expected]


def test_an_export_description_without_thresholds_still_reads():
    info = ExportInfo(
        format="litert",
        quantization=None,
        class_names=["a", "b"],
        image_size=(16, 16),
        preprocessing="none",
        input_name="images",
        input_dtype="float32",
        output_name="probabilities",
        multi_label=True,
        transferkit_version="0.2",
        keras_version="3",
        thresholds=[0.2, 0.7],
    )
    assert ExportInfo.from_json(info.to_json()) == info
    older = json.loads(info.to_json())
    del older["thresholds"]
    assert ExportInfo.from_json(json.dumps(older)).thresholds is None

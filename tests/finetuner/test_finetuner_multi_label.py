"""Multi-label training end to end: sigmoids, thresholds chosen on validation, pandas out."""

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image
from test_finetuner import tiny_backbone  # tests/finetuner is on the path

import transferkit as tk
from transferkit.heads import ClassificationHead

NAMES = ["blue", "green", "red"]  # sorted, as the classes come out


def colour_mosaics(count, seed=0):
    """Images whose red, green and blue channels are bright where the class is present."""
    rng = np.random.default_rng(seed)
    present = rng.random((count, 3)) < 0.45
    channels = np.where(present[:, [2, 1, 0]], 210.0, 30.0)  # columns: red, green, blue
    images = channels[:, None, None, :] + rng.normal(0, 15, (count, 16, 16, 3))
    labels = [[NAMES[i] for i in np.flatnonzero(row)] for row in present]
    return np.clip(images, 0, 255).astype("float32"), labels, present


def tiny_finetuner(**kwargs):
    kwargs.setdefault("seed", 1)
    kwargs.setdefault("head", ClassificationHead(dropout=0.0))
    kwargs.setdefault("schedule", tk.Freeze(learning_rate=0.1))
    return tk.FineTuner(tiny_backbone(), weights=None, input_shape=16, **kwargs)


@pytest.fixture(scope="module")
def trained():
    images, labels, present = colour_mosaics(160)
    ft = tiny_finetuner(cache_features=tk.features.FeatureCache())
    history = ft.fit(images, labels, epochs=12, batch_size=16, verbose=0)
    return ft, history


def test_fit_detects_multi_label_and_reports_metrics_that_suit_it(trained):
    ft, history = trained
    assert ft.model.head.multi_label and ft.is_multi_label
    assert ft.class_names == NAMES
    for column in ("binary_accuracy", "pr_auc", "val_loss", "val_pr_auc"):
        assert column in history
    assert "accuracy" not in history
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert ft.model.head.default_loss() == "binary_crossentropy"


def test_thresholds_are_chosen_on_validation_and_used_by_predict(trained, capfd):
    ft, _ = trained
    thresholds = ft.model.head.thresholds
    assert thresholds is not None and len(thresholds) == 3
    assert all(0 < value < 1 for value in thresholds)
    images, _, present = colour_mosaics(40, seed=7)
    predictions = ft.predict(images)
    assert list(predictions.columns) == ["labels", "prob_blue", "prob_green", "prob_red"]
    probabilities = predictions[["prob_blue", "prob_green", "prob_red"]].to_numpy()
    expected = [[NAMES[i] for i in np.flatnonzero(row >= thresholds)] for row in probabilities]
    assert predictions["labels"].tolist() == expected
    # It learned: nearly every class of every image is right.
    assert ((probabilities >= thresholds) == present).mean() > 0.9


def test_evaluate_gives_per_class_and_micro_macro_metrics(trained):
    ft, _ = trained
    images, labels, _ = colour_mosaics(60, seed=3)
    report = ft.evaluate(images, labels)
    assert report.multi_label
    assert list(report.per_class.columns) == [
        "precision",
        "recall",
        "f1",
        "average_precision",
        "threshold",
        "support",
    ]
    for key in ("micro_f1", "macro_f1", "mean_average_precision", "subset_accuracy", "loss"):
        assert 0 <= report.metrics[key] <= 1 or key == "loss"
    assert report.metrics["macro_f1"] > 0.8 and report.metrics["mean_average_precision"] > 0.9
    assert list(report.confusion_matrix.columns) == [
        "true_positives",
        "false_positives",
        "false_negatives",
        "true_negatives",
    ]
    top = report.top_losses(3)
    assert list(top.columns) == ["true_labels", "labels", "loss"]
    assert top["loss"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="multi-label model does not have"):
        report.most_confused()


def test_thresholds_round_trip_through_a_keras_file(trained, tmp_path):
    ft, _ = trained
    ft.save(tmp_path / "model.keras")
    loaded = tk.load(tmp_path / "model.keras")
    assert loaded.model.head.thresholds == ft.model.head.thresholds
    assert loaded.is_multi_label
    images, _, _ = colour_mosaics(10, seed=5)
    pd.testing.assert_frame_equal(loaded.predict(images), ft.predict(images))
    plain = keras.saving.load_model(tmp_path / "model.keras")
    assert plain.head.thresholds == ft.model.head.thresholds and plain.head.multi_label


def test_choose_thresholds_returns_a_table_and_keeps_0_5_for_a_one_sided_class(trained, capfd):
    ft, _ = trained
    images, labels, present = colour_mosaics(40, seed=9)
    labels = [[name for name in row if name != "red"] for row in labels]
    before = list(ft.model.head.thresholds)
    try:
        table = ft.choose_thresholds(images, labels, metric="f1")
        assert list(table.index) == NAMES
        assert table.loc["red", "threshold"] == 0.5 and "no positive" in table.loc["red", "note"]
        assert "keep the threshold 0.5" in capfd.readouterr().err
    finally:
        ft.model.head.thresholds = before


def test_settings_round_trip_with_multi_label_options():
    ft = tk.FineTuner(
        tiny_backbone(),
        weights=None,
        multi_label=True,
        label_delimiter="|",
        label_column=["a", "b"],
    )
    config = ft.get_config()
    assert config["multi_label"] is True and config["label_delimiter"] == "|"
    again = tk.FineTuner.from_config(config)
    assert again.get_config() == config


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"multi_label": "yes"}, "`multi_label` must be True, False or None"),
        ({"multi_label": False, "label_delimiter": "|"}, "which multi_label=False refuses"),
        (
            {"multi_label": False, "head": ClassificationHead(multi_label=True)},
            "they must agree",
        ),
        ({"label_delimiter": ""}, "non-empty string"),
    ],
)
def test_contradictory_settings_are_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tk.FineTuner(tiny_backbone(), weights=None, **kwargs)


def test_unfreezing_find_lr_and_a_dataset_of_multi_hot_rows(tmp_path):
    images, labels, present = colour_mosaics(64, seed=2)
    ft = tiny_finetuner(
        schedule=tk.FreezeUnfreeze(frozen_epochs=1, learning_rate=0.1),
        cache_features=tk.features.FeatureCache(),
    )
    result = ft.find_lr(images, labels, steps=5, batch_size=16)
    assert len(result.frame) >= 1
    dataset = tf.data.Dataset.from_tensor_slices((images, present.astype("float32"))).batch(16)
    validation = tf.data.Dataset.from_tensor_slices((images[:16], present[:16].astype("float32")))
    history = ft.fit(
        dataset,
        validation_data=validation.batch(8),
        epochs=2,
        verbose=0,
    )
    assert history["phase"].tolist() == ["frozen", "unfrozen"]
    assert ft.model.head.thresholds is not None


def test_a_dataframe_with_delimited_labels_and_a_class_only_in_validation(tmp_path):
    images, labels, _ = colour_mosaics(24, seed=4)
    paths = []
    for index, image in enumerate(images.astype("uint8")):
        path = tmp_path / f"{index}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    frame = pd.DataFrame({"path": paths, "tags": [";".join(row) for row in labels]})
    ft = tiny_finetuner(label_column="tags", label_delimiter=";", validation_split=0)
    train, _ = ft.split(frame)
    assert train.multi_label and train.class_names == NAMES
    validation = frame.assign(tags=frame["tags"] + ";purple")
    with pytest.raises(ValueError, match=r"A class only in the validation data cannot be learned"):
        ft.split(frame, validation_data=validation)


def test_class_weight_is_refused_for_multi_label_data():
    images, labels, _ = colour_mosaics(24, seed=4)
    ft = tiny_finetuner()
    with pytest.raises(ValueError, match="class_weight is for single-label data"):
        ft.fit(images, labels, epochs=1, class_weight="balanced", verbose=0)


def test_explain_shows_the_most_probable_class_or_the_one_asked(trained):
    ft, _ = trained
    images, _, _ = colour_mosaics(4, seed=11)
    explanation = ft.explain(images)
    assert explanation.heatmaps.shape == (4, 16, 16)
    probabilities = ft.predict(images)[["prob_blue", "prob_green", "prob_red"]].to_numpy()
    assert explanation.predictions["explained"].tolist() == [
        NAMES[i] for i in probabilities.argmax(axis=1)
    ]
    assert set(ft.explain(images, class_name="red").predictions["explained"]) == {"red"}


def test_multi_label_data_trains_the_same_under_a_strategy():
    """The distributed step's binary cross-entropy and thresholds repeat the one-device run."""
    images, labels, _ = colour_mosaics(96, seed=3)

    def run(distribute):
        keras.utils.set_random_seed(5)
        ft = tiny_finetuner(schedule=tk.FreezeUnfreeze(frozen_epochs=1), distribute=distribute)
        history = ft.fit(images, labels, epochs=3, batch_size=16, shuffle=False, verbose=0)
        return ft, history

    one, expected = run(None)
    mirrored, history = run(tf.distribute.MirroredStrategy(["/cpu:0"]))
    assert mirrored.is_multi_label
    assert isinstance(mirrored.model.distribute_strategy, tf.distribute.MirroredStrategy)
    np.testing.assert_allclose(
        history[["loss", "val_loss"]], expected[["loss", "val_loss"]], rtol=1e-5, atol=1e-6
    )
    for got, want in zip(mirrored.model.get_weights(), one.model.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        mirrored.model.head.thresholds, one.model.head.thresholds, rtol=0, atol=1e-6
    )
    assert mirrored.predict(images[:8])["labels"].tolist() == (
        one.predict(images[:8])["labels"].tolist()
    )

"""class_weight="balanced": weights from the training counts, reported, and their errors."""

import keras
import numpy as np
import pytest

import transferkit as tk
from transferkit.data import as_image_source
from transferkit.evaluation.report import evaluation_report
from transferkit.heads import ClassificationHead
from transferkit.training.class_weights import balanced_class_weight, resolve_class_weight


def tiny_backbone(size=16):
    keras.utils.set_random_seed(1234)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    return keras.Model(inputs, x, name="tiny")


def test_balanced_weights_follow_the_inverse_of_each_class_share():
    np.testing.assert_allclose(balanced_class_weight([10, 90]), [5.0, 100 / 180])
    np.testing.assert_allclose(balanced_class_weight([30, 30, 30]), [1, 1, 1])


def test_resolve_reports_the_weights_in_the_log(capfd):
    source = as_image_source(np.zeros((10, 4, 4, 3)), ["cat"] + ["dog"] * 9)
    weights = resolve_class_weight("balanced", source, source.class_names)
    assert weights == pytest.approx({0: 5.0, 1: 10 / 18})
    err = capfd.readouterr().err
    assert 'class_weight="balanced" from the training counts: cat 5.000 (1 images)' in err


def test_a_class_without_training_images_is_an_error():
    source = as_image_source(
        np.zeros((4, 4, 4, 3)), ["cat", "dog", "cat", "dog"], class_names=["bird", "cat", "dog"]
    )
    with pytest.raises(
        ValueError, match=r"cannot weigh classes \['bird'\]: they have no training"
    ):
        resolve_class_weight("balanced", source, source.class_names)


def test_an_unknown_rule_is_an_error():
    source = as_image_source(np.zeros((2, 4, 4, 3)), ["cat", "dog"])
    with pytest.raises(ValueError, match=r'"balanced" or None\. Received: class_weight=\'auto\''):
        resolve_class_weight("auto", source, source.class_names)


def test_fit_with_balanced_weights_on_an_imbalanced_set(capfd):
    rng = np.random.default_rng(0)
    labels = np.array(["cat"] * 6 + ["dog"] * 30)
    images = np.where((labels == "cat")[:, None, None, None], 200.0, 40.0) + rng.normal(
        0, 10, (36, 16, 16, 3)
    )
    ft = tk.FineTuner(
        tiny_backbone(),
        weights=None,
        head=ClassificationHead(dropout=0.0),
        schedule=tk.Freeze(learning_rate=0.1),
        seed=0,
        cache_features=tk.features.FeatureCache(),
    )
    ft.fit(images, labels, epochs=3, batch_size=8, class_weight="balanced", verbose=0)
    expected = "from the training counts: cat 2.900 (5 images), dog 0.604 (24 images)"
    assert f'class_weight="balanced" {expected}' in capfd.readouterr().err


def test_evaluate_reports_balanced_accuracy_and_pr_auc_for_two_classes():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 0])
    metrics = evaluation_report(probabilities, labels, ["cat", "dog"], None).metrics
    # recall: cat 1/2, dog 2/2
    assert metrics["balanced_accuracy"] == pytest.approx(0.75)
    assert metrics["accuracy"] == pytest.approx(0.75)
    # dog ranked 0.8 (dog), 0.7 (dog), 0.6 (cat), 0.1 (cat): average precision 1.
    assert metrics["pr_auc"] == pytest.approx(1.0)
    three = evaluation_report(np.eye(3)[[0, 1, 2]], np.array([0, 1, 2]), ["a", "b", "c"], None)
    assert "pr_auc" not in three.metrics and three.metrics["balanced_accuracy"] == 1.0

"""Per-class thresholds and average precision, on numbers worked out by hand."""

import keras
import numpy as np
import pytest

from transferkit.heads import ClassificationHead
from transferkit.interpret.thresholds import average_precision, choose_thresholds


def test_average_precision_matches_the_textbook_example():
    # scikit-learn's average_precision_score example: 0.8333.
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    assert average_precision(scores, np.array([0, 0, 1, 1])) == pytest.approx(0.8333, abs=1e-4)
    assert average_precision(scores, np.array([1, 1, 1, 1])) == pytest.approx(1.0)
    assert np.isnan(average_precision(scores, np.zeros(4)))


def test_choose_thresholds_maximises_f1_per_class():
    probabilities = np.array([[0.2, 0.9], [0.3, 0.8], [0.1, 0.7], [0.05, 0.1]])
    truth = np.array([[1, 1], [1, 1], [0, 1], [0, 0]])
    table = choose_thresholds(probabilities, truth, ["rare", "common"])
    # "rare" is only ever given 0.2 and 0.3: at 0.5 its F1 is 0, at 0.15 it is 1.
    assert table.loc["rare", "metric_at_0.5"] == 0.0
    assert table.loc["rare", "metric_at_threshold"] == 1.0
    assert 0.1 < table.loc["rare", "threshold"] < 0.2
    assert table.loc["common", "metric_at_threshold"] == 1.0


def test_a_class_with_one_kind_of_image_keeps_0_5():
    table = choose_thresholds(np.array([[0.9], [0.1]]), np.array([[1], [1]]), ["all"])
    assert table.loc["all", "threshold"] == 0.5 and "no negative" in table.loc["all", "note"]


def test_the_head_carries_thresholds_in_its_config():
    head = ClassificationHead(num_classes=2, multi_label=True, thresholds=[0.3, 0.6])
    again = ClassificationHead.from_config(head.get_config())
    assert again.thresholds == [0.3, 0.6]
    np.testing.assert_array_equal(
        again.predicted_mask(np.array([[0.35, 0.5], [0.2, 0.7]])), [[True, False], [False, True]]
    )
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(head))
    assert restored.thresholds == [0.3, 0.6]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 2, "thresholds": [0.5, 0.5]}, "are for a multi-label head"),
        ({"num_classes": 3, "multi_label": True, "thresholds": [0.5]}, "one value per class"),
        ({"num_classes": 1, "multi_label": True, "thresholds": [1.0]}, "strictly between 0"),
    ],
)
def test_bad_thresholds_are_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClassificationHead(**kwargs)

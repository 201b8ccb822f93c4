"""The label-smoothing loss of `ClassificationHead(label_smoothing=...)`."""

import keras
import numpy as np

from transferkit.heads import SmoothedSparseCategoricalCrossentropy

LABELS = np.array([0, 2, 1])
PROBABILITIES = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.25, 0.5, 0.25]], "float32")


def test_it_is_keras_cross_entropy_on_smoothed_one_hot_labels():
    loss = SmoothedSparseCategoricalCrossentropy(label_smoothing=0.1)
    one_hot = keras.ops.one_hot(LABELS, 3)
    expected = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(one_hot, PROBABILITIES)
    np.testing.assert_allclose(loss(LABELS, PROBABILITIES), expected, rtol=1e-6)

    plain = SmoothedSparseCategoricalCrossentropy(label_smoothing=0.0)
    sparse = keras.losses.SparseCategoricalCrossentropy()(LABELS, PROBABILITIES)
    np.testing.assert_allclose(plain(LABELS, PROBABILITIES), sparse, rtol=1e-6)


def test_it_round_trips_through_keras_serialization():
    loss = SmoothedSparseCategoricalCrossentropy(label_smoothing=0.15, name="smooth")
    config = keras.saving.serialize_keras_object(loss)
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, SmoothedSparseCategoricalCrossentropy)
    assert restored.get_config() == loss.get_config()
    np.testing.assert_allclose(restored(LABELS, PROBABILITIES), loss(LABELS, PROBABILITIES))

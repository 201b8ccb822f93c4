"""bench/export.py's measurement of what float16 weights alone do to the Keras model."""

import numpy as np

from bench.export import float16_weights_in_keras


def test_float16_weights_move_the_model_a_little_and_are_restored(finetuner, images):
    model = finetuner.model
    before = [variable.numpy().copy() for variable in model.weights]
    probabilities = model.predict(images, verbose=0)

    max_abs_diff, agreement = float16_weights_in_keras(model, images)

    # float16 keeps 11 significant bits: probabilities move, but by far less than 1e-2.
    assert 0 < max_abs_diff < 1e-2
    assert 0.9 <= agreement <= 1.0
    for variable, value in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
    np.testing.assert_array_equal(model.predict(images, verbose=0), probabilities)

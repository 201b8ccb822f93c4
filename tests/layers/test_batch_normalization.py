"""BFloat16BatchNormalization: Keras's layer, minus the float32 round trip of frozen BatchNorm."""

import keras
import numpy as np
import pytest

from transferkit.layers import BFloat16BatchNormalization
from transferkit.precision import dtype_policy_scope, with_precision


def make_pair(policy, **kwargs):
    """Keras's layer and ours under `policy`, built, holding the same non-trivial weights."""
    rng = np.random.default_rng(0)
    with dtype_policy_scope(policy):
        keras_layer = keras.layers.BatchNormalization(**kwargs)
        ours = BFloat16BatchNormalization(**kwargs)
    keras_layer.build((None, 4, 4, 6))
    ours.build((None, 4, 4, 6))
    weights = [rng.uniform(0.5, 2.0, w.shape).astype("float32") for w in keras_layer.weights]
    weights[len(weights) - 2] = rng.normal(0, 3, weights[-2].shape).astype("float32")
    keras_layer.set_weights(weights)
    ours.set_weights(weights)
    return keras_layer, ours


def images(seed=1):
    return np.random.default_rng(seed).normal(2.0, 4.0, (3, 4, 4, 6)).astype("float32")


def as_float(x):
    return keras.ops.convert_to_numpy(keras.ops.cast(x, "float32"))


@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False)])
def test_in_inference_under_bfloat16_it_computes_in_bfloat16_what_keras_computes(center, scale):
    keras_layer, ours = make_pair("mixed_bfloat16", center=center, scale=scale)
    x = keras.ops.cast(images(), "bfloat16")
    expected, got = keras_layer(x, training=False), ours(x, training=False)
    assert keras.backend.standardize_dtype(got.dtype) == "bfloat16"
    # Keras normalizes in float32 and rounds once; ours rounds the inputs' product and sum:
    # a few bfloat16 steps (8 bits of mantissa) apart at most.
    np.testing.assert_allclose(as_float(got), as_float(expected), rtol=2e-2, atol=5e-2)
    with dtype_policy_scope("float32"):
        reference = keras.layers.BatchNormalization(center=center, scale=scale)
        reference.build((None, 4, 4, 6))
    reference.set_weights(keras_layer.get_weights())
    exact = keras.ops.convert_to_numpy(reference(images(), training=False))
    np.testing.assert_allclose(as_float(got), exact, rtol=3e-2, atol=1e-1)


def test_a_frozen_layer_in_a_training_step_also_takes_the_bfloat16_path():
    keras_layer, ours = make_pair("mixed_bfloat16")
    ours.trainable = False
    x = keras.ops.cast(images(), "bfloat16")
    np.testing.assert_array_equal(
        as_float(ours(x, training=True)), as_float(ours(x, training=False))
    )
    # Its statistics are not touched.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(ours.moving_mean), keras_layer.get_weights()[2]
    )


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_training_its_statistics_is_keras_own_code(policy):
    keras_layer, ours = make_pair(policy)
    x = keras.ops.cast(images(), keras_layer.compute_dtype)
    np.testing.assert_array_equal(
        as_float(ours(x, training=True)), as_float(keras_layer(x, training=True))
    )
    for mine, theirs in zip(ours.weights, keras_layer.weights, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs)
        )


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
def test_outside_bfloat16_inference_is_keras_own_code(policy):
    keras_layer, ours = make_pair(policy)
    x = keras.ops.cast(images(), keras_layer.compute_dtype)
    np.testing.assert_array_equal(
        as_float(ours(x, training=False)), as_float(keras_layer(x, training=False))
    )


def test_gradients_flow_through_the_bfloat16_path():
    import tensorflow as tf

    _, ours = make_pair("mixed_bfloat16")
    x = tf.cast(tf.constant(images()), tf.bfloat16)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(tf.cast(ours(x, training=False), tf.float32))
    gamma, _, _, variance = ours.get_weights()
    slope = gamma / np.sqrt(variance + ours.epsilon)
    np.testing.assert_allclose(
        as_float(tape.gradient(y, x)), np.broadcast_to(slope, x.shape), rtol=1e-2
    )


def test_it_round_trips_in_a_saved_model(tmp_path):
    _, ours = make_pair("mixed_bfloat16", epsilon=1e-3, momentum=0.9)
    assert BFloat16BatchNormalization.from_config(ours.get_config()).get_config() == (
        ours.get_config()
    )
    inputs = keras.Input((4, 4, 6))
    model = keras.Model(inputs, ours(inputs))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.layers[1]) is BFloat16BatchNormalization
    assert loaded.layers[1].dtype_policy.name == "mixed_bfloat16"
    np.testing.assert_array_equal(
        as_float(loaded(images(), training=False)), as_float(model(images(), training=False))
    )


def test_with_precision_swaps_the_class_both_ways_and_keeps_the_weights():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    model.get_layer("bn").trainable = False

    in_bfloat16 = with_precision(model, "mixed_bfloat16")
    assert type(in_bfloat16.get_layer("bn")) is BFloat16BatchNormalization
    assert not in_bfloat16.get_layer("bn").trainable
    assert type(with_precision(model, "mixed_float16").get_layer("bn")) is (
        keras.layers.BatchNormalization
    )
    back = with_precision(in_bfloat16, "float32")
    assert type(back.get_layer("bn")) is keras.layers.BatchNormalization
    assert back.get_layer("bn").dtype_policy.name == "float32"
    for mine, theirs in zip(back.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)

import keras
import numpy as np
import pytest

from transferkit.optimizers import LayerwiseAdam, LayerwiseSGD, get_optimizer


def two_layer_model():
    inputs = keras.Input((3,))
    x = keras.layers.Dense(4, name="low")(inputs)
    outputs = keras.layers.Dense(1, name="top")(x)
    return keras.Model(inputs, outputs)


def one_step(model, optimizer):
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.compile(optimizer=optimizer, loss="mse")
    model.train_on_batch(np.ones((4, 3)), np.full((4, 1), 5.0))
    return {
        w.path: np.abs(w.numpy() - b) for w, b in zip(model.trainable_weights, before, strict=True)
    }


def test_adam_applies_each_groups_learning_rate():
    # Adam's first step moves every weight by about learning_rate * multiplier.
    model = two_layer_model()
    steps = one_step(model, LayerwiseAdam(learning_rate=1e-2, lr_multipliers={"low/": 0.1}))
    np.testing.assert_allclose(steps["low/kernel"], 1e-3, rtol=1e-3)
    np.testing.assert_allclose(steps["top/kernel"], 1e-2, rtol=1e-3)


def test_sgd_step_is_scaled_exactly():
    keras.utils.set_random_seed(0)
    plain = two_layer_model()
    keras.utils.set_random_seed(0)
    scaled = two_layer_model()
    plain_steps = one_step(plain, keras.optimizers.SGD(learning_rate=1e-2))
    scaled_steps = one_step(scaled, LayerwiseSGD(learning_rate=1e-2, lr_multipliers={"top/": 0.5}))
    np.testing.assert_allclose(
        scaled_steps["top/kernel"], plain_steps["top/kernel"] * 0.5, rtol=1e-5
    )
    np.testing.assert_allclose(scaled_steps["low/kernel"], plain_steps["low/kernel"], rtol=1e-5)


def test_longest_prefix_wins():
    optimizer = LayerwiseAdam(lr_multipliers={"block": 0.5, "block_2/": 0.1})
    assert optimizer.multiplier_for("block_2/kernel") == 0.1
    assert optimizer.multiplier_for("block_1/kernel") == 0.5
    assert optimizer.multiplier_for("head/kernel") == 1.0


def test_multipliers_survive_saving(tmp_path):
    model = two_layer_model()
    optimizer = LayerwiseAdam(learning_rate=1e-3, lr_multipliers={"low/": 0.25})
    one_step(model, optimizer)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.optimizer, LayerwiseAdam)
    assert loaded.optimizer.lr_multipliers == {"low/": 0.25}
    # Optimizer state (Adam's moments, the step count) is restored too.
    assert int(loaded.optimizer.iterations) == 1
    steps = one_step(loaded, loaded.optimizer)
    assert steps["low/kernel"].mean() < steps["top/kernel"].mean()


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown optimizer 'rmsprop'"):
        get_optimizer("rmsprop", 1e-3)
    with pytest.raises(ValueError, match="non-negative"):
        LayerwiseAdam(lr_multipliers={"low/": -1})

"""Optimizers with a learning-rate multiplier per layer group (discriminative rates).

Keras optimizers apply one learning rate to every variable. Fine-tuning wants
lower rates deep in a pretrained backbone than in a fresh head (fastai's
discriminative learning rates). These optimizers take a mapping from variable
path prefixes to multipliers and scale the learning rate of each variable in
`update_step`, so the optimizer's own state (moments) and its serialization
stay exactly as Keras keeps them, and the multipliers travel with a saved model.
"""

import keras


class _LayerwiseMixin:
    """Scales each variable's learning rate by the multiplier of its longest matching prefix."""

    def __init__(self, *args, lr_multipliers: dict[str, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        lr_multipliers = dict(lr_multipliers or {})
        for prefix, multiplier in lr_multipliers.items():
            if not isinstance(prefix, str) or not float(multiplier) >= 0:
                raise ValueError(
                    "`lr_multipliers` maps variable path prefixes (str) to non-negative "
                    f"floats. Received: {prefix!r}: {multiplier!r}"
                )
        self.lr_multipliers = {prefix: float(value) for prefix, value in lr_multipliers.items()}
        self._variable_multipliers = []

    def multiplier_for(self, path: str) -> float:
        """The learning-rate multiplier of the variable at `path` (1.0 when none matches)."""
        best, multiplier = -1, 1.0
        for prefix, value in self.lr_multipliers.items():
            if path.startswith(prefix) and len(prefix) > best:
                best, multiplier = len(prefix), value
        return multiplier

    def build(self, variables):
        super().build(variables)
        self._variable_multipliers = [self.multiplier_for(v.path) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        multiplier = self._variable_multipliers[self._get_variable_index(variable)]
        if multiplier != 1.0:
            learning_rate = learning_rate * multiplier
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "lr_multipliers": dict(self.lr_multipliers)}


@keras.saving.register_keras_serializable(package="transferkit")
class LayerwiseAdam(_LayerwiseMixin, keras.optimizers.Adam):
    """Adam with a learning-rate multiplier per layer group.

    Args:
        lr_multipliers: dict or None. Maps a variable path prefix (such as
            `"mobilenet_1.00_224/conv_pw_13"`) to a multiplier of the learning
            rate; a variable takes the multiplier of its longest matching
            prefix, or 1.0. Defaults to `None` (plain Adam).
        **kwargs: Arguments of `keras.optimizers.Adam`.

    Example:

    >>> optimizer = LayerwiseAdam(learning_rate=1e-3, lr_multipliers={"backbone/": 0.1})
    >>> optimizer.multiplier_for("backbone/conv1/kernel")
    0.1
    """


@keras.saving.register_keras_serializable(package="transferkit")
class LayerwiseAdamW(_LayerwiseMixin, keras.optimizers.AdamW):
    """AdamW with a learning-rate multiplier per layer group.

    Args:
        lr_multipliers: dict or None. As in `LayerwiseAdam`.
        **kwargs: Arguments of `keras.optimizers.AdamW`.
    """


@keras.saving.register_keras_serializable(package="transferkit")
class LayerwiseSGD(_LayerwiseMixin, keras.optimizers.SGD):
    """SGD with a learning-rate multiplier per layer group.

    Args:
        lr_multipliers: dict or None. As in `LayerwiseAdam`.
        **kwargs: Arguments of `keras.optimizers.SGD`.
    """


OPTIMIZERS = {"adam": LayerwiseAdam, "adamw": LayerwiseAdamW, "sgd": LayerwiseSGD}


def get_optimizer(name: str, learning_rate, lr_multipliers: dict[str, float] | None = None):
    """Builds a layer-wise optimizer by name (`"adam"`, `"adamw"` or `"sgd"`).

    Raises:
        ValueError: if `name` is not one of them.
    """
    key = str(name).lower()
    if key not in OPTIMIZERS:
        raise ValueError(
            f"Unknown optimizer {name!r}. transferkit supports {sorted(OPTIMIZERS)} "
            "(each with per-layer learning-rate multipliers)."
        )
    return OPTIMIZERS[key](learning_rate=learning_rate, lr_multipliers=lr_multipliers)

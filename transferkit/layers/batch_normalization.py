"""A BatchNormalization that stays in bfloat16 where it only applies its moving statistics."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="transferkit")
class BFloat16BatchNormalization(keras.layers.BatchNormalization):
    """Keras's `BatchNormalization`, computing in bfloat16 when it normalizes by its statistics.

    Keras's layer casts bfloat16 inputs to float32, normalizes, and casts the
    result back, to keep the *moments* of a training batch from overflowing. In
    inference mode (a frozen BatchNorm, as transferkit fine-tunes by default)
    there are no moments to compute: normalization is the affine map
    `x * scale + offset`, with `scale = gamma / sqrt(moving_variance + epsilon)`
    and `offset = beta - moving_mean * scale`. This layer computes `scale` and
    `offset` in float32 from its float32 variables and applies them in the
    layer's compute dtype, so a ResNet under `"mixed_bfloat16"` runs no casts
    between its convolutions (measured with `python -m bench.precision`).

    Everything else is Keras's layer: the same arguments and weights (in the
    same order), and its own `call` when the layer trains its statistics
    (`training=True` on a trainable layer), when it computes in float32 or
    float16 (whose narrow range is why Keras casts), or when `axis` is not the
    last one. transferkit uses it only in the bfloat16 copy a `FineTuner`
    trains (`transferkit.precision.with_precision`); models it keeps, saves and
    exports hold Keras's `BatchNormalization`.
    """

    def call(self, inputs, training=None, mask=None):
        rank = len(inputs.shape)
        if (
            (training and self.trainable)
            or self.compute_dtype != "bfloat16"
            or self.axis not in (-1, rank - 1)
        ):
            return super().call(inputs, training=training, mask=mask)
        scale = ops.rsqrt(ops.cast(self.moving_variance, "float32") + self.epsilon)
        if self.scale:
            scale = scale * ops.cast(self.gamma, "float32")
        offset = -ops.cast(self.moving_mean, "float32") * scale
        if self.center:
            offset = offset + ops.cast(self.beta, "float32")
        inputs = ops.cast(inputs, self.compute_dtype)
        return inputs * ops.cast(scale, self.compute_dtype) + ops.cast(offset, self.compute_dtype)

"""Training under a `tf.distribute` strategy: a custom step, because Keras's `fit` cannot.

Keras 3's `fit` fails under `MultiWorkerMirroredStrategy` (the distributed
dataset's per-replica values reach a `convert_to_tensor`), so every strategy
runs this loop instead, one code path for one machine and for many:

- the global batch (`batch_size`) is split evenly over the replicas by
  `strategy.experimental_distribute_dataset` (every worker builds the same
  seeded pipeline and keeps its share of each batch);
- each replica sums its per-example losses and divides by the number of
  examples in the *global* batch (all-reduced, so a short last batch counts
  right); the Keras optimizer's `apply_gradients` sums the replicas'
  gradients: each step is the one-device step on the same global batch,
  so the learning rates need no scaling;
- the loss and accuracy of an epoch are sums reduced over all replicas, so
  every worker's callbacks see the same numbers and take the same decisions
  (the best epoch, early stopping).

The model must have been created, and compiled (its optimizer built), inside
`strategy.scope()`.
"""

import keras
import numpy as np
import tensorflow as tf

_LOSSES = {
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
}


def _per_example_loss(loss: str):
    return _LOSSES[loss](reduction=None)


def _correct(y, outputs, loss: str):
    """Per-example accuracy (the fraction of right outputs for multi-label rows)."""
    if loss == "binary_crossentropy":
        y = tf.reshape(tf.cast(y, outputs.dtype), tf.shape(outputs))
        right = tf.cast(tf.equal(tf.cast(outputs > 0.5, outputs.dtype), y), tf.float32)
        return tf.reduce_mean(right, axis=-1)
    predicted = tf.argmax(outputs, axis=-1, output_type=tf.int64)
    return tf.cast(tf.equal(predicted, tf.cast(tf.reshape(y, [-1]), tf.int64)), tf.float32)


def _distributed(strategy, dataset):
    options = tf.data.Options()
    # Every worker builds the same seeded pipeline; each keeps its share of the examples.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


class DistributedSteps:
    """The compiled train and evaluation steps of one model under one strategy.

    Args:
        strategy: `tf.distribute.Strategy`.
        model: `keras.Model`, compiled inside the strategy's scope.
        loss: str. `"sparse_categorical_crossentropy"` or `"binary_crossentropy"`.
        class_weight: dict or None. Class index -> weight of its examples' loss.
    """

    def __init__(self, strategy, model, loss: str, class_weight: dict | None = None):
        self.strategy = strategy
        self.model = model
        self.loss = loss
        with strategy.scope():
            self.loss_fn = _per_example_loss(loss)
        weights = None
        if class_weight:
            size = max(int(key) for key in class_weight) + 1
            table = np.ones(size, dtype="float32")
            for key, value in class_weight.items():
                table[int(key)] = value
            weights = tf.constant(table)
        self.class_weights = weights
        self._train = tf.function(self._train_step)
        self._evaluate = tf.function(self._evaluate_step)

    def _sums(self, x, y, training):
        outputs = self.model(x, training=training)
        per_example = self.loss_fn(y, outputs)
        # As in Keras, class weights weigh the training loss only, not the validation loss.
        if training and self.class_weights is not None:
            per_example = per_example * tf.gather(
                self.class_weights, tf.cast(tf.reshape(y, [-1]), tf.int32)
            )
        correct = _correct(y, outputs, self.loss)
        count = tf.cast(tf.shape(per_example)[0], tf.float32)
        return tf.reduce_sum(per_example), tf.reduce_sum(correct), count

    def _train_step(self, x, y):
        def step(x, y):
            context = tf.distribute.get_replica_context()
            with tf.GradientTape() as tape:
                loss_sum, correct, count = self._sums(x, y, training=True)
                global_count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
                loss = loss_sum / tf.maximum(global_count, 1.0)
                if self.model.losses:
                    loss += tf.add_n(self.model.losses) / context.num_replicas_in_sync
            variables = self.model.trainable_variables
            gradients = tape.gradient(loss, variables)
            self.model.optimizer.apply_gradients(zip(gradients, variables, strict=True))
            return tf.stack([loss_sum, correct, count])

        per_replica = self.strategy.run(step, args=(x, y))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def _evaluate_step(self, x, y):
        def step(x, y):
            return tf.stack(self._sums(x, y, training=False))

        per_replica = self.strategy.run(step, args=(x, y))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def _epoch(self, step, dataset, callbacks=None):
        totals = np.zeros(3)
        for index, (x, y) in enumerate(dataset):
            if callbacks is not None:
                callbacks.on_train_batch_begin(index)
            totals += step(x, y).numpy()
            if callbacks is not None:
                callbacks.on_train_batch_end(index)
        count = max(totals[2], 1.0)
        return {"loss": totals[0] / count, "accuracy": totals[1] / count}

    def fit(
        self,
        train,
        validation,
        *,
        initial_epoch: int,
        epochs: int,
        callbacks: list,
        verbose,
        steps: int,
    ) -> None:
        """Runs epochs `initial_epoch` to `epochs` with Keras's callback protocol.

        Args:
            train: batched `(x, y)` dataset; seeded, it reshuffles in the same
                order on every worker at each epoch.
            validation: batched `(x, y)` dataset or None.
            initial_epoch, epochs, callbacks, verbose: as in Keras's `fit`.
            steps: int. Steps per epoch (for the progress bar).
        """
        callback_list = keras.callbacks.CallbackList(
            callbacks,
            add_history=True,
            add_progbar=verbose not in (0, False),
            model=self.model,
            verbose=1 if verbose == "auto" else verbose,
            epochs=epochs,
            steps=steps,
        )
        train = _distributed(self.strategy, train)
        if validation is not None:
            validation = _distributed(self.strategy, validation)
        self.model.stop_training = False
        callback_list.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            logs = self._epoch(self._train, train, callback_list)
            if validation is not None:
                values = self._epoch(self._evaluate, validation)
                logs.update({f"val_{key}": value for key, value in values.items()})
            callback_list.on_epoch_end(epoch, logs)
            if self.model.stop_training:
                break
        callback_list.on_train_end()

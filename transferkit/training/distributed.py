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
- the loss of an epoch is a sum reduced over all replicas, and its metrics are
  the compiled model's own (the head's `default_metrics`, as on one device),
  updated on each replica and read across all of them: every worker's
  callbacks see the same numbers under the same names, and take the same
  decisions (the best epoch, early stopping).

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


def _per_example_loss(loss):
    """The loss per example (no reduction): a loss name, or a loss object's copy."""
    if isinstance(loss, str):
        return _LOSSES[loss](reduction=None)
    # A loss object (label smoothing): the same loss, unreduced.
    return type(loss).from_config({**loss.get_config(), "reduction": None})


def _is_binary(loss) -> bool:
    return loss == "binary_crossentropy" or isinstance(loss, keras.losses.BinaryCrossentropy)


def epoch_metrics(metrics, loss) -> list:
    """Fresh metric objects for the compiled `metrics`, as Keras's `compile` resolves them.

    `"accuracy"` becomes binary accuracy for a sigmoid head and sparse categorical
    accuracy otherwise (named `accuracy`, as in Keras); metric objects are
    copied from their config, so the distributed step keeps its own state.
    """
    resolved = []
    for metric in metrics:
        if metric == "accuracy":
            sigmoid = _is_binary(loss)
            kind = (
                keras.metrics.BinaryAccuracy
                if sigmoid
                else keras.metrics.SparseCategoricalAccuracy
            )
            resolved.append(kind(name="accuracy"))
        else:
            resolved.append(type(metric).from_config(metric.get_config()))
    return resolved


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
        loss: str or `keras.losses.Loss`. The head's `default_loss()`.
        metrics: list. The metrics the model is compiled with (`"accuracy"` or
            Keras metric objects), reported under their names after the loss.
        class_weight: dict or None. Class index -> weight of its examples' loss.
    """

    def __init__(self, strategy, model, loss, metrics: list, class_weight: dict | None = None):
        self.strategy = strategy
        self.model = model
        self.loss = loss
        with strategy.scope():
            self.loss_fn = _per_example_loss(loss)
            # Metric variables are summed across replicas when read (Keras makes them
            # sync-on-read), so every worker reads the metric of the whole global batch.
            self.metrics = epoch_metrics(metrics, loss)
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
        for metric in self.metrics:
            metric.update_state(y, outputs)
        count = tf.cast(tf.shape(per_example)[0], tf.float32)
        return tf.reduce_sum(per_example), count

    def _train_step(self, x, y):
        def step(x, y):
            context = tf.distribute.get_replica_context()
            with tf.GradientTape() as tape:
                loss_sum, count = self._sums(x, y, training=True)
                global_count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
                loss = loss_sum / tf.maximum(global_count, 1.0)
                if self.model.losses:
                    loss += tf.add_n(self.model.losses) / context.num_replicas_in_sync
            variables = self.model.trainable_variables
            gradients = tape.gradient(loss, variables)
            self.model.optimizer.apply_gradients(zip(gradients, variables, strict=True))
            return tf.stack([loss_sum, count])

        per_replica = self.strategy.run(step, args=(x, y))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def _evaluate_step(self, x, y):
        def step(x, y):
            return tf.stack(self._sums(x, y, training=False))

        per_replica = self.strategy.run(step, args=(x, y))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def _epoch(self, step, dataset, callbacks=None):
        with self.strategy.scope():
            for metric in self.metrics:
                metric.reset_state()
        totals = np.zeros(2)
        for index, (x, y) in enumerate(dataset):
            if callbacks is not None:
                callbacks.on_train_batch_begin(index)
            totals += step(x, y).numpy()
            if callbacks is not None:
                callbacks.on_train_batch_end(index)
        logs = {"loss": totals[0] / max(totals[1], 1.0)}
        # Read in the strategy's cross-replica context: the sum over every replica.
        with self.strategy.scope():
            logs.update({metric.name: float(metric.result()) for metric in self.metrics})
        return logs

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

"""TensorBoard logs of a whole run: Keras's own callback, plus the phases marked."""

import dataclasses
import os
from collections.abc import Sequence

import keras
import tensorflow as tf

# Inside the run folder: `tensorboard --logdir RUN_DIR` finds it.
LOG_FOLDER = "logs"


class PhaseMarker(keras.callbacks.Callback):
    """Marks the phases of a run in its TensorBoard logs.

    Writes, next to Keras's `TensorBoard` scalars of the same run, an
    `epoch_phase` scalar (the phase's number, 0 for the first) at every epoch
    and a `phase` text at the first epoch of each phase, so the step where the
    backbone unfreezes shows on every curve's time axis.

    Args:
        log_dir: str or path. The log folder given to `keras.callbacks.TensorBoard`.
        phases: sequence of `Phase`. The run's plan (`schedule.plan(epochs)`).
    """

    def __init__(self, log_dir: str | os.PathLike, phases: Sequence):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.phases = [dataclasses.asdict(phase) for phase in phases]
        self._writer = None

    def _phase_at(self, epoch):
        for index, phase in enumerate(self.phases):
            if phase["start_epoch"] <= epoch < phase["end_epoch"]:
                return index, phase
        return None, None

    def on_epoch_begin(self, epoch, logs=None):
        index, phase = self._phase_at(epoch)
        if phase is None:
            return
        if self._writer is None:
            # The "train" run of Keras's callback: one run, the phases on its axis.
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "train"))
        with self._writer.as_default():
            tf.summary.scalar("epoch_phase", index, step=epoch)
            if epoch == phase["start_epoch"]:
                blocks = phase["trainable_blocks"]
                trains = {0: "backbone frozen", None: "whole backbone trains"}.get(
                    blocks, f"top {blocks} backbone blocks train"
                )
                tf.summary.text(
                    "phase",
                    f"epoch {epoch + 1}: phase {phase['name']!r} starts ({trains}, head "
                    f"learning rate {phase['learning_rate']:g})",
                    step=epoch,
                )
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()


def tensorboard_callbacks(log_dir: str | os.PathLike, phases: Sequence) -> list:
    """Callbacks that log every phase of a `FineTuner.fit` run as one TensorBoard run.

    Keras's own `keras.callbacks.TensorBoard` writes the losses, metrics and
    learning rate of each epoch; the phases run as separate Keras `fit` calls
    that start at their first epoch, so their curves join into one. A
    `PhaseMarker` marks where each phase starts.

    Args:
        log_dir: str or path. The log folder, e.g. `RUN_DIR/logs`.
        phases: sequence of `Phase`. The run's plan: `schedule.plan(epochs)`.

    Returns:
        A list of callbacks for `FineTuner.fit(callbacks=...)`.

    Example:

    ```python
    plan = tk.schedules.get(ft.schedule).plan(5)
    ft.fit("data/train", epochs=5, callbacks=tk.report.tensorboard_callbacks("runs/a/logs", plan))
    ```
    """
    log_dir = os.fspath(log_dir)
    return [
        keras.callbacks.TensorBoard(log_dir, write_graph=False, update_freq="epoch"),
        PhaseMarker(log_dir, phases),
    ]

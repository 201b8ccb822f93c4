"""Keeping the weights of the best epoch, so fine-tuning never ends worse than it was."""

import numpy as np

from transferkit.training.hooks import RunHook
from transferkit.utils.log import logger


class BestWeights(RunHook):
    """Remembers the full model's weights at the epoch with the lowest validation loss.

    Unfreezing a pretrained backbone can lose accuracy (`python -m
    bench.keras_recipe`: the Keras guide's recipe went from 0.858 held-out after
    its frozen phase to 0.843 after one unfrozen epoch). At the end of the run
    this hook puts back the best epoch's weights when a later epoch was worse,
    so the fine-tune phase cannot leave the model worse on the validation data
    than the warm-up did.

    Args:
        monitor: str. The validation metric, lower is better. Defaults to
            `"val_loss"`.
    """

    def __init__(self, monitor: str = "val_loss"):
        super().__init__()
        self.monitor = monitor
        self.best = np.inf
        self.best_epoch = None
        self.last_epoch = None
        self.weights = None
        self.run = None

    def on_run_begin(self, run) -> None:
        self.run = run

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        self.last_epoch = epoch
        if value is None or not value < self.best:
            return
        self.best, self.best_epoch = float(value), epoch
        # The whole classifier's weights: in a phase on cached features Keras trains
        # (and `self.model` is) the head alone.
        self.weights = [np.array(w) for w in self.run.training_model.get_weights()]

    def on_run_end(self, run) -> None:
        self.restore(run.model)

    def restore(self, model) -> bool:
        """Puts back the best weights if the last epoch was not the best; says so in the log."""
        if self.weights is None or self.best_epoch == self.last_epoch:
            return False
        model.set_weights(self.weights)
        logger.info(
            f"restored the weights of epoch {self.best_epoch + 1} ({self.monitor} "
            f"{self.best:.4f}), better than the last epoch's"
        )
        return True

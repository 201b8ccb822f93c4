"""Keeping the weights of the best epoch, so fine-tuning never ends worse than it was."""

import keras
import numpy as np

from transferkit.utils.log import logger


class BestWeights(keras.callbacks.Callback):
    """Remembers the full model's weights at the epoch with the lowest validation loss.

    Unfreezing a pretrained backbone can lose accuracy (`python -m
    bench.keras_recipe`: the Keras guide's recipe went from 0.858 held-out after
    its frozen phase to 0.843 after one unfrozen epoch). At the end of `fit` the
    FineTuner puts back the best epoch's weights when a later epoch was worse, so
    the fine-tune phase cannot leave the model worse on the validation data than
    the warm-up did.

    Args:
        finetuner: `FineTuner`. Whose full model to watch (in a frozen phase on
            cached features Keras runs the head alone; the full model is kept).
        monitor: str. The validation metric, lower is better. Defaults to
            `"val_loss"`.
    """

    def __init__(self, finetuner, monitor: str = "val_loss"):
        super().__init__()
        self.finetuner = finetuner
        self.monitor = monitor
        self.best = np.inf
        self.best_epoch = None
        self.last_epoch = None
        self.weights = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        self.last_epoch = epoch
        if value is None or not value < self.best:
            return
        self.best, self.best_epoch = float(value), epoch
        self.weights = [np.array(w) for w in self.finetuner.model.get_weights()]

    def restore(self) -> bool:
        """Puts back the best weights if the last epoch was not the best; says so in the log."""
        if self.weights is None or self.best_epoch == self.last_epoch:
            return False
        self.finetuner.model.set_weights(self.weights)
        logger.info(
            f"restored the weights of epoch {self.best_epoch + 1} ({self.monitor} "
            f"{self.best:.4f}), better than the last epoch's"
        )
        return True

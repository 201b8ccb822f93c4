"""Runs and their execution: what one `fit` decides, the trainer, and run hooks.

`FineTuner.fit` prepares a `Run` and hands each of its phases to a `Trainer`;
what belongs to the run as a whole (the history, the best weights, checkpoints,
calibration and decision thresholds) is a `RunHook`. This package never imports
`transferkit.finetuner`: the composer builds on it, not the other way round.
"""

from transferkit.training.best_weights import BestWeights
from transferkit.training.checkpoint import RunCheckpoint
from transferkit.training.decision_hooks import ChooseThresholds, ResetCalibration
from transferkit.training.distribution import resolve_strategy
from transferkit.training.history import HistoryRecorder
from transferkit.training.hooks import RunHook, RunHookError
from transferkit.training.run import Run
from transferkit.training.trainer import Trainer


def fit_hooks(restore_best_weights: bool, checkpoint: RunCheckpoint | None, batch_size: int):
    """The run hooks of a `FineTuner.fit`, in order.

    The history first (the checkpoint saves it), the best weights (when asked,
    with validation data), the checkpoint, the calibration reset and the
    multi-label thresholds (chosen after the best weights are back).
    """
    hooks = [HistoryRecorder()]
    if restore_best_weights:
        hooks.append(BestWeights())
    if checkpoint is not None:
        hooks.append(checkpoint)
    return [*hooks, ResetCalibration(), ChooseThresholds(batch_size=batch_size)]


__all__ = [
    "BestWeights",
    "ChooseThresholds",
    "HistoryRecorder",
    "ResetCalibration",
    "Run",
    "RunCheckpoint",
    "RunHook",
    "RunHookError",
    "Trainer",
    "fit_hooks",
    "resolve_strategy",
]

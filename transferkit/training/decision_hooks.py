"""Run hooks for what a run changes in the model's decisions: calibration and thresholds."""

from transferkit import defaults
from transferkit.evaluation import choose_classifier_thresholds
from transferkit.interpret.model import reset_calibration
from transferkit.interpret.thresholds import DEFAULT_THRESHOLD_METRIC
from transferkit.training.hooks import RunHook
from transferkit.utils.log import logger


class ResetCalibration(RunHook):
    """Resets the head's calibration when a run begins: it fitted the weights before the run.

    The temperature, a two-class decision threshold and per-class thresholds
    go back to their defaults (the log says so), in the model and in its
    training copy.
    """

    def on_run_begin(self, run) -> None:
        head = run.model.head
        reset_calibration(head)
        copy = run.training_model.head
        if copy is not head:
            copy.temperature.assign(head.temperature)
            copy.decision_threshold, copy.thresholds = head.decision_threshold, head.thresholds


class ChooseThresholds(RunHook):
    """Chooses a multi-label head's per-class decision thresholds on the run's validation data.

    Args:
        metric: str. What each threshold maximises (see
            `FineTuner.choose_thresholds`). Defaults to `"f1"`.
        batch_size: int. Defaults to `32`.
    """

    def __init__(
        self, metric: str = DEFAULT_THRESHOLD_METRIC, batch_size: int = defaults.BATCH_SIZE
    ):
        super().__init__()
        self.metric = metric
        self.batch_size = batch_size

    def on_run_end(self, run) -> None:
        if not run.model.head.multi_label:
            return
        if run.validation is None:
            logger.info(
                "no validation data: every class keeps the decision threshold 0.5; call "
                "choose_thresholds() with held-out images to tune them"
            )
            return
        choose_classifier_thresholds(run.model, run.validation, self.metric, self.batch_size)

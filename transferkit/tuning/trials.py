"""What a trial needs from KerasTuner's side: its checkpoint, its trial, a continued schedule."""

import dataclasses

from transferkit import schedules
from transferkit.schedules import Schedule
from transferkit.training import RunHook


class SaveBestWeights(RunHook):
    """KerasTuner's best-epoch checkpoint, saving the whole classifier.

    KerasTuner's own callback saves `self.model`, which during a frozen phase
    trained on cached features is the head alone; this saves the run's whole
    classifier as it trains (`run.training_model`, whose head shares those
    weights) to the same file, and keeps the best value on KerasTuner's callback
    so executions of a trial share it.
    """

    def __init__(self, checkpoint):
        super().__init__()
        self.checkpoint = checkpoint
        self.run = None

    def on_run_begin(self, run) -> None:
        self.run = run

    def on_epoch_end(self, epoch, logs=None):
        objective = self.checkpoint.objective
        if objective.has_value(logs):
            value = objective.get_value(logs)
            if not objective.better_than(value, self.checkpoint.best_value):
                return
            self.checkpoint.best_value = value
        self.run.training_model.save_weights(self.checkpoint.filepath)


def trial_callbacks(callbacks):
    """Swaps KerasTuner's checkpoint callback for ours; finds the trial, if any."""
    kept, checkpoint, trial = [], None, None
    for callback in callbacks or []:
        # Found by duck typing: KerasTuner keeps these classes out of its public API.
        if type(callback).__name__ == "SaveBestEpoch" and hasattr(callback, "filepath"):
            kept.append(SaveBestWeights(callback))
            checkpoint = callback.filepath
            continue
        if trial is None and hasattr(callback, "trial") and hasattr(callback, "tuner"):
            trial = callback.trial
        kept.append(callback)
    return kept, checkpoint, trial


class _FromEpoch(Schedule):
    """A schedule cut to start at `initial_epoch` (Hyperband continues trials)."""

    def __init__(self, schedule: Schedule, initial_epoch: int):
        # A copy of the schedule's settings, so learning rates and blocks are its own.
        self.__dict__.update(vars(schedule))
        self.schedule = schedule
        self.initial_epoch = initial_epoch

    def phases(self, epochs):
        return self.schedule.phases(epochs)

    def plan(self, epochs):
        phases = self.schedule.plan(epochs)
        return [
            dataclasses.replace(phase, start_epoch=max(phase.start_epoch, self.initial_epoch))
            for phase in phases
            if phase.end_epoch > self.initial_epoch
        ]


def schedule_from(schedule, initial_epoch: int) -> Schedule:
    """`schedule` itself, or cut to start at `initial_epoch` when it is > 0."""
    schedule = schedules.get(schedule)
    if not initial_epoch:
        return schedule
    return _FromEpoch(schedule, initial_epoch)

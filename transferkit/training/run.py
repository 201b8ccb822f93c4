"""`Run`: what one `fit` call decides, as plain data the trainer and the hooks read."""

import dataclasses
import os

import pandas as pd

from transferkit.data import ImageSource
from transferkit.schedules import Phase, Schedule
from transferkit.training.history import history_frame


@dataclasses.dataclass
class Run:
    """One run: the phases of a schedule over one split of the data.

    Made by `FineTuner.fit` (or `fit_phase`, for one phase) and executed
    phase by phase by a `Trainer`; run hooks receive it.

    Args:
        model: `ImageClassifier`. The classifier the run trains; the same
            object from the run's start to its end.
        schedule: `Schedule`. Gives the phases' learning-rate shapes, block
            multipliers and BatchNorm mode.
        phases: list of `Phase`. The whole plan, `schedule.plan(epochs)`.
        train: `ImageSource`. The training part of the split.
        validation: `ImageSource` or None. The validation part.
        batch_size: int. The global batch.
        class_weight: dict or None. Class index -> weight of its loss.
        split_seed: int or None. The seed the validation split was drawn with
            (a resumed run draws the same split).
        shuffle: bool. Whether to shuffle the training data each epoch.
            Defaults to `True`.
        verbose: Keras's progress output. Defaults to `"auto"`.
        callbacks: list. Keras callbacks (and run hooks) called in every phase,
            the user's first. Defaults to `[]`.
        rows: list of dict. The history, one row per epoch; a resumed run's
            rows come first. Defaults to `[]`.
        epochs_done: int. Epochs already trained (by a resumed run). Defaults
            to `0`.
        checkpoint_dir: str, path or None. Where the run's checkpoints go.
            Defaults to `None`.
        training_model: `ImageClassifier` or None. What trains while the run
            is running (set by the trainer: `model` itself, or its copy in the
            training precision or the strategy's scope). Defaults to `None`.
    """

    model: object
    schedule: Schedule
    phases: list[Phase]
    train: ImageSource
    validation: ImageSource | None
    batch_size: int
    class_weight: dict | None = None
    split_seed: int | None = None
    shuffle: bool = True
    verbose: object = "auto"
    callbacks: list = dataclasses.field(default_factory=list)
    rows: list = dataclasses.field(default_factory=list)
    epochs_done: int = 0
    checkpoint_dir: str | os.PathLike | None = None
    training_model: object = None

    @property
    def epochs(self) -> int:
        """Epochs of the whole run, all phases together."""
        return self.phases[-1].end_epoch if self.phases else 0

    def remaining_phases(self) -> list[Phase]:
        """The phases with epochs still to train (all of them, unless resumed)."""
        return [phase for phase in self.phases if phase.end_epoch > self.epochs_done]

    def initial_epoch(self, phase: Phase) -> int:
        """Where `phase` starts in this run (later inside a phase a resumed run stopped in)."""
        return max(phase.start_epoch, self.epochs_done)

    def is_last(self, phase: Phase) -> bool:
        """Whether `phase` ends the run."""
        return phase is self.phases[-1]

    def history(self) -> pd.DataFrame:
        """The history so far: one row per epoch (see `FineTuner.fit`)."""
        return history_frame(self.rows)

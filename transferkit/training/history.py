"""The history of a run: one row per epoch, recorded by a run hook."""

import time

import numpy as np
import pandas as pd

from transferkit.training.hooks import RunHook


class HistoryRecorder(RunHook):
    """Records one row per epoch into `run.rows`: phase, learning rate, losses, metrics, seconds.

    The first epoch of a phase counts from the phase's start, so its seconds
    include the phase's set-up: compiling and, for a frozen phase on cached
    features, extracting the features.
    """

    def __init__(self):
        super().__init__()
        self.phase_name = None
        self.rows = []
        self._started = 0.0
        self._phase_started = None

    def on_run_begin(self, run) -> None:
        self.rows = run.rows

    def on_phase_begin(self, run, phase) -> None:
        """Names the rows that follow and starts the clock of the phase's first epoch."""
        self.phase_name = phase.name
        self._phase_started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()
        if self._phase_started is not None:
            self._started, self._phase_started = self._phase_started, None

    def on_epoch_end(self, epoch, logs=None):
        learning_rate = getattr(self.model.optimizer, "learning_rate", None)
        row = {
            "epoch": epoch + 1,
            "phase": self.phase_name,
            "learning_rate": float(np.asarray(learning_rate))
            if learning_rate is not None
            else None,
        }
        row.update({key: float(value) for key, value in (logs or {}).items()})
        row["seconds"] = time.perf_counter() - self._started
        self.rows.append(row)


def history_frame(rows: list[dict]) -> pd.DataFrame:
    """One row per epoch, in a fixed column order (metrics as Keras names them)."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["epoch", "phase", "learning_rate", "loss", "seconds"])
    first = ["epoch", "phase", "learning_rate"]

    def loss_first(columns):
        return sorted(columns, key=lambda column: not column.endswith("loss"))

    train = loss_first(
        [c for c in frame.columns if c not in first + ["seconds"] and not c.startswith("val_")]
    )
    validation = loss_first([c for c in frame.columns if c.startswith("val_")])
    return frame[first + train + validation + ["seconds"]].reset_index(drop=True)

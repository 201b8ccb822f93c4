"""Checkpoints of a run: the full model and the schedule's state after every epoch.

A run given `checkpoint_dir=` writes, after each epoch, the whole model (raw
image in, probabilities out) as `model-epochNNNN.keras`, then `state.json`
naming it with the epochs done, the plan and the history so far, then removes
the previous model file. Each file is written beside its destination and
renamed into place, so a crash at any moment leaves a consistent checkpoint:
running the same `fit` again resumes at the right phase and epoch, losing at
most the epoch in progress.
"""

import json
from pathlib import Path

import keras
import numpy as np

from transferkit.precision import model_precision, with_precision
from transferkit.training.distribution import agree
from transferkit.training.hooks import RunHook
from transferkit.utils.files import atomic_path
from transferkit.utils.log import logger

STATE_FILE = "state.json"


def read_state(directory) -> dict | None:
    """The saved state of a run in `directory`, or `None` when there is none."""
    path = Path(directory) / STATE_FILE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        model_path = Path(directory) / state["model_file"]
    except (ValueError, KeyError) as error:
        raise ValueError(
            f"The checkpoint state {path} is unreadable ({error}). Remove the folder or "
            "choose another checkpoint_dir."
        ) from error
    if not model_path.exists():
        raise ValueError(
            f"The checkpoint state {path} names {model_path.name}, which is missing. Remove "
            "the folder or choose another checkpoint_dir."
        )
    state["model_path"] = str(model_path)
    return state


def check_same_run(state: dict, directory, epochs: int, schedule_config: dict) -> None:
    """Refuses to resume a checkpoint made by a run with other settings."""
    if state["epochs"] != epochs or state["schedule"] != schedule_config:
        raise ValueError(
            f"The checkpoint in {directory} belongs to a run with epochs={state['epochs']} and "
            f"schedule {state['schedule']['class_name']}{state['schedule']['config']}; this run "
            f"has epochs={epochs} and {schedule_config['class_name']}"
            f"{schedule_config['config']}. Resume with the same settings, or use another "
            "checkpoint_dir."
        )


def resume_state(checkpoint_dir, epochs: int, schedule_config: dict, seed, strategy):
    """The state a run resumes from (None for a fresh run), and the seed of its split.

    Every worker must resume from the same epoch (`checkpoint_dir` a shared
    folder). A fresh run with a checkpoint folder and no seed draws one, so
    that its validation split is the same when it resumes.

    Raises:
        ValueError: for an unreadable state, or one of a run with other settings.
    """
    state = read_state(checkpoint_dir) if checkpoint_dir is not None else None
    agree(strategy, state["epochs_done"] if state else 0, "the epochs done in checkpoint_dir")
    if state is None:
        if checkpoint_dir is not None and seed is None:
            return None, int(np.random.default_rng().integers(2**31))
        return None, seed
    check_same_run(state, checkpoint_dir, epochs, schedule_config)
    logger.info(f"resuming from {checkpoint_dir}: {state['epochs_done']}/{epochs} epochs done")
    return state, state["split_seed"]


def load_checkpoint_model(state: dict):
    """The model of a checkpoint, in float32 (it was saved as it trained).

    Loaded in the current strategy's scope, if any: call it inside the scope.
    """
    model = keras.saving.load_model(state["model_path"])
    if model_precision(model) != "float32":
        # Checkpoints hold the model as it trained; between runs it is float32.
        model = with_precision(model, "float32")
    return model


class RunCheckpoint(RunHook):
    """Saves the run's full model and state at the end of every epoch.

    In a frozen phase trained on cached features Keras sees only the head; the
    full model that trains (`run.training_model`) is saved.

    Args:
        directory: str or path. The checkpoint folder.
        state: dict. The run's fixed state (epochs, schedule, split seed); the
            epochs done and the history are added at each save.
    """

    def __init__(self, directory, state: dict):
        super().__init__()
        self.directory = Path(directory)
        self.state = state
        self.run = None

    def on_run_begin(self, run) -> None:
        self.run = run

    def on_epoch_end(self, epoch, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        model_file = f"model-epoch{epoch + 1:04d}.keras"
        with atomic_path(self.directory / model_file, overwrite=True) as tmp:
            self.run.training_model.save(tmp)
        state = {**self.state, "epochs_done": epoch + 1, "model_file": model_file}
        # The history rows are recorded by the run's HistoryRecorder, called before this.
        state["history"] = list(self.run.rows)
        with atomic_path(self.directory / STATE_FILE, overwrite=True) as tmp:
            tmp.write_text(json.dumps(state, indent=1))
        for old in self.directory.glob("model-epoch*.keras"):
            if old.name != model_file:
                old.unlink()
        logger.debug(f"checkpoint: epoch {epoch + 1} saved to {self.directory}")

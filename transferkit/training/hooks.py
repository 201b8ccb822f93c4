"""Run hooks: Keras callbacks that also see a multi-phase run begin and end.

A `FineTuner.fit` is one run of several Keras `fit` calls, one per phase, and
Keras's callbacks see each of them alone (`on_train_begin` and `on_train_end`
once per phase). What belongs to the run as a whole (restoring the best
weights, checkpoints, resetting a calibration, choosing decision thresholds)
is a `RunHook`: the same Keras callback, with run-level events around the
phases, as fastai's `before_fit`/`after_fit`.
"""

import keras

from transferkit.utils.log import logger


class RunHookError(RuntimeError):
    """A run hook raised: the run stopped there (its last checkpoint stays usable)."""


class RunHook(keras.callbacks.Callback):
    """A Keras callback with events for the whole run around the phases.

    The trainer calls `on_run_begin(run)` before the first phase, then passes
    the hook to Keras's `fit` of every phase as any callback (so
    `on_epoch_end` and the rest fire as usual; `self.model` is what Keras
    trains in that phase, the head alone in a phase on cached features), calls
    `on_phase_begin(run, phase)` before each phase and `on_run_end(run)` after
    the last one. `run.model` is the classifier (the same object for the whole
    run) and `run.training_model` the copy of it that trains (itself, unless
    the run computes in another precision or must be mirrored by a strategy):
    read weights from `run.training_model` during the run, and from
    `run.model` in `on_run_end`, when the trained weights are back in it.

    An exception raised by a hook stops the run with a `RunHookError` that
    names the hook; the run's last checkpoint stays usable.

    Example:

    ```python
    class SaveEachPhase(tk.training.RunHook):
        def on_phase_begin(self, run, phase):
            if phase.start_epoch:
                run.training_model.save(f"before_{phase.name}.keras")

    ft.fit("data/train", epochs=5, callbacks=[SaveEachPhase()])
    ```
    """

    def on_run_begin(self, run) -> None:
        """Called once, before the first phase of `run` (a `transferkit.training.Run`)."""

    def on_phase_begin(self, run, phase) -> None:
        """Called before each phase (a `transferkit.schedules.Phase`) that trains."""

    def on_run_end(self, run) -> None:
        """Called once, after the last phase, with the trained weights back in `run.model`."""


def run_hooks(callbacks) -> list[RunHook]:
    """The `RunHook`s among `callbacks`, in order."""
    return [callback for callback in callbacks if isinstance(callback, RunHook)]


def call_hooks(hooks, event: str, *args) -> None:
    """Calls `event` on every hook in order; a hook that raises stops the run, named."""
    for hook in hooks:
        try:
            getattr(hook, event)(*args)
        except Exception as error:
            raise hook_error(hook, event, error) from error


def hook_error(hook, event: str, error: Exception) -> RunHookError:
    """The error that stops a run when `hook` raised `error` in `event`."""
    logger.debug(f"run hook {type(hook).__name__} raised in {event}", exc_info=error)
    return RunHookError(
        f"The run hook {type(hook).__name__} raised in {event}: "
        f"{type(error).__name__}: {error}. The run stopped; a checkpoint_dir keeps the "
        "last finished epoch, and fit resumes from it."
    )


def raising_hook(error: BaseException, hooks):
    """The hook among `hooks` whose method raised `error` (read off its traceback), or None."""
    found = None
    frames = error.__traceback__
    while frames is not None:
        owner = frames.tb_frame.f_locals.get("self")
        if any(owner is hook for hook in hooks):
            found = owner
        frames = frames.tb_next
    return found

"""Importing TensorFlow without its native start-up chatter on the terminal."""

import contextlib
import os
import sys

TF_LOG_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# TensorFlow's levels: 0 shows everything, 1 hides INFO, 2 hides WARNING too, 3 hides ERROR too.
# Below this level the user asked to see TensorFlow's warnings.
QUIET_LEVEL = 2


def wants_tensorflow_logs(environ=None) -> bool:
    """Whether the user asked to see TensorFlow's start-up messages.

    Only `TF_CPP_MIN_LOG_LEVEL` set to 0 or 1 asks for them (1 hides TensorFlow's
    INFO lines but asks for its warnings, and TensorFlow 2.21 prints its start-up
    lines whatever the level, so they are shown rather than hiding a warning).
    Unset, 2, 3 or a value that is not a number asks for nothing: transferkit
    keeps the terminal quiet.

    Args:
        environ: mapping or None. The environment to read. Defaults to
            `os.environ`.

    Returns:
        True when the start-up messages should reach the terminal.
    """
    value = (os.environ if environ is None else environ).get(TF_LOG_VARIABLE, "").strip()
    try:
        return int(value) < QUIET_LEVEL
    except ValueError:
        return False


@contextlib.contextmanager
def native_stderr_silenced():
    """Points file descriptor 2 at /dev/null for the duration (C++ prints bypass `sys.stderr`)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (e.g. a detached process): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow once, keeping its native start-up messages off the terminal.

    TensorFlow 2.21 prints several lines on import (absl, oneDNN, CUDA drivers) and
    an error-level line when it first looks for a GPU on a machine without one;
    `TF_CPP_MIN_LOG_LEVEL` silences none of them. So file descriptor 2 points at
    `/dev/null` while TensorFlow is imported and lists its devices. Python errors
    still propagate as exceptions. Nothing is silenced when TensorFlow is already
    imported, or when the user asked for TensorFlow's messages with
    `TF_CPP_MIN_LOG_LEVEL` 0 or 1 (see `wants_tensorflow_logs`); 2 or 3, the usual
    way to ask TensorFlow for quiet, get the quiet import.
    """
    if "tensorflow" in sys.modules or wants_tensorflow_logs():
        return
    with native_stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()

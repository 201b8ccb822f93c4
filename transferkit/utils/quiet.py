"""Importing TensorFlow without its native start-up chatter on the terminal."""

import contextlib
import os
import sys

TF_LOG_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"


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
    imported or when the user set `TF_CPP_MIN_LOG_LEVEL` (they asked for its logs).
    """
    if "tensorflow" in sys.modules or TF_LOG_VARIABLE in os.environ:
        return
    with native_stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()

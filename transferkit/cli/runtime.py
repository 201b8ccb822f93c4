"""What the command line sets up around a command: quiet TensorFlow, log levels, warnings."""

import contextlib
import logging
import os
import sys

from transferkit.utils.quiet import QUIET_LEVEL, TF_LOG_VARIABLE, import_tensorflow_quietly

# TensorFlow's native level without --verbose: its error-level lines too are notes about
# its kernels (e.g. "oneDNN supports DT_BOOL only on platforms with AVX-512" on multi-label
# fits); an error that matters reaches Python as an exception all the same.
SILENT_LEVEL = 3
_verbose = {"on": False}


def import_tensorflow() -> None:
    """Imports TensorFlow quietly (see `transferkit.utils.quiet`), and keeps its later logs down.

    Unless the user set `TF_CPP_MIN_LOG_LEVEL`, TensorFlow's later native logs are
    silenced (`--verbose`: limited to errors). A user who set it to 0 or 1 gets
    TensorFlow's output untouched.
    """
    if "tensorflow" in sys.modules:
        return
    level = QUIET_LEVEL if _verbose["on"] else SILENT_LEVEL
    os.environ.setdefault(TF_LOG_VARIABLE, str(level))
    import_tensorflow_quietly()


# TensorFlow's Python logger: its warnings (tf.function retracing, deprecations) are
# about TensorFlow's internals, nothing a command's user can act on.
TENSORFLOW_LOGGER = "tensorflow"


def configure_logging(verbose: bool) -> tuple[int, int]:
    """Shows transferkit's INFO log with `--verbose`, only its warnings otherwise.

    Without `--verbose`, TensorFlow's Python logger shows errors only (its
    warnings, such as "5 out of the last 9 calls ... triggered tf.function
    retracing", are shown with `--verbose`). Setting a logger's level imports
    nothing: TensorFlow reads it when it is imported.

    Returns:
        The loggers' previous levels, for `restore_logging`.
    """
    # Imported first: importing it sets the level, which would undo ours.
    from transferkit.utils.log import logger

    _verbose["on"] = bool(verbose)
    tensorflow = logging.getLogger(TENSORFLOW_LOGGER)
    previous = (logger.level, tensorflow.level)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        tensorflow.setLevel(logging.ERROR)
    return previous


def restore_logging(levels: tuple[int, int]) -> None:
    """Puts the loggers back at `levels` (for `main()` called in-process)."""
    from transferkit.utils.log import logger

    logger.setLevel(levels[0])
    logging.getLogger(TENSORFLOW_LOGGER).setLevel(levels[1])


@contextlib.contextmanager
def deferred_warnings():
    """Holds transferkit's log records back while data is read, then lets them through.

    When reading fails, the error already says what went wrong (for instance
    that no file was a usable image), so the held-back warnings are dropped and
    the command ends with its single error line. When reading succeeds they are
    printed as usual, only a moment later.
    """
    from transferkit.utils.log import logger

    # Filters on the handlers, not the logger, also catch records of child loggers.
    handlers = list(logger.handlers)
    held = []

    def hold(record):
        if record not in held:  # once, whatever the number of handlers
            held.append(record)
        return False

    for handler in handlers:
        handler.addFilter(hold)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(hold)
    for record in held:
        logger.handle(record)

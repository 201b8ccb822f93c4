"""What the command line sets up around a command: quiet TensorFlow, log levels, warnings."""

import contextlib
import logging
import os
import sys

from transferkit.utils.quiet import QUIET_LEVEL, TF_LOG_VARIABLE, import_tensorflow_quietly


def import_tensorflow() -> None:
    """Imports TensorFlow quietly (see `transferkit.utils.quiet`), and keeps its later logs down.

    Unless the user set `TF_CPP_MIN_LOG_LEVEL`, TensorFlow's later native logs are
    limited to errors. A user who set it to 0 or 1 gets TensorFlow's output untouched.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault(TF_LOG_VARIABLE, str(QUIET_LEVEL))
    import_tensorflow_quietly()


def configure_logging(verbose: bool) -> int:
    """Shows transferkit's INFO log with `--verbose`, only its warnings otherwise.

    Returns:
        The logger's previous level, for `restore_logging`.
    """
    # Imported first: importing it sets the level, which would undo ours.
    from transferkit.utils.log import logger

    previous = logger.level
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    return previous


def restore_logging(level: int) -> None:
    """Puts the transferkit logger back at `level` (for `main()` called in-process)."""
    from transferkit.utils.log import logger

    logger.setLevel(level)


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

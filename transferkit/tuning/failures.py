"""A failed trial's traceback in transferkit's log, not printed over the terminal.

KerasTuner prints the traceback of every failed trial on stderr (its
`config.DEBUG`, on by default and with no public switch), then keeps the same
text as the trial's `message`. A search whose time budget stops its first trial
thus showed 29 lines of traceback before `tune`'s one-line error. `LoggedFailures`
holds that print back and logs the traceback at INFO instead: Python users see
it as before (transferkit logs at INFO), the command line only with `--verbose`,
and `TuneResult.results` and the errors still say why a trial failed.
"""

import io
import sys

from transferkit.tuning.budget import mixed_in
from transferkit.utils.log import logger


class LoggedFailures:
    """Tuner mixin: a failed trial's traceback goes to transferkit's log at INFO.

    Between the moment `run_trial` raises and the end of the trial (where
    KerasTuner prints the traceback), `sys.stderr` is held in a buffer; when
    the trial ends, the traceback is taken out of it and logged, and whatever
    else was written there passes on to the real stderr.
    """

    _held = None  # (buffer, the real sys.stderr) while a failure's print is held back

    def run_trial(self, trial, *args, **kwargs):
        try:
            return super().run_trial(trial, *args, **kwargs)
        except Exception:
            self._held = (io.StringIO(), sys.stderr)
            sys.stderr = self._held[0]
            raise

    def on_trial_end(self, trial):
        self.release_stderr(trial)
        super().on_trial_end(trial)

    def release_stderr(self, trial=None) -> None:
        """Restores `sys.stderr`; logs the failed `trial`'s traceback if it was held back.

        `tune` also calls it when the search ends, so an interrupted trial never
        leaves stderr in the buffer.
        """
        if self._held is None:
            return
        buffer, stream = self._held
        self._held = None
        sys.stderr = stream
        text = buffer.getvalue()
        message = getattr(trial, "message", None)
        if message and message in text:
            text = text.replace(message, "", 1)
            logger.info(f"trial {trial.trial_id} failed:\n{message.rstrip()}")
        if text:
            stream.write(text)


def logged_failures(tuner_class: type) -> type:
    """`tuner_class` with `LoggedFailures` mixed in (the same class for the same input)."""
    return mixed_in(LoggedFailures, tuner_class)

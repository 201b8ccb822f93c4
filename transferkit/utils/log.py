"""transferkit's logger: phase changes, recompiles, skipped files."""

import logging
import sys


class _StderrHandler(logging.StreamHandler):
    # Looks up sys.stderr at each message, so redirected or captured stderr works.
    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


logger = logging.getLogger("transferkit")
if not logger.handlers:
    _handler = _StderrHandler()
    _handler.setFormatter(logging.Formatter("transferkit: %(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    # The handler above already prints; propagating would print each line twice
    # wherever the application configured the root logger.
    logger.propagate = False

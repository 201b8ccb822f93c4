"""Who sees TensorFlow's start-up lines: `TF_CPP_MIN_LOG_LEVEL` 0 or 1 asks for them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import transferkit
from transferkit.utils.quiet import wants_tensorflow_logs

SOURCE_ROOT = Path(transferkit.__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "value, shown",
    [(None, False), ("3", False), ("2", False), (" 3 ", False), ("quiet", False), ("", False)]
    + [("1", True), ("0", True)],
)
def test_only_a_level_below_2_asks_for_tensorflows_logs(value, shown):
    environ = {} if value is None else {"TF_CPP_MIN_LOG_LEVEL": value}
    assert wants_tensorflow_logs(environ) is shown


def test_level_3_asks_for_quiet_and_gets_it(tmp_path):
    # `TF_CPP_MIN_LOG_LEVEL=3` is the usual way to ask TensorFlow for quiet; TensorFlow
    # 2.21 still prints its start-up lines, so transferkit must hide them for this user too.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(SOURCE_ROOT))
    result = subprocess.run(
        [sys.executable, "-c", "import transferkit as tk; tk.FineTuner"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""

"""Ctrl-C in the first seconds of a command: one line, exit status 130, no traceback."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import transferkit

SOURCE_ROOT = Path(transferkit.__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not Path(f"/proc/{os.getpid()}/maps").exists(), reason="needs /proc/PID/maps (Linux)"
)


def _default_sigint():
    """Runs in the child before it starts: Ctrl-C gets Python's usual handling.

    A child inherits an ignored SIGINT from a parent that ignores it (a suite started
    with `nohup ... &`, or by a job runner), and would then never see the Ctrl-C.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _tensorflow_loading(pid: int) -> bool:
    try:
        return "tensorflow" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:  # the process ended
        return False


@pytest.fixture
def arguments(tmp_path):
    """The arguments of each command, valid up to the point where TensorFlow is imported."""
    for name in ("cat", "dog"):
        (tmp_path / "data" / name).mkdir(parents=True)
    (tmp_path / "model.keras").write_text("checked for existence only before TensorFlow")
    (tmp_path / "cat.png").write_text("idem")
    return {
        "fit": ["fit", "data", "--out", "run", "--weights", "none"],
        "evaluate": ["evaluate", "model.keras", "data"],
        "predict": ["predict", "model.keras", "cat.png"],
        "tune": ["tune", "data", "--out", "search", "--weights", "none"],
        "backbones": ["backbones"],
        "demo": ["demo", "cats-vs-dogs", "--out", "demo"],
    }


@pytest.mark.parametrize("command", ["fit", "evaluate", "predict", "tune", "backbones", "demo"])
def test_ctrl_c_while_tensorflow_loads(tmp_path, arguments, command):
    env = dict(os.environ, PYTHONPATH=str(SOURCE_ROOT), TRANSFERKIT_CACHE_DIR=str(tmp_path))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "transferkit.cli", *arguments[command]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
        preexec_fn=_default_sigint,
    )
    try:
        # The moment TensorFlow's libraries are being mapped in is the first seconds of
        # the command, as a user sees them: the import takes seconds.
        deadline = time.monotonic() + 120
        while not _tensorflow_loading(process.pid) and process.poll() is None:
            assert time.monotonic() < deadline, "TensorFlow never started loading"
            time.sleep(0.02)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
        process.wait()
    assert stderr == "transferkit: interrupted\n"
    assert process.returncode == 130
    assert stdout == ""
    assert not (tmp_path / "run").exists() and not (tmp_path / "search").exists()

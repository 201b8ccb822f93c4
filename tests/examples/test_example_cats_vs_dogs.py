"""examples/cats_vs_dogs/train.py keeps an earlier run unless told to replace it."""

import os
import subprocess
import sys
from pathlib import Path

import transferkit

SOURCE_ROOT = Path(transferkit.__file__).resolve().parents[1]
EXAMPLE = SOURCE_ROOT / "examples" / "cats_vs_dogs" / "train.py"


def run_example(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(SOURCE_ROOT), TRANSFERKIT_CACHE_DIR=str(cwd / "cache"))
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_a_non_empty_out_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "runs" / "cats_vs_dogs"
    out.mkdir(parents=True)
    (out / "model.keras").write_text("an earlier run")
    # A folder source that does not exist: the data step fails at once, so the real
    # example never runs, and a refusal that came after it would not be seen.
    no_data = ["--source", "folder", "--data-dir", tmp_path / "no-photos"]

    refused = run_example(*no_data, "--out", out, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert f"--out {out} is not empty" in refused.stderr and "--overwrite" in refused.stderr
    assert (out / "model.keras").read_text() == "an earlier run"

    allowed = run_example(*no_data, "--out", out, "--overwrite", cwd=tmp_path)
    assert allowed.returncode == 1  # got past the check, to the missing photos
    assert "no-photos" in allowed.stderr and "not empty" not in allowed.stderr

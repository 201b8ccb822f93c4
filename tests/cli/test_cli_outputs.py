"""Every output of a command is checked writable before any training or prediction starts."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import transferkit
from transferkit.cli.outputs import write_csv

SOURCE_ROOT = Path(transferkit.__file__).resolve().parents[1]
# Exists, yet takes no new entry: mkdir answers "No such file or directory".
IMPOSSIBLE = "/proc/transferkit-output"


def run_cli(*args, cwd, prefix=()):
    env = dict(os.environ, PYTHONPATH=str(SOURCE_ROOT), TRANSFERKIT_CACHE_DIR=str(cwd / "cache"))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run(
        [*prefix, sys.executable, "-m", "transferkit.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=180,
    )


@pytest.fixture
def inputs(tmp_path):
    """Inputs that pass the checks made before TensorFlow, and fail right after it.

    If a command got past its output check, it would fail on these with another
    message (no images, not a .keras file): the error must be the output's.
    """
    for name in ("cat", "dog"):
        (tmp_path / "data" / name).mkdir(parents=True)
    (tmp_path / "model.keras").write_text("not a model")
    (tmp_path / "cat.png").write_text("not an image")
    return tmp_path


def assert_output_error(result, *fragments):
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("transferkit: error: ")
    assert "cannot be written" in lines[0]
    assert ".tmp" not in lines[0] and "write-check" not in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    "command, named",
    [
        (["fit", "data", "--out", IMPOSSIBLE, "--weights", "none"], "--out"),
        (["evaluate", "model.keras", "data", "--out", IMPOSSIBLE], "--out"),
        (["tune", "data", "--out", IMPOSSIBLE, "--weights", "none"], "--out"),
        (["predict", "model.keras", "cat.png", "--csv", f"{IMPOSSIBLE}.csv"], "--csv"),
        (["export", "model.keras", f"{IMPOSSIBLE}.tflite", "--format", "litert"], "OUT"),
        # A folder source that does not exist: whatever happens, the real demo never runs.
        (
            [
                "demo",
                "cats-vs-dogs",
                "--source",
                "folder",
                "--data-dir",
                "none",
                "--out",
                IMPOSSIBLE,
            ],
            "--out",
        ),
    ],
    ids=["fit", "evaluate", "tune", "predict", "export", "demo"],
)
def test_an_impossible_output_fails_first(inputs, command, named):
    result = run_cli(*command, cwd=inputs)
    path = command[2] if named == "OUT" else command[command.index(named) + 1]
    assert_output_error(result, f"{named} {path!r}", "/proc does not take new files or folders")


def test_a_path_through_a_file_fails_first(inputs):
    (inputs / "notes").write_text("a file")
    result = run_cli("fit", "data", "--out", "notes/run", "--weights", "none", cwd=inputs)
    assert_output_error(result, "--out 'notes/run'", "notes is a file")


def test_a_new_nested_out_is_not_left_behind_by_the_check(inputs):
    # Writable: the check passes, creating and removing the folders; the run then fails
    # on its data (no images), and leaves no empty folders behind.
    result = run_cli("fit", "data", "--out", "new/deeper/run", "--weights", "none", cwd=inputs)
    assert result.returncode == 1
    assert "cannot be written" not in result.stderr
    assert not (inputs / "new").exists()


@pytest.fixture
def read_only(tmp_path):
    """A read-only file system at tmp_path/ro, in a private mount namespace of the command.

    Returns the command prefix that runs a program with it mounted.
    """
    folder = tmp_path / "ro"
    folder.mkdir()
    script = 'mount -t tmpfs -o ro tmpfs "$1" && shift && exec "$@"'
    prefix = ("unshare", "--map-root-user", "--mount", "sh", "-c", script, "sh", str(folder))
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare to mount a read-only file system")
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a read-only file system here: {probe.stderr.strip()}")
    return folder, prefix


def test_a_read_only_file_system_fails_first(inputs, read_only):
    folder, prefix = read_only
    out = folder / "run"
    result = run_cli("fit", "data", "--out", out, "--weights", "none", cwd=inputs, prefix=prefix)
    assert_output_error(result, f"--out '{out}'", "Read-only file system")

    csv = folder / "predictions.csv"
    result = run_cli("predict", "model.keras", "cat.png", "--csv", csv, cwd=inputs, prefix=prefix)
    assert_output_error(result, f"--csv '{csv}'", "Read-only file system")


def test_write_errors_name_the_destination_not_a_temporary_file():
    with pytest.raises(OSError) as error:
        write_csv(pd.DataFrame({"a": [1]}), Path(IMPOSSIBLE) / "predictions.csv", False)
    assert str(error.value).startswith(f"Could not write {IMPOSSIBLE}/predictions.csv: ")
    assert ".tmp" not in str(error.value)

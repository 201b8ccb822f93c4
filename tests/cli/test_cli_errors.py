"""Every failure of the `transferkit` command is one line on stderr and exit status 1."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import transferkit

TINY = [
    "--backbone",
    "mobilenet",
    "--weights",
    "none",
    "--input-size",
    "32",
    "--epochs",
    "2",
    "--batch-size",
    "8",
]


def run_cli(*args, cwd=None):
    """Runs `python -m transferkit.cli ARGS` as from a shell; returns the CompletedProcess."""
    # This source tree's transferkit, whatever `cwd` is.
    env = dict(os.environ, PYTHONPATH=str(Path(transferkit.__file__).resolve().parents[1]))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # a user's shell doesn't set it
    return subprocess.run(
        [sys.executable, "-m", "transferkit.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def assert_one_error_line(result, *fragments):
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("transferkit: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def folder(tmp_path):
    """Writes a class folder of small PNGs: folder("cat", "dog") -> its path."""

    def make(*classes, per_class=4):
        root = tmp_path / "data"
        for name in classes:
            (root / name).mkdir(parents=True, exist_ok=True)
            for index in range(per_class):
                pixels = np.full((16, 16, 3), 40 * index, dtype="uint8")
                Image.fromarray(pixels).save(root / name / f"{index}.png")
        return root

    return make


def test_missing_data_path(tmp_path):
    result = run_cli("fit", tmp_path / "nowhere", "--out", tmp_path / "run", *TINY)
    assert_one_error_line(result, "No such file or folder", "nowhere")
    assert not (tmp_path / "run").exists()


def test_folder_with_one_class(folder, tmp_path):
    result = run_cli("fit", folder("cat"), "--out", tmp_path / "run", *TINY)
    assert_one_error_line(result, "At least 2 classes", "['cat']")


def test_unknown_backbone(folder, tmp_path):
    result = run_cli(
        "fit", folder("cat", "dog"), "--out", tmp_path / "run", *TINY, "--backbone", "resnet5O"
    )
    assert_one_error_line(result, "Unknown backbone 'resnet5O'", "transferkit backbones")


def test_epochs_zero(folder, tmp_path):
    data = folder("cat", "dog")
    result = run_cli("fit", data, "--out", tmp_path / "run", *TINY, "--epochs", "0")
    assert_one_error_line(result, "--epochs must be an integer >= 1", "--epochs 0")


@pytest.mark.parametrize(
    "schedule, option, fragments",
    [
        (
            "no_freeze",
            "--learning-rate",
            ["frozen, which --schedule no_freeze does not have", "Drop --learning-rate"],
        ),
        (
            "freeze",
            "--fine-tune-learning-rate",
            ["backbone trains, which --schedule freeze does not have", "no_freeze)"],
        ),
        (
            "no_freeze",
            "--frozen-epochs",
            ["warm-up, which --schedule no_freeze does not have", "or change --schedule"],
        ),
    ],
)
def test_an_option_the_schedule_would_ignore(folder, tmp_path, schedule, option, fragments):
    data = folder("cat", "dog")
    result = run_cli(
        "fit", data, "--out", tmp_path / "run", *TINY, "--schedule", schedule, option, "1"
    )
    assert_one_error_line(result, *fragments)
    assert not (tmp_path / "run").exists()


def test_non_empty_out_without_overwrite_leaves_the_users_file(folder, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_text("the user's own file")
    result = run_cli("fit", folder("cat", "dog"), "--out", run, *TINY)
    assert_one_error_line(result, "is not empty", "--overwrite")
    assert (run / "model.keras").read_text() == "the user's own file"
    assert [path.name for path in run.iterdir()] == ["model.keras"]

    # --verbose shows the traceback, then the same error line.
    verbose = run_cli("--verbose", "fit", folder("cat", "dog"), "--out", run, *TINY)
    assert verbose.returncode == 1
    assert "Traceback" in verbose.stderr and "FileExistsError" in verbose.stderr
    assert verbose.stderr.splitlines()[-1].startswith("transferkit: error: ")


def test_csv_paths_are_said_to_resolve_against_the_csvs_folder(folder, tmp_path):
    folder("cat", "dog")
    # Paths written relative to the current directory, in a CSV kept in another folder.
    csv = tmp_path / "labels" / "train.csv"
    csv.parent.mkdir()
    csv.write_text("path,label\ndata/cat/0.png,cat\ndata/dog/0.png,dog\n")
    result = run_cli("fit", csv, "--out", tmp_path / "run", *TINY, cwd=tmp_path)
    assert_one_error_line(
        result,
        "None of the 2 image paths in the CSV",
        f"resolved against the CSV's own folder ({csv.parent})",
        "'data/cat/0.png' does exist relative to the current directory",
    )
    assert not (tmp_path / "run").exists()


def test_corrupt_model_file(folder, tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"PK\x03\x04 truncated")
    result = run_cli("evaluate", model, folder("cat", "dog"))
    assert_one_error_line(
        result,
        str(model),
        "is not a .keras file (a zip archive written by Keras)",
        "expects a .keras file written by FineTuner.save",
    )


def test_predict_on_a_non_image_file(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    model = _tiny_model(tmp_path)
    result = run_cli("predict", model, notes)
    assert_one_error_line(result, "not an image file", "notes.txt")


def test_existing_predictions_csv_is_kept(tmp_path):
    csv = tmp_path / "predictions.csv"
    csv.write_text("mine")
    # Checked first: neither the model nor the images are looked at.
    result = run_cli("predict", tmp_path / "model.keras", tmp_path, "--csv", csv)
    assert_one_error_line(result, "already exists", "--overwrite")
    assert csv.read_text() == "mine"


def test_malformed_command_line_is_a_usage_error(tmp_path):
    result = run_cli("fit", tmp_path, "--out", tmp_path / "run", "--epochs", "two")
    assert result.returncode == 2
    assert "usage: transferkit fit" in result.stderr
    assert "invalid int value: 'two'" in result.stderr


def _tiny_model(tmp_path):
    """Saves an untrained 2-class MobileNet classifier (32x32) and returns its path."""
    import transferkit as tk

    finetuner = tk.FineTuner("mobilenet", weights=None, input_shape=32)
    finetuner.build(["cat", "dog"])
    path = tmp_path / "model.keras"
    finetuner.save(path)
    return path


def test_a_semicolon_separated_csv_is_named_as_such(folder, tmp_path):
    images = folder("cat", "dog")
    csv = tmp_path / "labels.csv"
    first = sorted(images.rglob("*.png"))[0]
    csv.write_text(f"path;label\n{first};cat\n")
    result = run_cli("fit", csv, "--out", tmp_path / "run")
    assert_one_error_line(
        result, "its only column, 'path;label', looks like a header separated by ';'"
    )
    assert not (tmp_path / "run").exists()

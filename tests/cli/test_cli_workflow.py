"""`transferkit fit`, then `evaluate` and `predict` on its model, run as a user runs them.

One tiny run (MobileNet without weights, 32x32, 2 epochs) is trained once for the
module; every command goes through a subprocess, as from a shell.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import transferkit

PER_CLASS = 8
TINY_MODEL = ["--backbone", "mobilenet", "--weights", "none", "--input-size", "32"]
TINY = [*TINY_MODEL, "--epochs", "2", "--batch-size", "8"]
RUN_FILES = {
    "model.keras",
    "history.csv",
    "metrics.json",
    "confusion_matrix.csv",
    "predictions.csv",
    "skipped.csv",
    "history.png",
    "confusion_matrix.png",
    "predictions.png",
    # The run report, what it reads, and the TensorBoard logs (tests/report).
    "run.json",
    "per_class.csv",
    "calibration.csv",
    "reliability.png",
    "top_losses.csv",
    "top_losses.png",
    "report.html",
    "logs",
}


def run_cli(*args, cwd=None, cache=None):
    """Runs `python -m transferkit.cli ARGS` as from a shell; returns the CompletedProcess."""
    # This source tree's transferkit, whatever `cwd` is.
    env = dict(os.environ, PYTHONPATH=str(Path(transferkit.__file__).resolve().parents[1]))
    # A user's shell doesn't set it (the test conftest does): the CLI must quieten
    # TensorFlow on its own.
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    if cache is not None:
        env["TRANSFERKIT_CACHE_DIR"] = str(cache)
    return subprocess.run(
        [sys.executable, "-m", "transferkit.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, write_class_folder):
    """A fit run on 2 classes x 8 PNGs plus one broken 'PNG'; returns its paths and output."""
    root = tmp_path_factory.mktemp("cli_workflow")
    data = write_class_folder(root / "data", per_class=PER_CLASS)
    (data / "dog" / "broken.png").write_text("not an image")
    result = run_cli("fit", data, "--out", root / "run", *TINY, cache=root / "cache")
    return {"root": root, "data": data, "run": root / "run", "result": result}


def test_fit_writes_the_run_folder(trained):
    result, run = trained["result"], trained["run"]
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert {path.name for path in run.iterdir()} == RUN_FILES
    assert "Validation accuracy" in result.stdout

    history = pd.read_csv(run / "history.csv")
    assert list(history.columns) == [
        "epoch",
        "phase",
        "learning_rate",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "seconds",
    ]
    assert history["epoch"].tolist() == [1, 2]
    assert history["phase"].tolist() == ["frozen", "unfrozen"]

    # 20% of each class of 8 is held out: 2 cats and 2 dogs.
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_images"] == 4
    assert 0 <= metrics["accuracy"] <= 1 and metrics["loss"] > 0
    assert set(metrics["per_class"]) == {"cat", "dog"}
    assert metrics["per_class"]["cat"]["support"] == 2
    confusion = pd.read_csv(run / "confusion_matrix.csv", index_col=0)
    assert confusion.to_numpy().sum() == 4
    assert list(confusion.columns) == ["cat", "dog"]
    predictions = pd.read_csv(run / "predictions.csv")
    assert len(predictions) == 4 and {"path", "true_label", "label"} <= set(predictions.columns)

    skipped = pd.read_csv(run / "skipped.csv")
    assert skipped["path"].str.endswith("broken.png").tolist() == [True]
    assert "broken.png" in result.stderr  # reported while it ran, too


def test_evaluate_prints_the_report(trained):
    result = run_cli("evaluate", trained["run"] / "model.keras", trained["data"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in ("accuracy", "loss", "per class:", "precision", "recall", "confusion matrix"):
        assert expected in out
    # 16 usable images, the broken one left out and reported.
    assert "images    16" in out
    assert "broken.png" in result.stderr


def test_evaluate_json_and_out_folder(trained):
    out = trained["root"] / "evaluation"
    result = run_cli(
        "evaluate", trained["run"] / "model.keras", trained["data"], "--json", "--out", out
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # stdout holds the JSON alone
    assert report["num_images"] == 16
    assert sum(sum(row.values()) for row in report["confusion_matrix"].values()) == 16
    assert report["per_class"]["dog"]["support"] == 8
    assert {path.name for path in out.iterdir()} == {
        "metrics.json",
        "confusion_matrix.csv",
        "predictions.csv",
        "skipped.csv",
        "confusion_matrix.png",
        "predictions.png",
    }


def test_predict_writes_one_row_per_image_and_reports_skipped_files(trained):
    notes = trained["root"] / "notes.txt"
    notes.write_text("not an image")
    csv = trained["root"] / "predictions.csv"
    cat = trained["data"] / "cat" / "cat_0.png"
    dogs = trained["data"] / "dog"
    result = run_cli("predict", trained["run"] / "model.keras", cat, notes, dogs, "--csv", csv)
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(csv)
    # cat_0 and the 8 dogs; notes.txt and dog/broken.png are left out and reported.
    assert len(predictions) == 1 + PER_CLASS
    assert predictions["path"].iloc[0] == str(cat)
    assert set(predictions["label"]) <= {"cat", "dog"}
    assert {"probability", "prob_cat", "prob_dog"} <= set(predictions.columns)
    assert "notes.txt (not an image file)" in result.stderr
    assert "broken.png" in result.stderr
    assert "Traceback" not in result.stderr


def test_predict_prints_the_predictions(trained):
    result = run_cli("predict", trained["run"] / "model.keras", trained["data"] / "cat")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["path", "label", "probability"]
    assert len(lines) == 1 + PER_CLASS
    assert lines[1].split()[0].endswith("cat_0.png")


def test_fit_from_a_csv_with_overwrite_keeps_other_files(trained, tmp_path):
    # Paths relative to the CSV's folder, run from elsewhere.
    data = trained["data"]
    rows = [
        (os.path.relpath(path, data), name)
        for name in ("cat", "dog")
        for path in sorted((data / name).glob(f"{name}_*.png"))
    ]
    pd.DataFrame(rows, columns=["file", "class"]).to_csv(data / "labels.csv", index=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.md").write_text("my notes")
    (run / "history.csv").write_text("old history")
    result = run_cli(
        "fit",
        data / "labels.csv",
        "--out",
        run,
        "--overwrite",
        "--path-column",
        "file",
        "--label-column",
        "class",
        "--schedule",
        "freeze",
        *TINY_MODEL,
        "--epochs",
        "1",
        cwd=tmp_path,
        cache=trained["root"] / "cache",
    )
    assert result.returncode == 0, result.stderr
    assert (run / "notes.md").read_text() == "my notes"
    assert pd.read_csv(run / "history.csv")["phase"].tolist() == ["frozen"]
    # No file was skipped this time, so there is no skipped.csv.
    assert {path.name for path in run.iterdir()} == RUN_FILES - {"skipped.csv"} | {"notes.md"}
    # The command's settings travel in the model, so a FineTuner loaded from it reads the CSV.
    import transferkit as tk

    loaded = tk.load(run / "model.keras")
    assert (loaded.path_column, loaded.label_column) == ("file", "class")
    assert loaded.schedule == tk.Freeze()


def test_fit_trains_in_the_precision_asked_and_saves_a_float32_model(tmp_path, write_class_folder):
    data = write_class_folder(tmp_path / "data", per_class=4)
    out = tmp_path / "run"
    arguments = [*TINY_MODEL, "--epochs", "1", "--batch-size", "8"]
    result = run_cli(
        "fit", data, "--out", out, "--precision", "mixed_bfloat16", *arguments, cache=tmp_path
    )
    assert result.returncode == 0, result.stderr
    ft = transferkit.load(out / "model.keras")
    assert ft.precision == "mixed_bfloat16"
    assert ft.model.backbone.dtype_policy.name == "float32"

    wrong = run_cli("fit", data, "--out", tmp_path / "other", "--precision", "bfloat16")
    assert wrong.returncode == 2 and "invalid choice: 'bfloat16'" in wrong.stderr
    assert not (tmp_path / "other").exists()

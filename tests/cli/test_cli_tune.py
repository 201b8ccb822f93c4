"""`transferkit tune`, run as a user runs it."""

import pandas as pd
from test_cli_workflow import PER_CLASS, TINY_MODEL, run_cli


def test_tune_writes_results_plot_and_best_model(tmp_path, write_class_folder):
    data = write_class_folder(tmp_path / "data", per_class=PER_CLASS)
    out = tmp_path / "search"
    arguments = [*TINY_MODEL, "--epochs", "2", "--max-trials", "2", "--batch-size", "8"]
    result = run_cli("tune", data, "--out", out, "--head-only", *arguments, cache=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} >= {
        "results.csv",
        "search.png",
        "best_model.keras",
        "keras_tuner",
    }
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 2 and "val_accuracy" in results.columns
    assert "2 trials; best val_accuracy" in result.stdout

    # Predicting with the best model works like any fit model.
    predicted = run_cli("predict", out / "best_model.keras", data / "cat" / "cat_0.png")
    assert predicted.returncode == 0, predicted.stderr

    # A second search into the same folder is refused without --resume or --overwrite.
    again = run_cli("tune", data, "--out", out, *arguments)
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "is not empty" in again.stderr


def test_tune_rejects_bad_arguments_in_one_line(tmp_path, write_class_folder):
    data = write_class_folder(tmp_path / "data", per_class=2)
    result = run_cli("tune", data, "--out", tmp_path / "o", "--max-trials", "0")
    assert result.returncode == 1
    assert result.stderr.startswith("transferkit: error:") and "--max-trials" in result.stderr
    assert "Traceback" not in result.stderr

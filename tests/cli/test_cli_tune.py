"""`transferkit tune`, run as a user runs it."""

import re
import shutil

import pandas as pd
import pytest
from test_cli_workflow import PER_CLASS, TINY_MODEL, run_cli

SEARCH = [*TINY_MODEL, "--epochs", "1", "--batch-size", "8", "--head-only"]


def test_tune_writes_results_plot_and_best_model(tmp_path, write_class_folder):
    data = write_class_folder(tmp_path / "data", per_class=PER_CLASS)
    out = tmp_path / "search"
    arguments = [*TINY_MODEL, "--epochs", "2", "--max-trials", "2", "--batch-size", "8"]
    result = run_cli(
        "tune",
        data,
        "--out",
        out,
        "--head-only",
        "--time-budget",
        "600",
        "--refit",
        *arguments,
        cache=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    # The finalists were compared on images no trial saw, and the winner was refitted.
    assert "Finalists, compared on the confirmation images no trial saw:" in result.stdout
    assert "(refitted on every image)" in result.stdout
    assert {p.name for p in out.iterdir()} >= {
        "results.csv",
        "search.png",
        "best_model.keras",
        "keras_tuner",
    }
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 2 and "val_accuracy" in results.columns
    assert "2 trials; best val_accuracy" in result.stdout
    # The headline names the trial best on validation; the choice says why it was made.
    assert re.search(r"^2 trials; best val_accuracy \d\.\d{4} \(trial \d+\)$", result.stdout, re.M)
    assert re.search(r"^  trial \d+: the default recipe", result.stdout, re.M)
    chosen = re.search(
        r"^Chosen: trial \d+, val_accuracy \d\.\d{4} \(refitted on every image\): (.+)$",
        result.stdout,
        re.M,
    )
    assert chosen, result.stdout
    assert chosen.group(1).startswith(("the default recipe", "clearly better than trial"))

    # Predicting with the best model works like any fit model.
    predicted = run_cli("predict", out / "best_model.keras", data / "cat" / "cat_0.png")
    assert predicted.returncode == 0, predicted.stderr

    # A second search into the same folder is refused without --resume or --overwrite.
    again = run_cli("tune", data, "--out", out, *arguments)
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "is not empty" in again.stderr


@pytest.mark.parametrize(
    "option, value",
    [
        ("--max-trials", "0"),
        ("--time-budget", "0"),
        ("--confirmation-split", "1"),
        ("--change-rate", "0"),
    ],
)
def test_tune_rejects_bad_arguments_in_one_line(tmp_path, write_class_folder, option, value):
    data = write_class_folder(tmp_path / "data", per_class=2)
    result = run_cli("tune", data, "--out", tmp_path / "o", option, value)
    assert result.returncode == 1
    assert result.stderr.startswith("transferkit: error:") and option in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def search(tmp_path_factory, write_class_folder):
    """A finished one-trial head-only search: (data, its --out folder, the cache)."""
    root = tmp_path_factory.mktemp("cli_tune")
    data = write_class_folder(root / "data", per_class=PER_CLASS)
    out, cache = root / "search", root / "cache"
    result = run_cli("tune", data, "--out", out, *SEARCH, "--max-trials", "1", cache=cache)
    assert result.returncode == 0, result.stderr
    return data, out, cache


def _one_error_line(result) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("transferkit: error: ")
    # Answers in the command's words, not the Python API's.
    assert "overwrite=True" not in lines[0] and "project_name" not in lines[0]
    return lines[0]


def test_a_search_folder_offers_resume_as_well_as_overwrite(search):
    data, out, cache = search
    result = run_cli("tune", data, "--out", out, *SEARCH, "--max-trials", "1", cache=cache)
    line = _one_error_line(result)
    assert "is not empty" in line
    assert "pass --resume to continue the search it holds, or pass --overwrite" in line


def test_resume_with_other_epochs_names_the_options_it_needs(search):
    data, out, cache = search
    arguments = [*SEARCH, "--max-trials", "1", "--epochs", "2", "--resume"]
    result = run_cli("tune", data, "--out", out, *arguments, cache=cache)
    line = _one_error_line(result)
    assert "with the options it was started with (--epochs 1), not --epochs 2" in line
    assert "Pass --epochs 1 to continue it" in line


def test_resume_on_other_images_answers_in_the_commands_words(search):
    data, out, cache = search
    # Another split: the tuner finds other training and validation images.
    arguments = [*SEARCH, "--max-trials", "1", "--validation-split", "0.5", "--resume"]
    result = run_cli("tune", data, "--out", out, *arguments, cache=cache)
    line = _one_error_line(result)
    assert "only with the data and options it was started with" in line
    assert "(it differs in DATA or --validation-split)" in line


def test_resume_with_more_trials_continues_the_search(search, tmp_path):
    data, out, cache = search
    copy = shutil.copytree(out, tmp_path / "search")
    arguments = [*SEARCH, "--max-trials", "2", "--resume"]
    result = run_cli("tune", data, "--out", copy, *arguments, cache=cache)
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(copy / "results.csv")) == 2


def test_input_sizes_keeps_the_size_in_every_trial(tmp_path, write_class_folder):
    data = write_class_folder(tmp_path / "data", per_class=PER_CLASS)
    out = tmp_path / "search"
    arguments = ["--backbone", "mobilenet", "--weights", "none", "--epochs", "1"]
    arguments += ["--batch-size", "8", "--head-only", "--max-trials", "2"]
    # --input-size 64 alone would make trial two the default recipe at 96 px.
    sizes = ["--input-size", "64", "--input-sizes", "64"]
    result = run_cli("tune", data, "--out", out, *arguments, *sizes, cache=tmp_path)
    assert result.returncode == 0, result.stderr
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 2
    assert "image_size" not in results.columns or set(results["image_size"]) == {64}

    import keras

    model = keras.saving.load_model(out / "best_model.keras")
    assert model.image_size == (64, 64)


def test_input_sizes_is_the_search_space_of_the_image_size():
    from transferkit.cli.main import build_parser
    from transferkit.cli.tune import _check_input_sizes, search_space

    def parse(*argv):
        args = build_parser().parse_args(["tune", "data", "--out", "o", *argv])
        _check_input_sizes(args)
        return args

    args = parse("--input-sizes", "64")
    assert args.input_size == 64 and search_space(args) == {"image_size": [64]}
    args = parse("--input-size", "64", "--input-sizes", "64", "128", "--head-only")
    assert search_space(args) == {"unfreeze": False, "image_size": [64, 128]}
    assert search_space(parse("--input-size", "64")) == {}
    with pytest.raises(ValueError, match=r"Received: --input-size 96 --input-sizes 64 128"):
        parse("--input-size", "96", "--input-sizes", "64", "128")
    with pytest.raises(ValueError, match=r"--input-sizes must be an integer >= 32"):
        parse("--input-sizes", "16")


def test_help_says_what_input_size_means_for_tune():
    from transferkit.cli.main import build_parser
    from transferkit.tuning.space import larger_size

    parser = build_parser()
    tune_parser = parser._subparsers._group_actions[0].choices["tune"]
    text = " ".join(tune_parser.format_help().split())
    # The sizes the help names are the ones the search tries.
    assert f"(--input-size 64: 64 and {larger_size(64)} px; 32: 32 alone)" in text
    assert larger_size(32) == 32
    assert "--input-sizes 64 keeps 64" in text


def test_a_too_small_time_budget_is_one_line_and_leaves_no_folder(tmp_path, write_class_folder):
    data = write_class_folder(tmp_path / "data", per_class=PER_CLASS)
    out = tmp_path / "search"
    arguments = [*SEARCH, "--max-trials", "1", "--time-budget", "0.01"]
    for attempt in range(2):
        result = run_cli("tune", data, "--out", out, *arguments, cache=tmp_path / "cache")
        line = _one_error_line(result)
        # The same command again meets the same error, not "is not empty".
        assert "--time-budget 0.01 is too small for one trial" in line, attempt
        assert "Traceback" not in result.stdout + result.stderr
        assert not out.exists()


def test_a_failed_overwrite_puts_the_previous_search_back(search, tmp_path):
    data, out, cache = search
    copy = shutil.copytree(out, tmp_path / "search")
    (copy / "notes.txt").write_text("mine")
    before = sorted(str(path.relative_to(copy)) for path in copy.rglob("*"))
    arguments = [*SEARCH, "--max-trials", "1", "--time-budget", "0.01", "--overwrite"]
    result = run_cli("tune", data, "--out", copy, *arguments, cache=cache)
    assert "is too small for one trial" in _one_error_line(result)
    assert sorted(str(path.relative_to(copy)) for path in copy.rglob("*")) == before
    assert len(pd.read_csv(copy / "results.csv")) == 1

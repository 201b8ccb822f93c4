"""`transferkit export MODEL OUT --format ... [--quantize ...] [--check DATA]`."""

import pytest
from export_helpers import tiny_classifier

import transferkit as tk
from transferkit.cli import main

pytest.importorskip("ai_edge_litert", reason="the LiteRT runtime comes with transferkit[export]")


@pytest.fixture(scope="module")
def saved_model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    tk.FineTuner.from_model(tiny_classifier()).save(path)
    return path


@pytest.fixture(scope="module")
def check_folder(tmp_path_factory, write_class_folder):
    return write_class_folder(
        tmp_path_factory.mktemp("check"), per_class=3, classes=("cat", "dog", "bird")
    )


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("transferkit: error: "), err
    return err[0]


def test_export_with_check_prints_the_table_and_writes_the_files(
    saved_model_file, check_folder, tmp_path, capsys
):
    out = tmp_path / "cats.tflite"
    status = main(
        ["export", str(saved_model_file), str(out), "--format", "litert"]
        + ["--check", str(check_folder)]
    )
    assert status == 0
    captured = capsys.readouterr()
    assert "max_abs_diff" in captured.out and "accuracy" in captured.out
    assert captured.out.splitlines()[-1].startswith("litert ")
    assert "Wrote " in captured.err and out.is_file()
    assert tk.export.read_export_info(out).class_names == ["cat", "dog", "bird"]


def test_export_defaults_to_a_saved_model(saved_model_file, tmp_path):
    assert main(["export", str(saved_model_file), str(tmp_path / "exported")]) == 0
    assert tk.export.read_export_info(tmp_path / "exported").format == "saved_model"


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["--format", "onnx", "--quantize", "float16"], "--quantize applies to --format litert"),
        (["--format", "litert", "--quantize", "full_integer"], "pass --representative DATA"),
        (["--format", "litert", "--representative", "."], "--quantize full_integer only"),
        (["--tolerance", "0.1"], "pass --check DATA too"),
    ],
)
def test_options_that_do_not_go_together(saved_model_file, tmp_path, capsys, options, fragment):
    out = tmp_path / "model.tflite"
    assert main(["export", str(saved_model_file), str(out), *options]) == 1
    assert fragment in error_line(capsys)
    assert not out.exists()


def test_an_existing_out_is_kept_without_overwrite(saved_model_file, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    out.write_text("keep me")
    assert main(["export", str(saved_model_file), str(out), "--format", "onnx"]) == 1
    assert "Pass --overwrite" in error_line(capsys)
    assert out.read_text() == "keep me"


def test_an_unknown_format_is_a_usage_error(saved_model_file, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(saved_model_file), str(tmp_path / "m"), "--format", "tflite"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'tflite'" in capsys.readouterr().err


def test_a_failed_check_prints_the_table_and_writes_nothing(
    saved_model_file, check_folder, tmp_path, capsys
):
    out = tmp_path / "model.tflite"
    command = ["export", str(saved_model_file), str(out), "--format", "litert"]
    command += ["--quantize", "float16", "--check", str(check_folder), "--tolerance", "1e-12"]
    assert main(command) == 1
    captured = capsys.readouterr()
    assert "litert float16" in captured.out
    assert "beyond the tolerance" in captured.err
    assert list(tmp_path.iterdir()) == []


def test_check_refuses_labels_the_model_does_not_know_as_evaluate_does(
    saved_model_file, tmp_path, write_class_folder, capsys
):
    check = write_class_folder(tmp_path / "check", per_class=2, classes=("cat", "dog"))
    (check / "cat").rename(check / "cats")  # a typo of a class, and a class the model lacks
    (check / "dog").rename(check / "horse")
    out = tmp_path / "exported"
    assert main(["export", str(saved_model_file), str(out), "--check", str(check)]) == 1
    line = error_line(capsys)
    assert "label 'cats'" in line and "Other unknown labels: ['horse']" in line
    assert "is not one of the classes the model was trained on: ['cat', 'dog', 'bird']" in line
    assert not out.exists()
    # evaluate refuses the same folder with the same message.
    assert main(["evaluate", str(saved_model_file), str(check)]) == 1
    assert error_line(capsys) == line


def test_check_on_images_without_labels_says_why_accuracy_is_missing(
    saved_model_file, tmp_path, write_class_folder, capsys
):
    check = write_class_folder(tmp_path / "check", per_class=2, classes=("cat", "dog"))
    for path in list(check.rglob("*.png")):
        path.rename(check / path.name)
    out = tmp_path / "exported"
    assert main(["export", str(saved_model_file), str(out), "--check", str(check)]) == 0
    captured = capsys.readouterr()
    assert "no labels: the check compares probabilities only (accuracy -)" in captured.err
    assert out.is_dir()

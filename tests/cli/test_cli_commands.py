"""`transferkit --help`, `--version`, `backbones`, and `demo cats-vs-dogs` forwarding."""

import inspect
import os
import subprocess
import sys

import pytest

from transferkit.cli import build_parser, main
from transferkit.version import __version__

COMMANDS = (
    "fit",
    "evaluate",
    "predict",
    "export",
    "tune",
    "report",
    "backbones",
    "demo",
    "demo cats-vs-dogs",
)


def run_cli(*args):
    """Runs `python -m transferkit.cli ARGS` as from a shell; returns the CompletedProcess."""
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # a user's shell doesn't set it
    return subprocess.run(
        [sys.executable, "-m", "transferkit.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_help_and_version_are_quiet():
    # Nothing but the help on the terminal (tests/test_package.py checks that no
    # TensorFlow is imported for it).
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "transferkit.cli", "--help"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: transferkit" in result.stdout
    assert result.stderr == ""

    version = run_cli("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"transferkit {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command.split(), "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: transferkit {command}")
    assert "\nexample:\n  transferkit " in text


def test_backbones_help_warns_that_parameters_are_slow(capsys):
    with pytest.raises(SystemExit):
        main(["backbones", "--help"])
    assert "80 s" in capsys.readouterr().out


def test_backbones_lists_the_registry():
    result = run_cli("backbones")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "input_size", "preprocessing", "family", "source"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["resnet50"] == ["224", "caffe", "resnet", "keras.applications"]
    assert rows["mobilenet"] == ["224", "tf", "mobilenet", "keras.applications"]
    assert rows["hub:vit_base_patch16_224_imagenet"] == ["224", "preset", "vit", "keras_hub"]
    assert len(rows) > 200
    hub_only = run_cli("backbones", "--source", "keras_hub").stdout.splitlines()[1:]
    assert hub_only and all(line.split()[0].startswith("hub:") for line in hub_only)


@pytest.fixture
def demo_calls(monkeypatch):
    """Replaces the demo's `run` by one that records its keyword arguments."""
    cats_vs_dogs = pytest.importorskip("transferkit.demos.cats_vs_dogs")
    calls = []
    monkeypatch.setattr(cats_vs_dogs, "run", lambda **kwargs: calls.append(kwargs) or {})
    return calls


def test_demo_forwards_every_option(demo_calls):
    status = main(
        [
            "demo",
            "cats-vs-dogs",
            "--source",
            "folder",
            "--data-dir",
            "photos",
            "--weights",
            "imagenet",
            "--train-images",
            "200",
            "--image-size",
            "96",
            "--epochs",
            "3",
            "--frozen-epochs",
            "2",
            "--out",
            "runs/demo",
            "--seed",
            "7",
            "--precision",
            "mixed_bfloat16",
            "--overwrite",
        ]
    )
    assert status == 0
    assert demo_calls == [
        dict(
            source="folder",
            data_dir="photos",
            weights="imagenet",
            train_images=200,
            image_size=96,
            epochs=3,
            frozen_epochs=2,
            out="runs/demo",
            seed=7,
            overwrite=True,
            precision="mixed_bfloat16",
        )
    ]


def test_demo_defaults_are_the_functions_defaults():
    cats_vs_dogs = pytest.importorskip("transferkit.demos.cats_vs_dogs")
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(cats_vs_dogs.run).parameters.items()
    }
    args = build_parser().parse_args(["demo", "cats-vs-dogs"])
    given = {name: getattr(args, name) for name in defaults}
    assert given == defaults


def test_error_line_is_one_line_and_names_unexpected_types():
    from transferkit.cli.main import error_line

    advice = ConnectionError("Could not download.\nWithout network access you can:\n- pass a file")
    assert error_line(advice) == (
        "Could not download. Without network access you can: - pass a file"
    )
    assert error_line(FileNotFoundError("No such file: 'x'")) == "No such file: 'x'"
    assert error_line(KeyError("phase")) == (
        "KeyError: 'phase' (run with --verbose for the traceback)"
    )
    assert error_line(RuntimeError(), verbose=True) == "RuntimeError"


def test_main_in_process_leaves_the_log_level_alone(demo_calls):
    from transferkit.utils.log import logger

    before = logger.level
    assert main(["demo", "cats-vs-dogs", "--epochs", "2"]) == 0
    assert logger.level == before
    assert demo_calls[0]["epochs"] == 2


def test_demo_weights_help_names_the_backbone_a_weights_file_is_for(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "cats-vs-dogs", "--help"])
    text = capsys.readouterr().out
    option = " ".join(text[text.index("  --weights") : text.index("  --train-images")].split())
    assert "PATH: a weights file of ResNet50 without its top" in option

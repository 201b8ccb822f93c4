"""transferkit as an installed package: cheap to import, lazy public names, `python -m`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import transferkit as tk
from transferkit.version import __version__

SOURCE_ROOT = Path(tk.__file__).resolve().parents[1]


def run_python(*args, cwd, **environ):
    """Runs `python ARGS` from `cwd` on this source tree, as a user's shell would."""
    env = dict(os.environ, PYTHONPATH=str(SOURCE_ROOT))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.update(environ)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def imported_modules(importtime_stderr: str) -> set[str]:
    """The module names in the output of `python -X importtime`."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in importtime_stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.parametrize(
    "arguments, status",
    [
        (["-m", "transferkit", "--help"], 0),
        (["-m", "transferkit", "--version"], 0),
        (["-m", "transferkit", "fit", "--help"], 0),
        (["-m", "transferkit", "fit"], 2),  # DATA and --out missing
        (["-m", "transferkit", "fit", "data", "--out", "run", "--epochs", "two"], 2),
        (["-m", "transferkit", "fit", "nowhere", "--out", "run"], 1),  # no such DATA
        (["-m", "transferkit.cli", "--help"], 0),
    ],
)
def test_help_version_and_argument_errors_do_not_import_tensorflow(tmp_path, arguments, status):
    # Level 0 keeps transferkit from silencing stderr around an import of TensorFlow,
    # which would hide that import's lines from -X importtime too.
    result = run_python("-X", "importtime", *arguments, cwd=tmp_path, TF_CPP_MIN_LOG_LEVEL="0")
    assert result.returncode == status, result.stderr[-2000:]
    modules = imported_modules(result.stderr)
    assert "transferkit" in modules
    assert not {"tensorflow", "keras", "pandas"} & modules


def test_python_m_transferkit_is_the_transferkit_command(tmp_path):
    version = run_python("-m", "transferkit", "--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"transferkit {__version__}"
    usage = run_python("-m", "transferkit", "fit", cwd=tmp_path)
    assert usage.returncode == 2
    assert "usage: transferkit fit" in usage.stderr


def test_public_names_load_on_first_use_and_are_the_modules_own():
    from transferkit import FineTuner, finetuner

    assert tk.FineTuner is FineTuner is finetuner.FineTuner
    assert tk.load is finetuner.load
    assert tk.Freeze is tk.schedules.Freeze
    assert tk.tune is tk.tuning.tune
    for name in tk.__all__:
        assert getattr(tk, name) is not None, name


def test_every_lazy_name_is_public_and_the_new_models_package_is_among_them():
    lazy = set(tk._LAZY)
    assert set(tk.__all__) - {"__version__"} <= lazy
    assert tk._LAZY["ImageClassifier"] == "transferkit.models"
    assert tk._LAZY["models"] == "transferkit.models"


def test_a_missing_module_fails_only_when_its_name_is_used(monkeypatch):
    monkeypatch.setitem(tk._LAZY, "Nowhere", "transferkit.nowhere")
    assert tk.FineTuner is not None  # the other names are unaffected
    assert not hasattr(tk, "Nowhere")
    with pytest.raises(AttributeError, match="'Nowhere'.*has no transferkit.nowhere"):
        tk.Nowhere  # noqa: B018
    with pytest.raises(ImportError, match="cannot import name 'Nowhere'"):
        from transferkit import Nowhere  # noqa: F401


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'transferkit' has no attribute 'FineTunner'"):
        tk.FineTunner  # noqa: B018


@pytest.mark.parametrize(
    "imports", ["import keras\nimport transferkit\n", "import transferkit\nimport keras\n"]
)
def test_plain_keras_loading_after_import_transferkit_in_either_order(tmp_path, imports):
    finetuner = tk.FineTuner("mobilenet", weights=None, input_shape=32)
    finetuner.build(["cat", "dog"])
    finetuner.save(tmp_path / "model.keras")
    script = imports + (
        "model = keras.saving.load_model('model.keras')\nprint('loaded', type(model).__name__)\n"
    )
    result = run_python("-c", script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "loaded ImageClassifier"


def test_only_the_command_imports_the_package_lazily(tmp_path):
    script = (
        "import sys\n"
        "sys.argv = [sys.argv[1]]\n"
        "import transferkit\n"
        "print('tensorflow' in sys.modules)\n"
    )
    as_command = run_python("-c", script, "/usr/local/bin/transferkit", cwd=tmp_path)
    as_library = run_python("-c", script, "my_script.py", cwd=tmp_path)
    assert as_command.stdout.strip() == "False", as_command.stderr[-2000:]
    assert as_library.stdout.strip() == "True", as_library.stderr[-2000:]


def test_dir_lists_the_public_names_not_the_lazy_machinery():
    names = dir(tk)
    assert set(tk.__all__) <= set(names)
    assert not {"_LAZY", "TYPE_CHECKING"} & set(names)


def test_importing_a_submodule_directly_keeps_tensorflow_quiet(tmp_path):
    result = run_python("-c", "from transferkit.data import as_image_source", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""

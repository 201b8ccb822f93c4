"""Fixtures of the export tests: a tiny classifier, images, a clean process to run exports in."""

import subprocess
import sys

import numpy as np
import pytest
from export_helpers import RUNNER, smooth_images, tiny_classifier

import transferkit as tk


@pytest.fixture(scope="module")
def finetuner():
    """A FineTuner around a tiny three-class classifier (cat, dog, bird)."""
    return tk.FineTuner.from_model(tiny_classifier())


@pytest.fixture(scope="module")
def images():
    """Twelve raw 30x20 images, which the exports resize inside."""
    return smooth_images(12)


@pytest.fixture
def run_artifact(tmp_path):
    """`run_artifact(format, path, images, files=())` -> the runner's outputs (a dict).

    Runs `run_artifact.py` in a fresh Python with transferkit and Keras (and, for
    LiteRT and ONNX, TensorFlow) unimportable.
    """

    def run(format, path, images, files=()):
        images_file = tmp_path / "run_images.npy"
        out = tmp_path / "run_outputs.npz"
        np.save(images_file, np.asarray(images, dtype="float32"))
        command = [sys.executable, str(RUNNER), format, str(path), str(images_file), str(out)]
        completed = subprocess.run(
            [*command, *map(str, files)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        with np.load(out) as outputs:
            result = {key: outputs[key] for key in outputs.files}
        assert list(result["leaked"]) == [], f"imported in the runtime: {result['leaked']}"
        return result

    return run

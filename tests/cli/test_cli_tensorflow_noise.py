"""TensorFlow's own noise stays off a command's terminal without --verbose, and its cause."""

import os
import subprocess
import sys
from pathlib import Path

import keras

import transferkit as tk

SOURCE_ROOT = Path(tk.__file__).resolve().parents[1]

# Sets up logging as `transferkit` does, imports TensorFlow as a command does, then makes
# TensorFlow warn about retracing for real: one tf.function called at six shapes.
PROBE = """
import os, sys
mode, sys.argv[0] = sys.argv[1], "-m"  # imported as by `python -m transferkit.cli`: lazily
from transferkit.cli.runtime import configure_logging, import_tensorflow
assert "tensorflow" not in sys.modules
configure_logging(mode == "verbose")
import_tensorflow()
import tensorflow as tf

@tf.function
def double(x):
    return x * 2

for size in range(1, 7):
    double(tf.zeros([size]))
print(os.environ["TF_CPP_MIN_LOG_LEVEL"])
"""


def _probe(mode):
    env = dict(os.environ, PYTHONPATH=str(SOURCE_ROOT))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # a user's shell doesn't set it
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result


def test_without_verbose_tensorflow_warnings_stay_off_the_terminal():
    quiet = _probe("quiet")
    assert "triggered tf.function retracing" not in quiet.stderr
    assert quiet.stderr == ""
    # Native lines of every level too (oneDNN's "supports DT_BOOL only on platforms with
    # AVX-512" is an error-level one).
    assert quiet.stdout.strip() == "3"


def test_verbose_shows_tensorflow_warnings():
    verbose = _probe("verbose")
    assert "triggered tf.function retracing" in verbose.stderr
    assert verbose.stdout.strip() == "2"


def test_fit_and_evaluate_trace_each_model_once(tmp_path, write_class_folder, monkeypatch):
    """Every `predict` trace is a graph built again: one per model is the least possible."""
    traces = []
    predict_step = keras.Model.predict_step

    def counted(self, data):
        traces.append(self.name)  # runs once per trace, not per batch
        return predict_step(self, data)

    monkeypatch.setattr(keras.Model, "predict_step", counted)
    data = write_class_folder(tmp_path / "data", per_class=10, classes=("cat", "dog", "bird"))
    ft = tk.FineTuner("mobilenet", weights=None, input_shape=32, seed=0)
    # 24 training images, 6 validation images: batches of 4 leave a smaller last one.
    ft.fit(data, epochs=2, batch_size=4, verbose=0)
    ft.evaluate(data, batch_size=4)
    # The frozen phase's feature extractor (training and validation images), and the
    # classifier that evaluates.
    assert len(traces) <= 2, traces

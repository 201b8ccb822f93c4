"""What a change of the FineTuner's insides must not change: its public API, seeded runs,
the callback events of each phase, and the same metrics on one device and under a strategy.

The stored results in `fixtures/invariants/` were written by `invariants.py --write`
from the code before the trainer was split out of the FineTuner; they are compared to
1e-5 (the runs repeat bit for bit on one machine).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import invariants
import keras
import numpy as np
import pytest
from invariants import FIXTURES, RUNS, colour_images, golden_run, make_finetuner, public_api

import transferkit as tk

TOLERANCE = 1e-5
SOURCE_ROOT = Path(tk.__file__).resolve().parents[1]


def stored(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


def test_the_public_api_is_the_stored_one():
    """`dir(tk)` and every public FineTuner method's signature, as stored."""
    assert public_api() == stored("public_api")


@pytest.fixture(scope="module", params=sorted(RUNS))
def golden(request):
    return request.param, golden_run(request.param), stored(request.param)


def test_a_seeded_run_repeats_its_history_predictions_and_config(golden):
    name, got, want = golden
    assert list(got["history"]) == list(want["history"]), name
    for column, values in want["history"].items():
        if column == "phase":
            assert got["history"][column] == values
        else:
            np.testing.assert_allclose(got["history"][column], values, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], rtol=0, atol=TOLERANCE)
    if want["thresholds"] is None:
        assert got["thresholds"] is None
    else:
        np.testing.assert_allclose(got["thresholds"], want["thresholds"], rtol=0, atol=TOLERANCE)
    assert got["config"] == want["config"]
    # The model's config holds chosen thresholds: floats of the run, compared as above.
    _assert_same_config(got["model_config"], want["model_config"])


def _assert_same_config(got, want, where="model_config"):
    """Equal configs, their floats within TOLERANCE: the run's floats move with the CPU's
    kernels in their last digits."""
    if isinstance(want, float) and isinstance(got, float):
        assert abs(got - want) <= TOLERANCE, (where, got, want)
    elif isinstance(want, dict) and isinstance(got, dict):
        assert sorted(got) == sorted(want), where
        for key in want:
            _assert_same_config(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list) and isinstance(got, list):
        assert len(got) == len(want), where
        for index, (mine, theirs) in enumerate(zip(got, want, strict=True)):
            _assert_same_config(mine, theirs, f"{where}[{index}]")
    else:
        assert got == want, where


def test_each_phase_sends_keras_callback_events_in_order(golden):
    """One `fit` per phase: train begin, each epoch's begin and end (every batch), train end."""
    name, got, want = golden
    assert got["events"] == want["events"]
    metrics = "binary_accuracy loss pr_auc" if name.startswith("multi") else "accuracy loss"
    val = " ".join(f"val_{m}" for m in metrics.split())
    logs = "logs " + " ".join(sorted([*metrics.split(), *val.split()]))
    assert got["events"] == [
        # The frozen phase: one epoch.
        "train_begin",
        "epoch_begin 0",
        "epoch_end 0 batches 5",
        logs,
        "train_end",
        # The unfrozen phase: epochs 2 and 3.
        "train_begin",
        "epoch_begin 1",
        "epoch_end 1 batches 5",
        logs,
        "epoch_begin 2",
        "epoch_end 2 batches 5",
        logs,
        "train_end",
    ]


def test_a_strategy_reports_the_same_metrics_and_events_as_one_device(tmp_path):
    """MirroredStrategy over two logical CPUs: the same history columns and callback events.

    A multi-label run under a strategy once reported `accuracy` instead of its head's
    `binary_accuracy` and `pr_auc` (its distributed step was compiled without them).
    """
    output = tmp_path / "strategy.json"
    path = os.pathsep.join(filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")]))
    completed = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("invariants.py")),
            "--two-logical-cpus",
            str(output),
        ],
        env={**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(output.read_text())
    for name in RUNS:
        want = stored(name)
        assert results[name]["columns"] == list(want["history"]), name
        assert results[name]["events"] == want["events"], name


class Crash(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:  # the unfrozen phase's first epoch
            raise KeyboardInterrupt


def test_a_resumed_multi_label_run_equals_the_uninterrupted_one(tmp_path):
    """Stopped at the unfreeze and resumed: the same history, thresholds and outputs.

    At a phase boundary a resumed run replays the run exactly (a fresh optimizer, a
    fresh shuffle, layers reseeded); inside a phase the shuffle order and Adam's
    moments start afresh (single-label resumes: `test_finetuner_checkpoint.py`).
    """
    images, labels = colour_images(96, multi_label=True, seed=1)
    probe, _ = colour_images(12, multi_label=True, seed=2)
    reference = make_finetuner(multi_label=True, cached=True)
    expected = reference.fit(images, labels, epochs=3, batch_size=16, verbose=0)

    checkpoint = tmp_path / "checkpoint"
    with pytest.raises(KeyboardInterrupt):
        make_finetuner(multi_label=True, cached=True).fit(
            images,
            labels,
            epochs=3,
            batch_size=16,
            checkpoint_dir=checkpoint,
            callbacks=[Crash()],
            verbose=0,
        )
    resumed = make_finetuner(multi_label=True, cached=True)
    history = resumed.fit(
        images, labels, epochs=3, batch_size=16, checkpoint_dir=checkpoint, verbose=0
    )
    columns = [c for c in expected if c not in ("seconds", "phase")]
    np.testing.assert_allclose(history[columns], expected[columns], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(
        resumed.model.head.thresholds, reference.model.head.thresholds, rtol=0, atol=TOLERANCE
    )
    np.testing.assert_allclose(
        resumed.predict(probe).filter(like="prob_"),
        reference.predict(probe).filter(like="prob_"),
        rtol=0,
        atol=TOLERANCE,
    )


def test_a_label_smoothing_loss_trains_under_a_strategy_with_the_same_metrics():
    """The distributed step takes the head's loss object (label smoothing), not only names."""
    import tensorflow as tf

    images, labels = colour_images(48, multi_label=False, seed=1)

    def run(distribute):
        ft = tk.FineTuner(
            invariants.tiny_backbone(),
            weights=None,
            input_shape=16,
            head=tk.ClassificationHead(dropout=0.0, label_smoothing=0.1),
            schedule=tk.FreezeUnfreeze(frozen_epochs=1, learning_rate=0.05),
            cache_features=False,
            seed=7,
            distribute=distribute,
        )
        return ft.fit(images, labels, epochs=2, batch_size=16, shuffle=False, verbose=0)

    expected = run(None)
    history = run(tf.distribute.MirroredStrategy(["/cpu:0"]))
    assert list(history) == list(expected)
    columns = ["loss", "accuracy", "val_loss", "val_accuracy"]
    np.testing.assert_allclose(history[columns], expected[columns], rtol=1e-5, atol=1e-5)

"""FineTuner(distribute=...): two logical CPUs in one process, and a two-process cluster.

The runs are `examples/scale_out/train.py` (a tiny backbone on tiny images) in
subprocesses: logical devices and a cluster must be set before TensorFlow starts,
which the test process did long ago. Every subprocess has a time limit and is
killed in `finally`. Runs use `--no-shuffle` and no dropout, so a distributed run
must repeat the one-device run up to float rounding: the replicas sum the same
per-example gradients in another order (measured difference about 2e-10; the
tolerance is 1e-5).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import transferkit as tk
from bench.scale import free_ports
from transferkit.training.distribution import read_tf_config, worker_timeout

SOURCE_ROOT = Path(tk.__file__).resolve().parents[1]
EXAMPLE = SOURCE_ROOT / "examples" / "scale_out" / "train.py"
TOLERANCE = 1e-5
RUN_LIMIT = 120  # seconds any one subprocess may take


def _env(**extra):
    path = os.pathsep.join(filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def start(tmp_path, name, *args, tf_config=None, **env):
    """Starts the example; its output goes to tmp_path/<name>.log."""
    extra = dict(env)
    if tf_config is not None:
        extra["TF_CONFIG"] = json.dumps(tf_config)
    log = open(tmp_path / f"{name}.log", "w")
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--data", str(tmp_path / "images"), *map(str, args)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(**extra),
        cwd=tmp_path,
    )
    process.log_path = tmp_path / f"{name}.log"
    log.close()
    return process


def finish(process, limit=RUN_LIMIT):
    """Waits (bounded) for the process; returns (exit status, its output)."""
    try:
        status = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"{process.args[-1]} still running after {limit}s:\n{read(process)[-3000:]}")
    return status, read(process)


def read(process):
    return process.log_path.read_text()


def stop(*processes):
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def cluster(ports):
    chief, worker = (f"127.0.0.1:{port}" for port in ports)
    spec = {"chief": [chief], "worker": [worker]}
    return (
        {"cluster": spec, "task": {"type": "chief", "index": 0}},
        {"cluster": spec, "task": {"type": "worker", "index": 0}},
    )


def weights(summary):
    data = np.load(summary)
    return [
        data[key]
        for key in sorted((k for k in data if k.startswith("w")), key=lambda k: int(k[1:]))
    ]


def assert_same_weights(got, want, atol):
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The one-device run: its summary (.npz) and the shared image folder."""
    tmp_path = tmp_path_factory.mktemp("scale_out")
    process = start(
        tmp_path,
        "one",
        "--no-shuffle",
        "--out",
        tmp_path / "one",
        "--summary",
        tmp_path / "one.npz",
    )
    try:
        status, output = finish(process)
    finally:
        stop(process)
    assert status == 0, output[-3000:]
    return tmp_path


def test_two_logical_cpus_match_one_device_and_the_model_loads_without_a_strategy(reference):
    tmp_path = reference
    process = start(
        tmp_path,
        "mirrored",
        "--logical-cpus",
        2,
        "--distribute",
        "mirrored",
        "--no-shuffle",
        "--out",
        tmp_path / "mirrored",
        "--summary",
        tmp_path / "mirrored.npz",
    )
    try:
        status, output = finish(process)
    finally:
        stop(process)
    assert status == 0, output[-3000:]
    assert "replicas in sync: 2; chief: True" in output
    # Every phase ran: the cached frozen phase and the unfrozen one, recompiled.
    assert "phase 'frozen'" in output and "phase 'unfrozen'" in output
    assert_same_weights(
        weights(tmp_path / "mirrored.npz"), weights(tmp_path / "one.npz"), TOLERANCE
    )

    # The saved model loads here, where no strategy exists, and predicts what it did there.
    loaded = tk.load(tmp_path / "mirrored" / "model.keras")
    assert loaded.get_config()["distribute"] == "mirrored"
    assert not isinstance(loaded.model.distribute_strategy, tf.distribute.MirroredStrategy)
    probabilities = loaded.predict(tmp_path / "images").filter(like="prob_").to_numpy()
    expected = np.load(tmp_path / "mirrored.npz")["probabilities"]
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)


def test_a_two_process_cluster_ends_identical_and_only_the_chief_writes(reference):
    tmp_path = reference
    chief_config, worker_config = cluster(free_ports(2))
    processes = []
    try:
        for name, config in (("chief", chief_config), ("worker", worker_config)):
            processes.append(
                start(
                    tmp_path,
                    name,
                    "--distribute",
                    "auto",
                    "--no-shuffle",
                    "--out",
                    tmp_path / f"{name}-out",
                    "--checkpoint-dir",
                    tmp_path / f"{name}-checkpoint",
                    "--summary",
                    tmp_path / f"{name}.npz",
                    tf_config=config,
                    TRANSFERKIT_WORKER_TIMEOUT="60",
                )
            )
        results = [finish(process) for process in processes]
    finally:
        stop(*processes)
    for status, output in results:
        assert status == 0, output[-3000:]
        assert "replicas in sync: 2" in output
    chief, worker = (weights(tmp_path / f"{name}.npz") for name in ("chief", "worker"))
    assert_same_weights(worker, chief, atol=0)  # bit-identical
    assert_same_weights(chief, weights(tmp_path / "one.npz"), TOLERANCE)
    # predict, under the cluster: every worker gets every image's probabilities, in order.
    expected = np.load(tmp_path / "one.npz")["probabilities"]
    for name in ("chief", "worker"):
        got = np.load(tmp_path / f"{name}.npz")["probabilities"]
        np.testing.assert_allclose(got, expected, atol=1e-5)
    # The chief alone writes: the model, the checkpoint (each task was given its own folders,
    # so that a write by the worker would show).
    assert (tmp_path / "chief-out" / "model.keras").exists()
    assert {p.name for p in (tmp_path / "chief-checkpoint").iterdir()} == {
        "state.json",
        "model-epoch0004.keras",
    }
    assert not (tmp_path / "worker-out").exists()
    assert not (tmp_path / "worker-checkpoint").exists()
    assert "not saving" in results[1][1] and "not the chief" in results[1][1]


def test_a_killed_worker_fails_the_run_clearly_and_a_restart_resumes(reference):
    tmp_path = reference
    checkpoint = tmp_path / "shared-checkpoint"
    common = ["--distribute", "auto", "--no-shuffle"]

    def start_both(extra, tag, worker_checkpoint=checkpoint):
        chief_config, worker_config = cluster(free_ports(2))
        return [
            start(
                tmp_path,
                f"{tag}-{name}",
                *common,
                *extra,
                "--checkpoint-dir",
                checkpoint if name == "chief" else worker_checkpoint,
                "--out",
                tmp_path / f"{tag}-{name}",
                "--summary",
                tmp_path / f"{tag}-{name}.npz",
                tf_config=config,
                TRANSFERKIT_WORKER_TIMEOUT="30",
            )
            for name, config in (("chief", chief_config), ("worker", worker_config))
        ]

    processes = start_both(["--pause", 4], "first")
    try:
        chief, worker = processes
        deadline = time.monotonic() + RUN_LIMIT
        state = checkpoint / "state.json"
        # Both wait 4 s before epoch 3: kill the worker once epoch 2 is checkpointed.
        while not (state.exists() and json.loads(state.read_text())["epochs_done"] == 2):
            assert chief.poll() is None, read(chief)[-3000:]
            assert time.monotonic() < deadline, "epoch 2 was never checkpointed"
            time.sleep(0.2)
        worker.kill()
        status, output = finish(chief)
    finally:
        stop(*processes)
    assert status != 0
    assert "WorkerLostError" in output and "/job:worker/replica:0/task:0" in output
    assert f"The last checkpoint in {checkpoint} is kept" in output

    # A worker that does not see the chief's checkpoint (a folder that is not shared) is
    # refused by both, before any training.
    processes = start_both([], "unshared", worker_checkpoint=tmp_path / "elsewhere")
    try:
        results = [finish(process) for process in processes]
    finally:
        stop(*processes)
    for status, output in results:
        assert status != 0
        assert "The workers disagree on the epochs done in checkpoint_dir" in output

    processes = start_both([], "again")
    try:
        results = [finish(process) for process in processes]
    finally:
        stop(*processes)
    for status, output in results:
        assert status == 0, output[-3000:]
        assert f"resuming from {checkpoint}: 2/4 epochs done" in output
    chief, worker = (weights(tmp_path / f"again-{name}.npz") for name in ("chief", "worker"))
    assert_same_weights(worker, chief, atol=0)
    # Resumed at the phase boundary, without shuffling: the run is the one-device run.
    assert_same_weights(chief, weights(tmp_path / "one.npz"), TOLERANCE)


def test_a_worker_that_never_comes_up_stops_the_chief_in_time(tmp_path):
    chief_config, _ = cluster(free_ports(2))
    started = time.monotonic()
    process = start(
        tmp_path,
        "alone",
        "--distribute",
        "auto",
        tf_config=chief_config,
        TRANSFERKIT_WORKER_TIMEOUT="3",
    )
    try:
        status, output = finish(process, limit=60)
    finally:
        stop(process)
    worker = chief_config["cluster"]["worker"][0]
    assert status == 1
    assert "waiting at most 3 s for chief:0 at" in output and f"worker:0 at {worker}" in output
    assert "Timeout (0:00:03)!" in output
    assert time.monotonic() - started < 45


# === Settings and bad input (no cluster needed) ===
@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "TF_CONFIG is not valid JSON"),
        (
            '{"cluster": {"worker": ["h:1", "h:1"]}, "task": {"type": "worker", "index": 0}}',
            "names the address 'h:1' twice",
        ),
        (
            '{"cluster": {"chief": ["h:1"], "worker": ["h:1"]}, "task": {"type": "chief"}}',
            "names the address 'h:1' twice",
        ),
        (
            '{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}',
            "task worker:2 is not in its cluster",
        ),
        ('{"cluster": {"worker": ["h:1", "h:2"]}}', "has no 'task'"),
        ('{"task": {"type": "worker"}}', "has no 'cluster'"),
    ],
)
def test_a_bad_tf_config_is_refused_before_any_wait(text, message):
    with pytest.raises(ValueError, match=message):
        read_tf_config({"TF_CONFIG": text})
    with pytest.raises(ValueError, match=message):
        _finetuner_under(text)


def _finetuner_under(text):
    saved = os.environ.get("TF_CONFIG")
    os.environ["TF_CONFIG"] = text
    try:
        return tk.FineTuner("mobilenet", weights=None, distribute="auto")
    finally:
        if saved is None:
            del os.environ["TF_CONFIG"]
        else:
            os.environ["TF_CONFIG"] = saved


def test_a_single_task_or_no_tf_config_is_no_cluster():
    assert read_tf_config({}) is None
    single = '{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 0}}'
    assert read_tf_config({"TF_CONFIG": single}) is None


def test_distribute_is_checked_and_travels_in_the_config(monkeypatch):
    with pytest.raises(ValueError, match="Received: distribute='gpus'"):
        tk.FineTuner("mobilenet", weights=None, distribute="gpus")
    assert tk.FineTuner("mobilenet", weights=None).get_config()["distribute"] is None
    for setting, saved in [
        ("auto", "auto"),
        (tf.distribute.MirroredStrategy(["/cpu:0"]), "mirrored"),
    ]:
        ft = tk.FineTuner("mobilenet", weights=None, distribute=setting)
        config = ft.get_config()
        assert config["distribute"] == saved
        assert tk.FineTuner.from_config(config).get_config() == config
    monkeypatch.delenv("TF_CONFIG", raising=False)
    # "auto" on one device and no cluster: no strategy, today's path.
    assert tk.FineTuner("mobilenet", weights=None, distribute="auto").strategy is None
    monkeypatch.setenv("TRANSFERKIT_WORKER_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="TRANSFERKIT_WORKER_TIMEOUT must be a positive"):
        worker_timeout()


def test_the_distributed_step_repeats_keras_fit_in_process(image_folder):
    """One replica, in this process: the whole recipe through the distributed step.

    Class weights weigh the training loss only (as in Keras), so the validation loss,
    which picks the best epoch, is the same number on both paths.
    """
    from test_finetuner import tiny_backbone  # tests/finetuner is on the path

    root = image_folder()

    def run(distribute):
        keras.utils.set_random_seed(5)
        ft = tk.FineTuner(
            tiny_backbone(),
            weights=None,
            head=tk.ClassificationHead(dropout=0.0),
            schedule=tk.FreezeUnfreeze(frozen_epochs=2, learning_rate=0.05),
            seed=3,
            distribute=distribute,
        )
        history = ft.fit(
            root, epochs=4, batch_size=8, shuffle=False, class_weight={0: 1.0, 1: 3.0}, verbose=0
        )
        return ft, history

    one, expected = run(None)
    mirrored, history = run(tf.distribute.MirroredStrategy(["/cpu:0"]))
    assert isinstance(mirrored.model.distribute_strategy, tf.distribute.MirroredStrategy)
    columns = ["learning_rate", "loss", "accuracy", "val_loss", "val_accuracy"]
    np.testing.assert_allclose(history[columns], expected[columns], rtol=1e-5, atol=1e-6)
    assert_same_weights(mirrored.model.get_weights(), one.model.get_weights(), TOLERANCE)
    # The learning-rate finder trains the head in the strategy's scope, and leaves it as it was.
    before = mirrored.model.get_weights()
    assert mirrored.find_lr(root, steps=5, batch_size=8).frame.shape[0] > 0
    assert_same_weights(mirrored.model.get_weights(), before, atol=0)

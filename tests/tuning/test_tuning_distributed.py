"""A distributed search on KerasTuner's engine: a chief and two worker processes on 127.0.0.1."""

import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

import transferkit

TRIALS = 4
REPOSITORY = str(Path(transferkit.__file__).resolve().parents[1])

SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    from transferkit.tuning import tune

    folder, directory, out = sys.argv[1:4]
    result = tune(
        folder,
        backbones="mobilenet",
        weights=None,
        input_shape=32,
        epochs=1,
        max_trials={trials},
        batch_size=8,
        directory=directory,
        project_name="distributed",
        verbose=0,
    )
    result.results.to_csv(out, index=False)
    """
).format(trials=TRIALS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_chief_and_two_workers_finish_a_search_with_every_trial_recorded_once(
    tmp_path, write_class_folder
):
    folder = write_class_folder(tmp_path / "images", per_class=10)
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    port = free_port()
    processes = {}
    for tuner_id in ("chief", "worker0", "worker1"):
        env = dict(
            os.environ,
            KERASTUNER_TUNER_ID=tuner_id,
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=str(port),
            PYTHONPATH=os.pathsep.join([REPOSITORY, os.environ.get("PYTHONPATH", "")]),
            # Three TensorFlow processes share the machine's cores.
            TF_NUM_INTRAOP_THREADS="1",
            TF_NUM_INTEROP_THREADS="1",
        )
        processes[tuner_id] = subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(folder),
                str(tmp_path / "search"),
                f"{tuner_id}.csv",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    logs = {}
    try:
        for tuner_id, process in processes.items():
            _, logs[tuner_id] = process.communicate(timeout=300)
            assert process.returncode == 0, f"{tuner_id} failed:\n{logs[tuner_id][-3000:]}"
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()

    chief = pd.read_csv(tmp_path / "chief.csv", dtype={"trial_id": str})
    assert len(chief) == TRIALS
    assert chief["trial_id"].is_unique
    assert (chief["status"] == "COMPLETED").all()
    assert chief["val_accuracy"].notna().all()

    # Each trial ran on exactly one worker, and both workers took part.
    ran = {
        worker: re.findall(rf"trial (\w+) \({worker}\): best val_accuracy", logs[worker])
        for worker in ("worker0", "worker1")
    }
    assert all(ran.values()), ran
    everything = ran["worker0"] + ran["worker1"]
    assert sorted(everything) == sorted(chief["trial_id"]), ran
    assert "best val_accuracy" not in logs["chief"]  # the chief trains nothing

    # Workers see the records the chief keeps in the shared folder.
    for worker in ("worker0", "worker1"):
        seen = pd.read_csv(tmp_path / f"{worker}.csv", dtype={"trial_id": str})
        assert set(seen["trial_id"]) <= set(chief["trial_id"])
        assert set(ran[worker]) <= set(seen.loc[seen["status"] == "COMPLETED", "trial_id"])

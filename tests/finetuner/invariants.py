"""Seeded reference runs whose results are stored, so that a change of code can prove it
changed no behaviour.

`tests/finetuner/test_finetuner_invariants.py` runs these and compares them with
the stored files in `tests/finetuner/fixtures/invariants/`. To store them anew
(only when a change of behaviour is intended, and said so in the commit):

    python tests/finetuner/invariants.py --write
"""

import argparse
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
from test_finetuner import tiny_backbone  # tests/finetuner is on the path, as a script too

import transferkit as tk
from transferkit.heads import ClassificationHead

FIXTURES = Path(__file__).parent / "fixtures" / "invariants"
NAMES = ["blue", "green", "red"]
# The golden runs: {single, multi}-label x {cached, end to end} frozen phase.
RUNS = {
    f"{kind}_{'cached' if cached else 'end_to_end'}": (kind, cached)
    for kind in ("single_label", "multi_label")
    for cached in (True, False)
}


def colour_images(count, multi_label, seed=0):
    """Images bright in the channels of their classes; labels as `fit` takes them."""
    rng = np.random.default_rng(seed)
    if multi_label:
        present = rng.random((count, 3)) < 0.45
    else:
        present = np.eye(3, dtype=bool)[rng.integers(0, 3, count)]
    channels = np.where(present[:, [2, 1, 0]], 210.0, 30.0)  # red, green, blue columns
    images = channels[:, None, None, :] + rng.normal(0, 25, (count, 16, 16, 3))
    images = np.clip(images, 0, 255).astype("float32")
    if multi_label:
        return images, [[NAMES[i] for i in np.flatnonzero(row)] for row in present]
    return images, [NAMES[int(np.flatnonzero(row)[0])] for row in present]


class EventRecorder(keras.callbacks.Callback):
    """Records the callback events a run sends, batch events counted per epoch."""

    def __init__(self):
        super().__init__()
        self.events = []
        self._batches = 0

    def on_train_begin(self, logs=None):
        self.events.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self._batches = 0
        self.events.append(f"epoch_begin {epoch}")

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(f"epoch_end {epoch} batches {self._batches}")
        self.events.append("logs " + " ".join(sorted(logs or {})))

    def on_train_end(self, logs=None):
        self.events.append("train_end")


def make_finetuner(multi_label, cached, distribute=None, dropout=0.25):
    return tk.FineTuner(
        tiny_backbone(),
        weights=None,
        input_shape=16,
        head=ClassificationHead(dropout=dropout),
        schedule=tk.FreezeUnfreeze(frozen_epochs=1, learning_rate=0.05),
        cache_features=tk.features.FeatureCache() if cached else False,
        seed=7,
        distribute=distribute,
    )


def golden_run(name, distribute=None, shuffle=True):
    """Runs one golden configuration; returns what is compared."""
    kind, cached = RUNS[name]
    multi_label = kind == "multi_label"
    images, labels = colour_images(96, multi_label, seed=1)
    probe, _ = colour_images(12, multi_label, seed=2)
    ft = make_finetuner(multi_label, cached, distribute)
    recorder = EventRecorder()
    history = ft.fit(
        images, labels, epochs=3, batch_size=16, callbacks=[recorder], shuffle=shuffle, verbose=0
    )
    probabilities = ft.predict(probe).filter(like="prob_").to_numpy()
    return {
        "history": history.drop(columns=["seconds"]).to_dict(orient="list"),
        "probabilities": probabilities.tolist(),
        "thresholds": ft.model.head.thresholds,
        "config": _without_counters(ft.get_config()),
        "model_config": _without_counters(_model_config(ft.model)),
        "events": recorder.events,
    }


def _model_config(model):
    config = model.get_config()
    # The backbone's own config is Keras's, not transferkit's: its class suffices.
    config["backbone"] = {"class_name": config["backbone"]["class_name"]}
    return config


def _without_counters(config):
    """The config with Keras's automatic name counters (`input_layer_3`) taken out.

    They count the layers the process made before, not anything the run decided.
    """
    text = json.dumps(config, default=str)
    return json.loads(re.sub(r'"(input_layer|classification_head)_\d+"', r'"\1"', text))


def public_api():
    """`dir(tk)` and the signatures of FineTuner's public methods and properties."""
    members = {}
    for name, member in inspect.getmembers(tk.FineTuner):
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            members[name] = "property"
        elif inspect.isfunction(member) or inspect.ismethod(member):
            members[name] = _without_modules(str(inspect.signature(member)))
    return {"dir(tk)": _fresh_dir_of_transferkit(), "FineTuner": members}


def _fresh_dir_of_transferkit() -> list[str]:
    """`dir(transferkit)` right after `import transferkit`, in a process of its own.

    In a test run `dir(tk)` also lists every sub-module that earlier tests imported.
    """
    code = "import json, transferkit; print(json.dumps(dir(transferkit)))"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return sorted(name for name in json.loads(output.splitlines()[-1]) if not name.startswith("_"))


def _without_modules(signature: str) -> str:
    """A signature with its annotations' classes named without their modules.

    Where a class is defined may move; what the signature takes may not.
    """
    return re.sub(r"\b(?:transferkit|keras)(?:\.\w+)*\.(?=[A-Z])", "", signature)


def write():
    FIXTURES.mkdir(parents=True, exist_ok=True)
    (FIXTURES / "public_api.json").write_text(json.dumps(public_api(), indent=1) + "\n")
    for name in RUNS:
        result = golden_run(name)
        (FIXTURES / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {name}")


def under_two_logical_cpus():
    """The golden runs' history columns and callback events under a MirroredStrategy.

    Must run in a fresh process: logical devices are set before TensorFlow starts.
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {}
    for name in RUNS:
        result = golden_run(name, distribute=strategy)
        results[name] = {"columns": list(result["history"]), "events": result["events"]}
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="store the golden results anew")
    parser.add_argument(
        "--two-logical-cpus", metavar="JSON", help="run under a strategy, write what it saw here"
    )
    args = parser.parse_args()
    if args.two_logical_cpus:
        Path(args.two_logical_cpus).write_text(json.dumps(under_two_logical_cpus()))
    elif args.write:
        write()
    else:
        sys.exit(parser.format_usage())

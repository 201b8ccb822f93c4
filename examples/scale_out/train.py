"""Scaling out: one fine-tune on several devices or several processes, on one small machine.

A tiny backbone on tiny synthetic images, so that the mechanics (the cluster,
the distributed steps, the chief's files, resuming) run in seconds on a laptop.
Run it as one process, as one process over two logical CPU devices, or as two
processes of a cluster described by TF_CONFIG:

    python examples/scale_out/train.py --out runs/one
    python examples/scale_out/train.py --logical-cpus 2 --distribute mirrored --out runs/mirrored
    TF_CONFIG='{"cluster": {"chief": ["127.0.0.1:12345"], "worker": ["127.0.0.1:12346"]},
                "task": {"type": "chief", "index": 0}}' \\
        python examples/scale_out/train.py --distribute auto --out runs/cluster &
    TF_CONFIG='{"cluster": {"chief": ["127.0.0.1:12345"], "worker": ["127.0.0.1:12346"]},
                "task": {"type": "worker", "index": 0}}' \\
        python examples/scale_out/train.py --distribute auto --out runs/cluster
"""

import argparse
import json
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", default="runs/scale_out_images", help="made if absent")
parser.add_argument("--images-per-class", type=int, default=24)
parser.add_argument("--out", default="runs/scale_out", help="where the chief saves model.keras")
parser.add_argument("--checkpoint-dir", help="a folder all processes share")
parser.add_argument("--distribute", default="none", choices=["none", "auto", "mirrored"])
parser.add_argument("--logical-cpus", type=int, default=1, help="split the CPU into N devices")
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--frozen-epochs", type=int, default=2)
parser.add_argument("--batch-size", type=int, default=8)
parser.add_argument("--image-size", type=int, default=16)
parser.add_argument("--no-shuffle", action="store_true", help="keep the examples in order")
parser.add_argument("--seed", type=int, default=3)
parser.add_argument("--pause", type=float, default=0.0, help="seconds before each epoch from 3 on")
parser.add_argument("--summary", help="write this process's figures and weights here (.npz)")
args = parser.parse_args()

import tensorflow as tf  # noqa: E402

# Logical devices must be set before TensorFlow runs anything.
if args.logical_cpus > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus
    )

import keras  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import transferkit as tk  # noqa: E402

# First: a cluster must form before TensorFlow runs anything else in the process (the
# backbone below is built right after). With a backbone given by name, `ft.fit` does this.
strategy = tk.resolve_strategy(None if args.distribute == "none" else args.distribute)


def tiny_backbone(size: int) -> keras.Model:
    """Two conv blocks: small enough to train in seconds, deep enough to unfreeze."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, name="block1_conv")(x)
    x = keras.layers.BatchNormalization(name="block1_bn")(x)
    x = keras.layers.Conv2D(8, 3, name="block2_conv")(x)
    return keras.Model(inputs, x, name="tiny")


def make_images(root: Path, per_class: int) -> Path:
    """Noisy red cats and blue dogs; every process writes the same bytes."""
    colours = {"cat": (220, 40, 40), "dog": (40, 40, 220)}
    for name, colour in colours.items():
        for index in range(per_class):
            path = root / name / f"{name}_{index}.png"
            if path.exists():
                continue
            rng = np.random.default_rng(index)
            noisy = np.array(colour) + rng.normal(0, 20, (20, 24, 3))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{time.time_ns()}.tmp")
            Image.fromarray(np.clip(noisy, 0, 255).astype("uint8")).save(tmp, format="PNG")
            tmp.replace(path)
    return root


class Pause(keras.callbacks.Callback):
    """Sleeps before each epoch from the third: time to stop a process mid-run."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= 2 and args.pause:
            time.sleep(args.pause)


ft = tk.FineTuner(
    tiny_backbone(args.image_size),
    weights=None,
    head=tk.ClassificationHead(dropout=0.0),
    schedule=tk.FreezeUnfreeze(frozen_epochs=args.frozen_epochs, learning_rate=0.05),
    seed=args.seed,
    distribute=strategy,
)
replicas = 1 if strategy is None else strategy.num_replicas_in_sync
print(f"replicas in sync: {replicas}; chief: {ft.is_chief}", flush=True)

data = make_images(Path(args.data), args.images_per_class)
started = time.perf_counter()
history = ft.fit(
    data,
    epochs=args.epochs,
    batch_size=args.batch_size,
    shuffle=not args.no_shuffle,
    checkpoint_dir=args.checkpoint_dir,
    callbacks=[Pause()],
    verbose=0,
)
seconds = time.perf_counter() - started
images = int(len(list(Path(data).glob("*/*.png"))) * (1 - ft.validation_split))
print(history.to_string(index=False))
print(f"fit: {seconds:.2f}s, {images * args.epochs / seconds:.1f} images/s", flush=True)
if ft.is_chief:
    Path(args.out).mkdir(parents=True, exist_ok=True)
ft.save(Path(args.out) / "model.keras", overwrite=True)  # on other workers: logs, writes nothing
if args.summary:
    weights = {f"w{index}": w for index, w in enumerate(ft.model.get_weights())}
    figures = {"seconds": seconds, "replicas": replicas, "chief": ft.is_chief}
    probabilities = ft.predict(data).filter(like="prob_").to_numpy()
    np.savez(args.summary, figures=json.dumps(figures), probabilities=probabilities, **weights)

"""What distribution costs here: one process, two logical CPUs, and a two-process cluster.

Fine-tunes the same model (MobileNet, random weights, unfrozen, 96 px) on the same
synthetic images in three ways and prints, for each, the wall time of the whole
`fit`, the images/s of its last epoch (compiling and set-up excluded) and what one
gradient all-reduce costs (the communication of every step, timed on its own
with a tensor the size of the trainable weights) times the steps of an epoch.
Each configuration runs in its own processes (a cluster, or logical devices,
must be set before TensorFlow starts); the two processes of the cluster talk
over 127.0.0.1 on free ports.

    python -m bench.scale                      # 512 images, 3 epochs
    python -m bench.scale --images 256 --epochs 2

On a machine with 2 cores the distributed runs cannot be faster: both replicas
share the same cores, and the all-reduce adds to every step.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

SIZE = 96


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="training images")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="the global batch")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per configuration")
    # Internal: the role of a process this script starts.
    parser.add_argument("--role", choices=["one", "mirrored", "cluster"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser


def run_role(args) -> None:
    """One process of one configuration: fit, time an all-reduce, write a JSON result."""
    import tensorflow as tf

    if args.role == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
    import numpy as np

    import transferkit as tk

    distribute = {"one": None, "mirrored": "mirrored", "cluster": "auto"}[args.role]
    ft = tk.FineTuner(
        "mobilenet",
        weights=None,
        input_shape=SIZE,
        head=tk.ClassificationHead(dropout=0.0),
        schedule=tk.NoFreeze(fine_tune_learning_rate=1e-3),
        validation_split=0,
        augmentation=None,
        seed=0,
        distribute=distribute,
    )
    strategy = ft.strategy
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (args.images, SIZE, SIZE, 3)).astype("float32")
    labels = np.arange(args.images) % 2
    started = time.perf_counter()
    history = ft.fit(images, labels, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    fit_seconds = time.perf_counter() - started
    last_epoch = float(history["seconds"].iloc[-1])

    allreduce_ms = 0.0
    if strategy is not None:
        size = sum(int(np.prod(v.shape)) for v in ft.model.trainable_variables)
        gradient = tf.ones([size])

        @tf.function
        def all_reduce():
            return strategy.reduce("SUM", strategy.run(lambda: tf.identity(gradient)), axis=None)

        all_reduce()  # compile
        repeats = 20
        timer = time.perf_counter()
        for _ in range(repeats):
            all_reduce()
        allreduce_ms = (time.perf_counter() - timer) / repeats * 1000
    steps = -(-args.images // args.batch_size)
    result = {
        "fit_seconds": fit_seconds,
        "images_per_second": args.images / last_epoch,
        "allreduce_ms": allreduce_ms,
        "communication_seconds_per_epoch": allreduce_ms * steps / 1000,
        "epoch_seconds": last_epoch,
        "replicas": 1 if strategy is None else strategy.num_replicas_in_sync,
        "chief": ft.is_chief,
    }
    Path(args.result).write_text(json.dumps(result))


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (also used by the distribution tests)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def run_configuration(args, role: str, folder: Path) -> dict:
    """Starts the processes of one configuration, waits (bounded), returns the chief's result."""
    base = [
        sys.executable,
        "-m",
        "bench.scale",
        "--images",
        str(args.images),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--role",
        role,
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    tasks = [("main", None)]
    if role == "cluster":
        chief, worker = (f"127.0.0.1:{port}" for port in free_ports(2))
        spec = {"chief": [chief], "worker": [worker]}
        tasks = [
            (name, json.dumps({"cluster": spec, "task": {"type": name, "index": 0}}))
            for name in ("chief", "worker")
        ]
    processes = []
    try:
        for name, tf_config in tasks:
            task_env = dict(env, TF_CONFIG=tf_config) if tf_config else env
            log = open(folder / f"{role}-{name}.log", "w")
            command = [*base, "--result", str(folder / f"{role}-{name}.json")]
            processes.append(
                subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=task_env)
            )
            log.close()
        deadline = time.monotonic() + args.timeout
        for process in processes:
            status = process.wait(timeout=max(1.0, deadline - time.monotonic()))
            if status != 0:
                log = (folder / f"{role}-{tasks[processes.index(process)][0]}.log").read_text()
                raise RuntimeError(f"{role} failed (exit {status}):\n{log[-3000:]}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return json.loads((folder / f"{role}-{tasks[0][0]}.json").read_text())


def main():
    args = build_parser().parse_args()
    if args.role:
        run_role(args)
        return
    import tempfile

    labels = {
        "one": "one process, one device",
        "mirrored": "one process, 2 logical CPUs (MirroredStrategy)",
        "cluster": "two processes on 127.0.0.1 (MultiWorkerMirroredStrategy)",
    }
    print(
        f"MobileNet (random weights, unfrozen), {SIZE} px, {args.images} images, "
        f"{args.epochs} epochs, global batch {args.batch_size}; {os.cpu_count()} CPU cores"
    )
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for role in ("one", "mirrored", "cluster"):
            result = run_configuration(args, role, Path(folder))
            rows.append((labels[role], result))
    one = rows[0][1]["images_per_second"]
    print(
        "| run | replicas | fit wall time (s) | images/s (last epoch) | vs one process "
        "| one all-reduce (ms) | all-reduce per epoch (s, share) |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, result in rows:
        share = result["communication_seconds_per_epoch"] / result["epoch_seconds"]
        communication = (
            f"{result['communication_seconds_per_epoch']:.2f} ({share:.0%})"
            if result["allreduce_ms"]
            else "-"
        )
        allreduce = f"{result['allreduce_ms']:.1f}" if result["allreduce_ms"] else "-"
        print(
            f"| {label} | {result['replicas']} | {result['fit_seconds']:.1f} "
            f"| {result['images_per_second']:.1f} | {result['images_per_second'] / one:.2f}x "
            f"| {allreduce} | {communication} |"
        )

    from bench.common import bench_command, write_results

    write_results(
        "scale",
        {label: result for label, result in rows},
        bench_command("bench.scale"),
        setup=vars(args),
    )


if __name__ == "__main__":
    main()

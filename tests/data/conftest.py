"""Synthetic images for the transferkit.data tests."""

import numpy as np
import pytest
from PIL import Image

# One colour per class; image i of a class is that colour plus i, so order is visible.
COLOURS = {"cat": (200, 40, 20), "dog": (20, 60, 210), "bird": (230, 140, 0)}


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    # Converted copies go to a per-test cache, never the user's ~/.cache.
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))


def _class_image(name: str, index: int, size=(8, 10)) -> np.ndarray:
    """The pixels of image `index` of class `name`: a solid colour, shape (h, w, 3)."""
    colour = np.array(COLOURS[name], dtype=np.uint8) + index
    return np.broadcast_to(colour, (*size, 3)).copy()


def _write_class_folder(root, counts=None, size=(8, 10), extension="png"):
    """Writes root/<class>/<i>.<extension>; returns the (paths, class name per path)."""
    counts = counts or {"cat": 3, "dog": 4}
    paths, names = [], []
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            path = root / name / f"{i:03d}.{extension}"
            Image.fromarray(_class_image(name, i, size)).save(path)
            paths.append(str(path))
            names.append(name)
    return paths, names


def _collect(dataset):
    """Concatenates a dataset's batches into numpy (images, labels or None)."""
    images, labels = [], []
    for batch in dataset:
        if isinstance(batch, tuple):
            images.append(batch[0].numpy())
            labels.append(batch[1].numpy())
        else:
            images.append(batch.numpy())
    return np.concatenate(images), (np.concatenate(labels) if labels else None)


# Helpers are handed out as fixtures: tests/ has another conftest.py, so
# `from conftest import ...` would be ambiguous.
@pytest.fixture
def class_image():
    return _class_image


@pytest.fixture
def write_class_folder():
    return _write_class_folder


@pytest.fixture
def collect():
    return _collect

"""Shared fixtures: tiny synthetic image folders, and quiet TensorFlow."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

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

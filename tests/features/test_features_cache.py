import numpy as np
import pytest

import transferkit as tk
from transferkit.data import as_image_source
from transferkit.features import FeatureCache, source_fingerprint


def entry(rows=6, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, dim)).astype("float32"), np.arange(rows) % 2


def test_memory_entry_is_returned_as_is():
    cache = FeatureCache()
    features, labels = entry()
    key = cache.make_key("a", 1)
    assert cache.get(key) is None
    stored = cache.put(key, features, labels)
    assert stored[0] is features and cache.get(key)[0] is features
    assert cache.memory_bytes == features.nbytes + labels.nbytes
    assert (cache.hits, cache.misses) == (1, 1)


def test_over_budget_entries_go_to_disk_memory_mapped(tmp_path):
    cache = FeatureCache(tmp_path, max_memory_bytes=0)
    features, labels = entry()
    key = cache.make_key("b")
    stored_features, stored_labels = cache.put(key, features, labels)
    assert isinstance(stored_features, np.memmap)
    np.testing.assert_array_equal(stored_features, features)
    np.testing.assert_array_equal(stored_labels, labels)
    assert cache.memory_bytes == 0
    assert sorted(p.name for p in (tmp_path / key).iterdir()) == [
        "features.npy",
        "labels.npy",
        "manifest.json",
    ]


def test_persisted_entries_are_found_by_another_cache(tmp_path):
    features, labels = entry()
    key = FeatureCache.make_key("c")
    FeatureCache(tmp_path, persist=True).put(key, features, labels)
    found = FeatureCache(tmp_path).get(key)
    np.testing.assert_array_equal(found[0], features)


@pytest.mark.parametrize("damage", ["truncate", "flip_bytes", "manifest", "missing_labels"])
def test_a_corrupt_disk_entry_is_detected_removed_and_never_used(tmp_path, damage):
    cache = FeatureCache(tmp_path, max_memory_bytes=0)
    features, labels = entry(rows=64)
    key = cache.make_key("d")
    cache.put(key, features, labels)
    folder = tmp_path / key
    data = folder / "features.npy"
    if damage == "truncate":
        data.write_bytes(data.read_bytes()[:-40])
    elif damage == "flip_bytes":
        raw = bytearray(data.read_bytes())
        raw[-10] ^= 0xFF
        data.write_bytes(bytes(raw))
    elif damage == "manifest":
        (folder / "manifest.json").write_text("{not json")
    else:
        (folder / "labels.npy").unlink()
    assert FeatureCache(tmp_path, max_memory_bytes=0).get(key) is None
    assert not folder.exists()


def test_a_changed_file_changes_the_fingerprint(image_folder):
    root = image_folder(per_class=3)
    before = source_fingerprint(as_image_source(root))
    victim = root / "cat" / "cat_0.png"
    victim.write_bytes(victim.read_bytes() + b"\0")  # same image, new size and mtime
    assert source_fingerprint(as_image_source(root)) != before


def test_finetuners_share_a_disk_cache(image_folder, tmp_path, capfd):
    import keras

    root = image_folder()
    cache = FeatureCache(tmp_path / "features", max_memory_bytes=0)

    def run():
        keras.utils.set_random_seed(0)
        backbone = keras.applications.MobileNet(
            include_top=False, weights=None, input_shape=(32, 32, 3)
        )
        ft = tk.FineTuner(backbone, weights=None, schedule="freeze", cache_features=cache, seed=0)
        return ft.fit(root, epochs=2, batch_size=8, verbose=0)

    first = run()
    assert capfd.readouterr().err.count("computed") == 2  # training and validation features
    second = run()
    err = capfd.readouterr().err
    assert err.count("computed") == 0 and err.count("reusing cached features") == 2
    np.testing.assert_allclose(first["loss"], second["loss"], rtol=1e-5)


def test_bad_budget():
    with pytest.raises(ValueError, match="max_memory_bytes=-1"):
        FeatureCache(max_memory_bytes=-1)

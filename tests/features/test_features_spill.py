"""Features larger than the cache's memory budget are written to disk as they are computed."""

import keras
import numpy as np
import pytest

import transferkit as tk
from transferkit.data import as_image_source
from transferkit.features import FeatureCache
from transferkit.heads import ClassificationHead
from transferkit.training.phases import DiskFeatures, cached_features


def tiny_finetuner(cache, **kwargs):
    keras.utils.set_random_seed(1234)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv")(x)
    backbone = keras.Model(inputs, x, name="tiny")
    head = ClassificationHead(dropout=0.0)
    return tk.FineTuner(backbone, weights=None, head=head, cache_features=cache, seed=1, **kwargs)


def two_views(model, source, cache, batch_size):
    """`cached_features` of the plain and a flipped view of each image."""
    # A fresh augmentation layer each time, as each phase gets: the same flips.
    flip = keras.layers.RandomFlip(seed=3)
    return cached_features(
        model, source, cache=cache, batch_size=batch_size, seed=3, views=2, augmentation=flip
    )


def test_spilled_features_equal_in_memory_ones(image_folder, tmp_path):
    source = as_image_source(image_folder())
    model = tiny_finetuner(False).build(["cat", "dog"])

    def extract(cache):
        return two_views(model, source, cache, batch_size=5)

    in_memory, labels = extract(FeatureCache())
    spilled, spilled_labels = extract(FeatureCache(tmp_path, max_memory_bytes=0))
    assert isinstance(spilled, np.memmap) and not isinstance(in_memory, np.memmap)
    assert spilled.dtype == np.float32 and spilled.shape == (48, 8)
    np.testing.assert_array_equal(np.asarray(spilled), in_memory)
    np.testing.assert_array_equal(spilled_labels, labels)
    # A second cache on the folder finds the entry, checked.
    again, _ = extract(FeatureCache(tmp_path, max_memory_bytes=0))
    np.testing.assert_array_equal(np.asarray(again), in_memory)


def test_a_frozen_phase_trains_on_spilled_features_batch_by_batch(image_folder, tmp_path):
    cache = FeatureCache(tmp_path / "features", max_memory_bytes=0)
    ft = tiny_finetuner(cache, schedule=tk.Freeze(learning_rate=0.1))
    history = ft.fit(image_folder(), epochs=3, batch_size=8, verbose=0)
    assert np.isfinite(history["loss"]).all() and history["val_loss"].notna().all()
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    # Training and validation features, both on disk.
    assert cache.memory_bytes == 0 and len(list((tmp_path / "features").iterdir())) == 2


def test_disk_features_read_every_row_once_per_epoch(tmp_path):
    cache = FeatureCache(tmp_path, max_memory_bytes=0)
    features = np.arange(30, dtype="float32").reshape(10, 3)
    stored, labels = cache.put_batches("k", (10, 3), [features[:4], features[4:]], np.arange(10))
    batches = DiskFeatures(stored, labels, batch_size=4, shuffle=True, seed=0)
    assert len(batches) == 3
    rows = np.concatenate([batches[i][0] for i in range(3)])
    seen = np.concatenate([batches[i][1] for i in range(3)])
    np.testing.assert_array_equal(rows, features[seen])
    assert sorted(seen) == list(range(10))


def test_batches_that_do_not_add_up_are_refused(tmp_path):
    cache = FeatureCache(tmp_path, max_memory_bytes=0)
    with pytest.raises(ValueError, match="9 feature rows written, 10 expected"):
        cache.put_batches("k", (10, 3), [np.zeros((9, 3), "float32")], None)
    assert not (tmp_path / "k").exists()


def test_spilled_multi_hot_labels_repeat_whole_rows_per_view(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (6, 16, 16, 3)).astype("float32")
    multi_hot = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0], [1, 0, 0]])
    source = as_image_source(images, multi_hot, class_names=["a", "b", "c"], multi_label=True)
    model = tiny_finetuner(False).build(["a", "b", "c"], multi_label=True)
    _, labels = two_views(model, source, FeatureCache(), batch_size=4)
    _, spilled_labels = two_views(
        model, source, FeatureCache(tmp_path, max_memory_bytes=0), batch_size=4
    )
    expected = np.concatenate([source.labels, source.labels])
    assert np.asarray(spilled_labels).shape == (12, 3)
    np.testing.assert_array_equal(spilled_labels, expected)
    np.testing.assert_array_equal(labels, expected)


def test_under_a_strategy_spilled_features_are_read_batch_by_batch_too(
    image_folder, tmp_path, monkeypatch
):
    import tensorflow as tf

    reads = []
    read = DiskFeatures.__getitem__

    def counted(self, index):
        reads.append(index)
        return read(self, index)

    monkeypatch.setattr(DiskFeatures, "__getitem__", counted)
    root = image_folder()

    def run(cache):
        ft = tiny_finetuner(
            cache,
            schedule=tk.Freeze(learning_rate=0.1),
            distribute=tf.distribute.MirroredStrategy(["/cpu:0"]),
        )
        return ft, ft.fit(root, epochs=3, batch_size=8, shuffle=False, verbose=0)

    in_memory, expected = run(FeatureCache())
    assert not reads
    spilled, history = run(FeatureCache(tmp_path, max_memory_bytes=0))
    # Every epoch read its batches from disk: 40 training vectors (two views of 20 images)
    # in 5 batches, and 4 validation vectors in 1.
    assert len(reads) == 3 * (5 + 1)
    columns = ["loss", "accuracy", "val_loss", "val_accuracy"]
    np.testing.assert_allclose(history[columns], expected[columns], rtol=1e-5, atol=1e-6)
    for got, want in zip(spilled.model.get_weights(), in_memory.model.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)

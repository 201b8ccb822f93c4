import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from transferkit.data import as_image_source, make_dataset


@pytest.fixture
def files(tmp_path, write_class_folder):
    write_class_folder(tmp_path / "train", {"cat": 6, "dog": 5}, size=(12, 9))
    # Files of another size too: each is resized on its own before batching.
    Image.fromarray(np.full((30, 17, 3), (20, 60, 210), np.uint8)).save(
        tmp_path / "train" / "dog" / "zzz_big.png"
    )
    return as_image_source(tmp_path / "train")


def test_shapes_dtypes_and_value_range(files, collect):
    dataset = make_dataset(files, (5, 7), batch_size=4)
    assert dataset.element_spec[0].shape.as_list() == [None, 5, 7, 3]
    assert dataset.element_spec[0].dtype == tf.float32
    assert dataset.element_spec[1].dtype == tf.int64
    batches = list(dataset)
    assert [len(images) for images, _ in batches] == [4, 4, 4]
    images, labels = collect(dataset)
    assert images.min() >= 0 and images.max() <= 255 and images.max() > 200  # not rescaled
    assert labels.tolist() == [0] * 6 + [1] * 6


def test_order_follows_the_identifiers_without_shuffle(files, collect, class_image):
    images, labels = collect(make_dataset(files, (12, 9), batch_size=5))
    for image, label, path in zip(images, labels, files.identifiers, strict=True):
        name = path.split("/")[-2]
        assert files.class_names[label] == name
        if "zzz" not in path:
            index = int(path.split("/")[-1][:3])
            np.testing.assert_array_equal(image, class_image(name, index, (12, 9)))
    again, _ = collect(make_dataset(files, (12, 9), batch_size=5))
    np.testing.assert_array_equal(images, again)


def test_shuffle_is_repeatable_with_a_seed_and_reshuffles_each_epoch(files, collect):
    plain, _ = collect(make_dataset(files, (4, 4), batch_size=3))
    first = make_dataset(files, (4, 4), batch_size=3, shuffle=True, seed=3)
    epoch_1, labels_1 = collect(first)
    epoch_2, _ = collect(first)
    rebuilt, labels_rebuilt = collect(
        make_dataset(files, (4, 4), batch_size=3, shuffle=True, seed=3)
    )
    np.testing.assert_array_equal(epoch_1, rebuilt)
    np.testing.assert_array_equal(labels_1, labels_rebuilt)
    assert not np.array_equal(epoch_1, plain)
    assert not np.array_equal(epoch_1, epoch_2)
    # A shuffle keeps each image with its own label: cat pixels are red, dog pixels blue.
    assert ((epoch_1[:, 0, 0, 0] > epoch_1[:, 0, 0, 2]) == (labels_1 == 0)).all()


def test_one_hot_labels(files):
    images, labels = next(iter(make_dataset(files, (4, 4), batch_size=12, one_hot=3)))
    assert labels.dtype == tf.float32 and labels.shape == (12, 3)
    np.testing.assert_array_equal(labels.numpy().argmax(axis=1), [0] * 6 + [1] * 6)
    assert labels.numpy()[:, 2].sum() == 0
    with pytest.raises(ValueError, match=r"at least the 2 in class_names.*one_hot=1"):
        make_dataset(files, (4, 4), one_hot=1)


def test_images_only_when_asked_or_unlabeled(files, tmp_path):
    only_images = make_dataset(files, (4, 4), include_labels=False)
    assert isinstance(only_images.element_spec, tf.TensorSpec)
    unlabeled = as_image_source(files.paths, require_labels=False)
    assert isinstance(make_dataset(unlabeled, (4, 4)).element_spec, tf.TensorSpec)


class TrainingFlag(keras.layers.Layer):
    """Replaces every pixel by 1 when called in training mode, by 2 otherwise."""

    def call(self, images, training=None):
        return tf.zeros_like(images) + (1.0 if training else 2.0)


def test_augmentation_is_applied_per_batch_in_training_mode(files):
    images, labels = next(iter(make_dataset(files, (4, 4), augmentation=TrainingFlag())))
    assert set(np.unique(images.numpy())) == {1.0}
    assert labels.shape == (12,)
    random_flip = keras.layers.RandomFlip("horizontal", seed=0)
    images = next(
        iter(make_dataset(files, (4, 4), augmentation=random_flip, include_labels=False))
    )
    assert images.shape == (12, 4, 4, 3)


def test_arrays_are_resized_and_shuffled_with_their_labels(collect):
    images = np.stack([np.full((6, 6, 3), i, np.uint8) for i in range(10)])
    source = as_image_source(images, np.arange(10) % 2)
    out, labels = collect(make_dataset(source, (3, 5), batch_size=4))
    assert out.shape == (10, 3, 5, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0, 0, 0], np.arange(10))
    shuffled, shuffled_labels = collect(
        make_dataset(source, (3, 5), batch_size=4, shuffle=True, seed=0)
    )
    assert sorted(shuffled[:, 0, 0, 0]) == list(range(10))
    np.testing.assert_array_equal(shuffled[:, 0, 0, 0] % 2, shuffled_labels)


def test_unbatched_user_dataset_is_batched_and_resized(collect):
    images = np.random.default_rng(0).integers(0, 256, (7, 6, 6, 1), dtype=np.uint8)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.eye(3)[[0, 1, 2, 0, 1, 2, 0]]))
    source = as_image_source(dataset, class_names=["a", "b", "c"])
    batches = list(make_dataset(source, (3, 3), batch_size=4))
    assert [len(x) for x, _ in batches] == [4, 3]
    out, labels = collect(make_dataset(source, (3, 3), batch_size=4))
    assert out.shape == (7, 3, 3, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[..., 0], out[..., 2])  # grayscale made RGB
    assert labels.tolist() == [0, 1, 2, 0, 1, 2, 0]  # one-hot rows read as indices


def test_unbatched_images_of_different_sizes(tmp_path, collect):
    paths = []
    for i, size in enumerate([(5, 5), (9, 4)]):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.full((*size, 3), 100, np.uint8)).save(paths[-1])

    def load(path):
        return tf.io.decode_png(tf.io.read_file(path), channels=3)

    dataset = tf.data.Dataset.from_tensor_slices(paths).map(load)
    images, _ = collect(make_dataset(as_image_source(dataset, require_labels=False), (4, 4)))
    assert images.shape == (2, 4, 4, 3) and (images == 100).all()


def test_batched_user_dataset_keeps_its_batches(tmp_path, write_class_folder, collect):
    write_class_folder(tmp_path, {"cat": 3, "dog": 2})
    directory = keras.utils.image_dataset_from_directory(
        tmp_path,
        image_size=(8, 10),
        batch_size=2,
        shuffle=False,
        verbose=False,
        label_mode="binary",
    )
    source = as_image_source(directory)
    batches = list(make_dataset(source, (4, 5), batch_size=32, one_hot=2))
    assert [len(x) for x, _ in batches] == [2, 2, 1]
    assert batches[0][0].shape == (2, 4, 5, 3)
    labels = np.concatenate([y.numpy().argmax(axis=1) for _, y in batches])
    assert labels.tolist() == [0, 0, 0, 1, 1]


def test_bad_arguments(files):
    with pytest.raises(ValueError, match=r"image_size=224"):
        make_dataset(files, 224)
    with pytest.raises(ValueError, match=r"image_size=\(224, 0\)"):
        make_dataset(files, (224, 0))
    with pytest.raises(ValueError, match="batch_size=0"):
        make_dataset(files, (4, 4), batch_size=0)

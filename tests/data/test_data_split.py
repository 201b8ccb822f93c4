import numpy as np
import pytest
import tensorflow as tf

from transferkit.data import as_image_source, stratified_split


def labeled_arrays(counts):
    labels = np.repeat(np.arange(len(counts)), counts)
    # Each image holds its own index, so the split parts can be traced back.
    images = np.broadcast_to(np.arange(len(labels))[:, None, None, None], (len(labels), 2, 2, 3))
    return as_image_source(
        images.copy(), labels, class_names=[f"c{i}" for i in range(len(counts))]
    )


def indices_of(source):
    return source.images[:, 0, 0, 0].tolist()


def test_each_class_is_split_in_proportion():
    source = labeled_arrays([10, 20, 50])
    train, validation = stratified_split(source, 0.2, seed=0)
    assert np.bincount(validation.labels).tolist() == [2, 4, 10]
    assert np.bincount(train.labels).tolist() == [8, 16, 40]
    assert sorted(indices_of(train) + indices_of(validation)) == list(range(80))
    assert train.class_names == validation.class_names == ["c0", "c1", "c2"]


def test_parts_keep_the_source_order():
    train, validation = stratified_split(labeled_arrays([10, 10]), 0.3, seed=1)
    assert indices_of(train) == sorted(indices_of(train))
    assert indices_of(validation) == sorted(indices_of(validation))


def test_same_seed_same_split_other_seed_other_split():
    source = labeled_arrays([30, 30])
    first = stratified_split(source, 0.5, seed=7)
    again = stratified_split(source, 0.5, seed=7)
    other = stratified_split(source, 0.5, seed=8)
    assert indices_of(first[1]) == indices_of(again[1])
    assert indices_of(first[1]) != indices_of(other[1])


def test_every_class_with_two_images_has_one_in_each_part():
    source = labeled_arrays([2, 3, 40])
    for fraction in (0.01, 0.99):
        train, validation = stratified_split(source, fraction, seed=0)
        assert (np.bincount(train.labels) >= 1).all()
        assert (np.bincount(validation.labels, minlength=3) >= 1).all()


def test_a_class_with_one_image_stays_in_training(capsys):
    train, validation = stratified_split(labeled_arrays([1, 10]), 0.2, seed=0)
    assert np.bincount(train.labels).tolist() == [1, 8]
    assert validation.labels.tolist() == [1, 1]
    assert "['c0'] have a single image" in capsys.readouterr().err


def test_every_class_with_one_image_is_an_error():
    with pytest.raises(ValueError, match="every class has a single image"):
        stratified_split(labeled_arrays([1, 1]), 0.5)


def test_file_sources_split_paths_and_keep_skipped(tmp_path, write_class_folder):
    write_class_folder(tmp_path, {"cat": 5, "dog": 5})
    (tmp_path / "cat" / "broken.png").write_text("no")
    source = as_image_source(tmp_path)
    train, validation = stratified_split(source, 0.4, seed=0)
    assert len(train) == 6 and len(validation) == 4
    assert sorted(train.paths + validation.paths) == sorted(source.paths)
    assert len(train.skipped) == len(validation.skipped) == 1


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, "0.2", True, None])
def test_validation_split_must_be_a_fraction(fraction):
    with pytest.raises(ValueError, match=f"validation_split={fraction!r}"):
        stratified_split(labeled_arrays([5, 5]), fraction)


def test_datasets_and_unlabeled_sources_cannot_be_split():
    dataset = tf.data.Dataset.from_tensor_slices((np.zeros((4, 2, 2, 3)), [0, 1, 0, 1]))
    with pytest.raises(ValueError, match="validation_data="):
        stratified_split(as_image_source(dataset))
    unlabeled = as_image_source(np.zeros((4, 2, 2, 3)), require_labels=False)
    with pytest.raises(ValueError, match="unlabeled"):
        stratified_split(unlabeled)

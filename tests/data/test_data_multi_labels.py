"""Multi-label data in every form: lists, delimited text, 0/1 columns, arrays, datasets."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from transferkit.data import as_image_source, make_dataset, stratified_split
from transferkit.data.multi_labels import encode_multi_labels, looks_multi_label

NAMES = ["cat", "dog", "bird"]


def write_images(root, count, size=(8, 8)):
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = root / f"{i:03d}.png"
        Image.fromarray(np.full((*size, 3), i * 7 % 255, dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_lists_become_multi_hot_rows_and_an_empty_list_is_a_negative(capfd):
    rows, names = encode_multi_labels([["dog", "cat"], [], ["bird"]])
    err = capfd.readouterr().err
    assert names == ["bird", "cat", "dog"]
    np.testing.assert_array_equal(rows, [[0, 1, 1], [0, 0, 0], [1, 0, 0]])
    assert rows.dtype == np.float32
    assert "1 of 3 images have no label" in err and "negative examples" in err


def test_delimited_text_splits_and_an_empty_cell_has_no_class():
    labels = pd.Series(["cat|dog", "dog", None, " bird | cat "])
    rows, names = encode_multi_labels(labels, delimiter="|")
    assert names == ["bird", "cat", "dog"]
    np.testing.assert_array_equal(rows, [[0, 1, 1], [0, 0, 1], [0, 0, 0], [1, 1, 0]])


def test_a_delimiter_that_splits_nothing_is_an_error():
    with pytest.raises(ValueError, match=r"delimiter ';' splits none of the 2 labels"):
        encode_multi_labels(["cat|dog", "dog"], delimiter=";")


def test_multi_hot_values_other_than_0_and_1_are_an_error():
    with pytest.raises(ValueError, match=r"must be 0 or 1\. Received 2 for image #1, class '0'"):
        encode_multi_labels(np.array([[1, 0], [2, 1]]))
    with pytest.raises(ValueError, match=r"Received 0.5"):
        encode_multi_labels(pd.DataFrame({"cat": [1, 0.5], "dog": [0, 1]}))


def test_a_label_outside_the_known_classes_says_it_cannot_be_predicted():
    with pytest.raises(ValueError, match=r"label 'fox' \(1 images.*not trained on"):
        encode_multi_labels([["cat"], ["fox"]], class_names=["cat", "dog"])


def test_what_looks_multi_label():
    assert looks_multi_label([["cat"], ["dog"]])
    assert looks_multi_label(np.array([[1, 1], [0, 1]]))
    assert not looks_multi_label(np.eye(3))  # one-hot: single-label
    assert not looks_multi_label(["cat", "dog"])
    assert looks_multi_label(["cat"], delimiter="|")


def test_a_dataframe_of_label_lists_is_detected(tmp_path):
    paths = write_images(tmp_path / "images", 3)
    frame = pd.DataFrame({"path": paths, "label": [["cat", "dog"], ["dog"], []]})
    source = as_image_source(frame)
    assert source.multi_label and source.class_names == ["cat", "dog"]
    np.testing.assert_array_equal(source.labels, [[1, 1], [0, 1], [0, 0]])


def test_one_0_1_column_per_class(tmp_path):
    paths = write_images(tmp_path / "images", 3)
    frame = pd.DataFrame({"path": paths, "cat": [1, 0, 1], "dog": [1, 1, 0], "other": 5})
    source = as_image_source(frame, label_column=["cat", "dog"])
    assert source.multi_label and source.class_names == ["cat", "dog"]
    np.testing.assert_array_equal(source.labels, [[1, 1], [0, 1], [1, 0]])
    with pytest.raises(ValueError, match=r"no column\(s\) \['fox'\]"):
        as_image_source(frame, label_column=["cat", "fox"])


def test_a_csv_of_delimited_labels_and_a_csv_of_columns(tmp_path):
    paths = write_images(tmp_path / "images", 3)
    names = [f"images/{p.rsplit('/', 1)[1]}" for p in paths]
    text = tmp_path / "labels.csv"
    pd.DataFrame({"path": names, "label": ["cat|dog", "", "dog"]}).to_csv(text, index=False)
    source = as_image_source(text, label_delimiter="|")
    np.testing.assert_array_equal(source.labels, [[1, 1], [0, 0], [0, 1]])
    columns = tmp_path / "columns.csv"
    pd.DataFrame({"path": names, "cat": [1, 0, 0], "dog": [1, 0, 1]}).to_csv(columns, index=False)
    source = as_image_source(columns, label_column=["cat", "dog"])
    np.testing.assert_array_equal(source.labels, [[1, 1], [0, 0], [0, 1]])


def test_arrays_of_multi_hot_rows_and_explicit_multi_label_for_single_labels():
    images = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    source = as_image_source(images, np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0], [1, 0, 1]]))
    assert source.multi_label and source.class_names == ["0", "1", "2"]
    single = as_image_source(images, ["cat", "dog", "cat", "dog"], multi_label=True)
    assert single.multi_label
    np.testing.assert_array_equal(single.labels, [[1, 0], [0, 1], [1, 0], [0, 1]])
    assert not as_image_source(images, np.eye(4)[:, :3][[0, 1, 2, 0]]).multi_label


def test_multi_label_false_with_multi_label_data_is_an_error():
    images = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"multi_label=False, but the labels are multi-label"):
        as_image_source(images, [["cat", "dog"], ["dog"]], multi_label=False)


def test_a_dataset_of_multi_hot_rows_is_detected_and_passes_its_rows_through():
    images = np.zeros((4, 8, 8, 3), dtype=np.float32)
    rows = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0], [1, 0, 1]], dtype=np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, rows)).batch(2)
    source = as_image_source(dataset)
    assert source.multi_label and source.class_names == ["0", "1", "2"]
    labels = np.concatenate([y for _, y in make_dataset(source, (8, 8))])
    np.testing.assert_array_equal(labels, rows)
    bad = tf.data.Dataset.from_tensor_slices((images, rows * 3)).batch(2)
    with pytest.raises(ValueError, match=r"of 0 and 1\. Received the value 3"):
        as_image_source(bad)


def test_make_dataset_yields_float_rows_for_multi_label_files(tmp_path):
    paths = write_images(tmp_path / "images", 3)
    source = as_image_source(paths, [["cat", "dog"], ["dog"], []])
    batches = list(make_dataset(source, (8, 8), batch_size=3))
    assert batches[0][1].dtype == tf.float32
    np.testing.assert_array_equal(batches[0][1], [[1, 1], [0, 1], [0, 0]])


def test_the_split_keeps_a_rare_class_in_both_parts_and_says_when_it_cannot(capfd):
    rng = np.random.default_rng(0)
    rows = (rng.random((60, 3)) < 0.5).astype(int)
    rows[:, 2] = 0
    rows[[5, 17, 40], 2] = 1  # a rare class: 3 images
    rows[:, 0] = 0
    rows[7, 0] = 1  # a class with a single image
    images = rng.integers(0, 255, (60, 8, 8, 3), dtype=np.uint8)
    source = as_image_source(images, rows)
    train, validation = stratified_split(source, 0.2, seed=0)
    assert len(train) + len(validation) == 60
    assert train.labels[:, 2].sum() >= 1 and validation.labels[:, 2].sum() >= 1
    err = capfd.readouterr().err
    assert "['0'] cannot be in both the training and the validation part" in err
    assert 8 <= len(validation) <= 16

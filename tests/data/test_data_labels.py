import numpy as np
import pandas as pd
import pytest

from transferkit.data import as_image_source

IMAGES = np.full((2, 2, 2, 3), 128, np.uint8)

# === Numbers as labels keep their numeric meaning ===


def test_numeric_label_names_sort_as_numbers(tmp_path, write_class_folder):
    # A CSV read as text (as the command line reads it) gives labels "0".."10".
    paths, _ = write_class_folder(tmp_path, {"cat": 11})
    frame = pd.DataFrame({"path": paths, "label": [str(k) for k in range(11)]})
    source = as_image_source(frame)
    assert source.class_names == [str(k) for k in range(11)]
    assert source.labels.tolist() == list(range(11))


def test_integer_labels_match_numeric_class_names_by_value(tmp_path, write_class_folder):
    paths, _ = write_class_folder(tmp_path, {"cat": 3})
    # A model trained on text labels "1", "10", "2" (in any order) is evaluated with
    # the same CSV read by pandas, so the labels are int64.
    frame = pd.DataFrame({"path": paths, "label": np.array([2, 10, 1], dtype=np.int64)})
    source = as_image_source(frame, class_names=["1", "10", "2"])
    assert [source.class_names[i] for i in source.labels] == ["2", "10", "1"]


def test_integer_label_missing_from_numeric_class_names_is_refused():
    with pytest.raises(ValueError, match=r"label 4 .* not one of the classes .*\['3', '5'\]"):
        as_image_source(IMAGES, [3, 4], class_names=["3", "5"])


def test_integer_labels_that_can_not_be_matched_by_value_alone_are_refused():
    with pytest.raises(ValueError, match=r"\['1', 'cat'\].*Pass the labels as class names"):
        as_image_source(IMAGES, [0, 1], class_names=["1", "cat"])
    with pytest.raises(ValueError, match=r"\['7', '07'\].*Pass the labels as class names"):
        as_image_source(IMAGES, [7, 7], class_names=["7", "07"])


# === One spelling per class name ===

COMPOSED = "chat_\u00e9t\u00e9"  # "chat_été" as most systems write it (NFC)
DECOMPOSED = "chat_e\u0301te\u0301"  # the same name as macOS writes file names (NFD)


def test_a_decomposed_folder_name_matches_the_composed_class_name(tmp_path, write_class_folder):
    write_class_folder(tmp_path, {"cat": 2, "dog": 2})
    (tmp_path / "cat").rename(tmp_path / DECOMPOSED)
    source = as_image_source(tmp_path, class_names=[COMPOSED, "dog"])
    assert source.class_names == [COMPOSED, "dog"]
    assert source.labels.tolist() == [0, 0, 1, 1]
    assert as_image_source(tmp_path).class_names == [COMPOSED, "dog"]


def test_labels_differing_only_by_unicode_normalization_are_one_class():
    source = as_image_source(IMAGES, [COMPOSED, DECOMPOSED])
    assert source.class_names == [COMPOSED] and source.labels.tolist() == [0, 0]
    source = as_image_source(IMAGES, [COMPOSED, "dog"], class_names=[DECOMPOSED, "dog"])
    assert source.class_names == [COMPOSED, "dog"] and source.labels.tolist() == [0, 1]


def test_spaces_around_labels_are_stripped_and_said(capsys):
    source = as_image_source(np.full((3, 2, 2, 3), 128, np.uint8), ["cat", "cat ", " dog"])
    assert source.class_names == ["cat", "dog"] and source.labels.tolist() == [0, 0, 1]
    assert "Removed spaces around 2 labels, e.g. 'cat '" in capsys.readouterr().err


def test_a_blank_label_is_refused():
    with pytest.raises(ValueError, match=r"blank label '  ' .*image #1"):
        as_image_source(IMAGES, ["cat", "  "])

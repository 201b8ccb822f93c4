import pandas as pd
import pytest

from transferkit.data import as_image_source


def write_csv(tmp_path, write_class_folder, separator=","):
    paths, names = write_class_folder(tmp_path / "data", {"cat": 2, "dog": 2})
    relative = [path.split(str(tmp_path / "data") + "/")[1] for path in paths]
    lines = [f"path{separator}label"] + [
        f"{path}{separator}{name}" for path, name in zip(relative, names, strict=True)
    ]
    csv = tmp_path / "data" / "labels.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv, paths


def test_a_csv_file_is_read_with_paths_relative_to_its_folder(
    tmp_path, write_class_folder, monkeypatch
):
    csv, paths = write_csv(tmp_path, write_class_folder)
    monkeypatch.chdir(tmp_path)  # not the CSV's folder
    for data in (csv, "data/labels.csv"):
        source = as_image_source(data)
        assert source.paths == paths
        assert source.class_names == ["cat", "dog"] and source.labels.tolist() == [0, 0, 1, 1]
    unlabeled = as_image_source(csv, require_labels=False, label_column=None)
    assert unlabeled.labels is None and unlabeled.paths == paths
    with pytest.raises(ValueError, match="labels= can't be combined with a CSV file"):
        as_image_source(csv, ["cat"] * 4)


def test_csv_labels_are_names_even_when_they_are_numbers(tmp_path, write_class_folder):
    csv, paths = write_csv(tmp_path, write_class_folder)
    frame = pd.read_csv(csv)
    frame["label"] = ["7", "07", "10", "2"]
    frame.to_csv(csv, index=False)
    source = as_image_source(csv)
    assert source.class_names == ["2", "07", "7", "10"]


def test_a_semicolon_separated_csv_is_named_as_such(tmp_path, write_class_folder):
    csv, _ = write_csv(tmp_path, write_class_folder, separator=";")
    with pytest.raises(
        ValueError, match=rf"The CSV {csv} has no column 'path'.*separated by ';'.*sep=';'"
    ):
        as_image_source(csv)
    # The same file read by pandas with its default separator, passed as a DataFrame.
    with pytest.raises(ValueError, match=r"no column 'path'.*separated by ';'"):
        as_image_source(pd.read_csv(csv))

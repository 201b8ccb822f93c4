import shutil

import numpy as np
import pandas as pd
import pytest

from transferkit.data import as_image_source, stratified_split


@pytest.fixture
def files(tmp_path, write_class_folder):
    paths, names = write_class_folder(tmp_path / "images", {"cat": 6, "dog": 6})
    return paths, names


def test_a_split_keeps_every_copy_of_a_listed_file_on_one_side(files):
    paths, names = files
    # Each file listed twice: 24 rows, 12 files.
    frame = pd.DataFrame({"path": paths * 2, "label": names * 2})
    source = as_image_source(frame)
    assert len(source) == 24  # kept as listed
    for seed in range(5):
        train, validation = stratified_split(source, 0.25, seed=seed)
        assert not set(train.identifiers) & set(validation.identifiers), seed
        assert set(validation.labels.tolist()) == {0, 1}
        assert len(train) + len(validation) == 24


def test_a_split_keeps_files_with_the_same_content_on_one_side(tmp_path, files):
    paths, _ = files
    for path in paths:
        shutil.copy(path, path.replace(".png", "_copy.png"))
    source = as_image_source(tmp_path / "images")
    assert len(source) == 24
    for seed in range(5):
        train, validation = stratified_split(source, 0.25, seed=seed)
        originals = {path.replace("_copy", "") for path in validation.identifiers}
        assert not originals & {path.replace("_copy", "") for path in train.identifiers}
        assert len(validation) == 8  # 2 of 6 distinct images per class, each with its copy


def test_a_split_without_copies_is_the_split_it_always_was(files):
    # Same seed, same split as before copies were looked for: resumed runs keep their split.
    paths, names = files
    source = as_image_source(paths, names)
    train, validation = stratified_split(source, 0.25, seed=3)
    rng = np.random.default_rng(3)
    expected = [rng.choice(np.arange(6) + offset, size=2, replace=False) for offset in (0, 6)]
    assert sorted(validation.identifiers) == sorted(paths[i] for i in np.concatenate(expected))


def test_repeated_files_and_copies_are_reported(tmp_path, files, capsys):
    paths, names = files
    shutil.copy(paths[0], tmp_path / "images" / "dog" / "copy_of_cat.png")
    frame = pd.DataFrame(
        {
            "path": [
                *paths,
                paths[1],
                paths[1],
                paths[7],
                str(tmp_path / "images/dog/copy_of_cat.png"),
            ],
            "label": [*names, "cat", "cat", "dog", "dog"],
        }
    )
    source = as_image_source(frame)
    assert len(source) == 16
    err = capsys.readouterr().err
    assert f"2 files are listed more than once (3 extra rows), e.g. {paths[1]} (3 times)" in err
    assert f"1 file has the same content as another, e.g. {paths[0]} (cat) and " in err
    assert "copy_of_cat.png (dog)" in err


def test_a_file_listed_with_two_labels_is_refused(files):
    paths, names = files
    frame = pd.DataFrame({"path": [*paths, paths[0]], "label": [*names, "dog"]})
    with pytest.raises(
        ValueError, match=rf"{paths[0]} is listed 2 times with different labels \['cat', 'dog'\]"
    ):
        as_image_source(frame)


def test_overlap_between_training_and_validation_is_said(tmp_path, files, capsys):
    from transferkit.data.duplicates import warn_if_overlapping

    paths, names = files
    train = as_image_source(paths[:4] + paths[6:10], names[:4] + names[6:10])
    held_out = as_image_source(paths[4:6] + paths[10:], names[4:6] + names[10:])
    assert warn_if_overlapping(train, held_out) == 0
    assert "also in the training data" not in capsys.readouterr().err

    shutil.copy(paths[0], tmp_path / "copy.png")
    validation = as_image_source(
        [*held_out.identifiers, paths[1], tmp_path / "copy.png"],
        [*names[4:6], *names[10:], "cat", "cat"],
    )
    assert warn_if_overlapping(train, validation) == 2
    err = capsys.readouterr().err
    assert "2 of 6 validation images are also in the training data (the same file or a " in err
    assert f"copy), e.g. {paths[1]}: " in err
    assert f"{tmp_path / 'copy.png'}" not in err  # one example is enough

    images = np.stack([np.full((4, 4, 3), value, np.uint8) for value in range(40, 46)])
    arrays = as_image_source(images, [0, 1] * 3)
    assert warn_if_overlapping(arrays, as_image_source(images[:2], [0, 1])) == 2
    assert warn_if_overlapping(arrays, as_image_source(images[:2] + 100, [0, 1])) == 0


def test_overlap_is_found_whichever_side_has_files_of_the_same_size(tmp_path):
    """A file is hashed only where another file has its size: both sides must agree."""
    from PIL import Image

    from transferkit.data.duplicates import warn_if_overlapping

    def write(name, value, size):
        path = tmp_path / name
        Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
        return str(path)

    a, b = write("a.png", 10, 8), write("b.png", 20, 8)  # the same size: hashed in training
    c = write("c.png", 30, 12)
    shutil.copy(c, tmp_path / "c_copy.png")
    train = as_image_source([a, b, c], ["cat", "dog", "cat"])
    # Alone, the validation side would hash its two files only if they shared a size.
    validation = as_image_source([a, str(tmp_path / "c_copy.png")], ["cat", "cat"])
    assert warn_if_overlapping(train, validation) == 2

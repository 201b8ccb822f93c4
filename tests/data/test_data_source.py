import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from transferkit.data import ImageSource, as_image_source, make_dataset

SIZE = (8, 10)


@pytest.fixture
def folder(tmp_path, write_class_folder):
    paths, names = write_class_folder(tmp_path / "train", {"cat": 3, "dog": 4}, size=SIZE)
    return tmp_path / "train", paths, names


@pytest.fixture
def arrays(folder):
    _, paths, names = folder
    return np.stack([np.asarray(Image.open(path)) for path in paths]), names


# === Every input form gives the same images and labels ===


def all_forms(folder, arrays):
    root, paths, names = folder
    images, _ = arrays
    indices = np.array([0 if name == "cat" else 1 for name in names])
    dataset = tf.data.Dataset.from_tensor_slices((images, indices))
    from_directory = keras.utils.image_dataset_from_directory(
        root, image_size=SIZE, batch_size=3, shuffle=False, verbose=False
    )
    return {
        "folder": as_image_source(root),
        "folder_path_str": as_image_source(str(root)),
        "dataframe": as_image_source(pd.DataFrame({"path": paths, "label": names})),
        "paths": as_image_source(paths, names),
        "arrays": as_image_source(images, names),
        "array_int_labels": as_image_source(images, indices, class_names=["cat", "dog"]),
        "tuple": as_image_source((images, names)),
        "dataset": as_image_source(dataset, class_names=["cat", "dog"]),
        "image_dataset_from_directory": as_image_source(from_directory),
    }


def test_every_input_form_gives_the_same_images_and_labels(folder, arrays, collect, class_image):
    expected_images = np.stack(
        [class_image("cat", i, SIZE) for i in range(3)]
        + [class_image("dog", i, SIZE) for i in range(4)]
    ).astype(np.float32)
    for name, source in all_forms(folder, arrays).items():
        assert source.class_names == ["cat", "dog"], name
        images, labels = collect(make_dataset(source, SIZE, batch_size=2))
        np.testing.assert_array_equal(images, expected_images, err_msg=name)
        np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1, 1], err_msg=name)


def test_file_forms_record_paths_and_nothing_skipped(folder):
    root, paths, names = folder
    source = as_image_source(root)
    assert source.paths == paths
    assert source.identifiers == paths
    assert source.images is None and source.dataset is None
    assert source.labels.dtype == np.int64
    assert len(source) == 7
    assert list(source.skipped.columns) == ["path", "reason"] and source.skipped.empty


def test_single_image_path(folder):
    _, paths, _ = folder
    source = as_image_source(paths[0], require_labels=False)
    assert source.paths == [paths[0]] and source.labels is None
    labeled = as_image_source(paths[0], "cat", class_names=["cat", "dog"])
    assert labeled.labels.tolist() == [0]


def test_relative_dataframe_paths_resolve_against_the_current_directory(folder, monkeypatch):
    root, paths, names = folder
    monkeypatch.chdir(root)
    relative = ["cat/000.png", "dog/000.png"]
    source = as_image_source(
        pd.DataFrame({"file": relative, "kind": ["cat", "dog"]}),
        path_column="file",
        label_column="kind",
    )
    assert source.paths == [str(root / "cat/000.png"), str(root / "dog/000.png")]
    assert source.labels.tolist() == [0, 1]


def test_folder_finds_images_recursively_case_insensitively_and_ignores_other_files(tmp_path):
    pixels = np.zeros((4, 4, 3), np.uint8)
    for relative in ["cat/a.PNG", "cat/deep/er/b.JpEg", "dog/c.webp", "dog/d.bmp", "dog/e.tif"]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "cat" / "._a.PNG").write_bytes(b"macOS metadata")
    source = as_image_source(tmp_path)
    assert [p.split(str(tmp_path))[1] for p in source.identifiers] == [
        "/cat/a.PNG",
        "/cat/deep/er/b.JpEg",
        "/dog/c.webp",
        "/dog/d.bmp",
        "/dog/e.tif",
    ]
    assert source.labels.tolist() == [0, 0, 1, 1, 1] and source.skipped.empty


def test_symlinked_sub_folders_inside_a_class_folder_are_followed_once(tmp_path, capsys):
    pixels = np.zeros((4, 4, 3), np.uint8)
    for relative in ["elsewhere/x.png", "elsewhere/y.png", "root/cat/a.png", "root/dog/b.png"]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    root = tmp_path / "root"
    (root / "cat" / "more").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (root / "cat" / "again").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (root / "dog" / "loop").symlink_to(root / "dog", target_is_directory=True)
    source = as_image_source(root)
    assert [p.split(str(root))[1] for p in source.identifiers] == [
        "/cat/a.png",
        "/cat/again/x.png",
        "/cat/again/y.png",
        "/dog/b.png",
    ]
    assert source.labels.tolist() == [0, 0, 0, 1]
    err = capsys.readouterr().err
    assert f"{root / 'cat' / 'more'} (the same folder as {tmp_path / 'elsewhere'})" in err
    assert f"{root / 'dog' / 'loop'} (the same folder as {root / 'dog'})" in err


def test_grayscale_arrays_become_rgb():
    gray = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    for data in (gray, gray[..., None]):
        source = as_image_source(data, ["a", "b"])
        assert source.images.shape == (2, 4, 4, 3)
        np.testing.assert_array_equal(source.images[..., 2], gray)


def test_integer_and_one_hot_labels():
    images = np.zeros((4, 2, 2, 3), np.uint8)
    source = as_image_source(images, [0, 1, 2, 1])
    assert source.class_names == ["0", "1", "2"] and source.labels.tolist() == [0, 1, 2, 1]
    one_hot = np.eye(3)[[2, 0, 1, 1]]
    assert as_image_source(images, one_hot).labels.tolist() == [2, 0, 1, 1]


def test_integer_labels_with_gaps_become_sorted_classes(capsys):
    source = as_image_source(np.zeros((3, 2, 2, 3)), [5, 3, 5])
    assert source.class_names == ["3", "5"] and source.labels.tolist() == [1, 0, 1]
    assert "are not 0..1" in capsys.readouterr().err


def test_given_class_names_fix_the_indices(folder):
    root, _, _ = folder
    source = as_image_source(root, class_names=["bird", "cat", "dog"])
    assert source.class_names == ["bird", "cat", "dog"]
    assert source.labels.tolist() == [1, 1, 1, 2, 2, 2, 2]
    reordered = as_image_source(source, class_names=["dog", "cat"])
    assert reordered.labels.tolist() == [1, 1, 1, 0, 0, 0, 0]


def test_unlabeled_forms(tmp_path, folder):
    root, paths, _ = folder
    assert as_image_source(paths, require_labels=False).labels is None
    frame = pd.DataFrame({"path": paths})
    assert as_image_source(frame, require_labels=False).labels is None
    images = as_image_source(np.zeros((2, 4, 4, 3)), require_labels=False)
    assert images.labels is None and images.identifiers is None
    dataset = as_image_source(
        tf.data.Dataset.from_tensor_slices(np.zeros((2, 4, 4, 3))), require_labels=False
    )
    assert not dataset.labeled


def test_unlabeled_folder_of_loose_images(tmp_path):
    for i in range(2):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / f"{i}.jpg")
    source = as_image_source(tmp_path, require_labels=False)
    assert source.labels is None and len(source) == 2


def test_unlabeled_folder_whose_sub_folders_are_not_classes(folder):
    root, paths, _ = folder
    # "cat"/"dog" are not classes of a model that knows ["ant", "bee"]: read as unlabeled.
    source = as_image_source(root, require_labels=False, class_names=["ant", "bee"])
    assert source.labels is None and source.paths == paths
    labeled = as_image_source(root, require_labels=False, class_names=["cat", "dog"])
    assert labeled.labels.tolist() == [0, 0, 0, 1, 1, 1, 1]


def test_loose_images_beside_class_folders_are_reported(folder, capsys):
    root, _, _ = folder
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "stray.png")
    source = as_image_source(root)
    assert len(source) == 7
    assert source.skipped.to_dict("records") == [
        {"path": str(root / "stray.png"), "reason": "not in a class sub-folder"}
    ]
    assert "Left out 1 images directly in" in capsys.readouterr().err


def test_empty_class_folder_is_not_a_class(folder, capsys):
    root, _, _ = folder
    (root / "empty").mkdir()
    assert as_image_source(root).class_names == ["cat", "dog"]
    assert "['empty']" in capsys.readouterr().err


def test_a_class_whose_every_file_is_unusable_is_dropped_like_an_empty_folder(folder, capsys):
    root, paths, _ = folder
    (root / "bird").mkdir()
    for name in ("0.png", "1.jpg"):
        (root / "bird" / name).write_text("not an image")
    source = as_image_source(root)
    assert source.class_names == ["cat", "dog"]
    assert source.labels.tolist() == [0, 0, 0, 1, 1, 1, 1] and source.paths == paths
    assert len(source.skipped) == 2
    assert "Classes ['bird'] have no usable image" in capsys.readouterr().err
    # The classes of a trained model stay its classes, usable images or not.
    known = as_image_source(root, class_names=["bird", "cat", "dog"])
    assert known.class_names == ["bird", "cat", "dog"]
    assert known.labels.tolist() == [1, 1, 1, 2, 2, 2, 2]


def test_dataset_length_and_labels():
    unbatched = tf.data.Dataset.from_tensor_slices((np.zeros((5, 4, 4, 3)), np.arange(5) % 2))
    source = as_image_source(unbatched)
    assert len(source) == 5 and source.labeled and source.identifiers is None
    with pytest.raises(TypeError, match="not known without iterating"):
        len(as_image_source(unbatched.batch(2)))
    with pytest.raises(TypeError, match="not known without iterating"):
        len(as_image_source(unbatched.filter(lambda x, y: y > 0)))


def test_subset_keeps_classes_and_skipped(folder):
    root, paths, _ = folder
    (root / "cat" / "broken.png").write_text("no")
    source = as_image_source(root)
    part = source.subset([0, 6])
    assert isinstance(part, ImageSource)
    assert part.paths == [paths[0], paths[6]] and part.labels.tolist() == [0, 1]
    assert part.class_names == ["cat", "dog"] and len(part.skipped) == 1
    arrays = as_image_source(np.arange(4 * 12).reshape(4, 2, 2, 3), [0, 1, 0, 1])
    masked = arrays.subset(np.array([True, False, False, True]))
    np.testing.assert_array_equal(masked.images, arrays.images[[0, 3]])


def test_identifiers_stay_the_users_paths_for_converted_files(tmp_path, folder):
    root, _, _ = folder
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "cat" / "scan.tif")
    source = as_image_source(root)
    index = source.identifiers.index(str(root / "cat" / "scan.tif"))
    assert source.paths[index].startswith(str(tmp_path / "cache"))


# === Errors say what was received and how to fix it ===


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file or folder: .*nowhere"):
        as_image_source(tmp_path / "nowhere")


def test_empty_folder_names_the_extensions(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match=r"No images found in .*\.jpg, \.jpeg, \.png, .*\.tiff"):
        as_image_source(tmp_path)


def test_one_class_folder(tmp_path, write_class_folder):
    write_class_folder(tmp_path, {"cat": 2})
    with pytest.raises(
        ValueError, match=r"At least 2 classes .* found \['cat'\] in .*cat'?/\*\.jpg"
    ):
        as_image_source(tmp_path)


def test_a_parent_of_split_folders_says_which_folder_to_pass(tmp_path, write_class_folder):
    for split in ("train", "test"):
        write_class_folder(tmp_path / "data" / split, {"cat": 2, "dog": 2})
    data = tmp_path / "data"
    message = (
        rf"{data} holds the split folders \['test', 'train'\].*not classes.*Pass "
        rf"{data / 'train'} as the training data.*{data / 'test'}.*evaluat"
    )
    with pytest.raises(ValueError, match=message):
        as_image_source(data)
    write_class_folder(data / "val", {"cat": 2, "dog": 2})
    with pytest.raises(ValueError, match=rf"{data / 'val'} as the validation data"):
        as_image_source(data, class_names=["cat", "dog"])


def test_folder_without_class_folders_when_labels_are_required(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="no class sub-folders.*own sub-folder"):
        as_image_source(tmp_path)


def test_dataframe_missing_columns(folder):
    _, paths, names = folder
    frame = pd.DataFrame({"file": paths, "kind": names})
    with pytest.raises(ValueError, match=r"no column 'path'.*\['file', 'kind'\].*path_column="):
        as_image_source(frame)
    with pytest.raises(ValueError, match=r"no column 'label'.*\['file', 'kind'\].*label_column="):
        as_image_source(frame, path_column="file")
    with pytest.raises(ValueError, match="label_column=None"):
        as_image_source(frame, path_column="file", label_column=None)


def test_nan_labels(folder):
    _, paths, names = folder
    names = [None, *names[1:]]
    with pytest.raises(
        ValueError, match=r"1 of 7 labels are missing \(NaN or None\), e.g. for .*000"
    ):
        as_image_source(pd.DataFrame({"path": paths, "label": names}))
    with pytest.raises(ValueError, match="missing"):
        as_image_source(np.zeros((2, 2, 2, 3)), [0.0, float("nan")])


def test_label_not_among_the_known_classes(tmp_path, write_class_folder):
    paths, _ = write_class_folder(tmp_path, {"cat": 1, "dog": 1, "bird": 3})
    bird = str(tmp_path / "bird" / "000.png")
    message = (
        r"label 'bird' \(3 images, e.g. " + bird + r"\) is not one of the classes the model "
        r"was trained on: \['cat', 'dog'\]"
    )
    with pytest.raises(ValueError, match=message):
        as_image_source(tmp_path, class_names=["cat", "dog"])
    with pytest.raises(ValueError, match=r"label 5 .* indices 0..1"):
        as_image_source(np.zeros((2, 2, 2, 3)), [0, 5], class_names=["cat", "dog"])


def test_length_mismatch(folder):
    _, paths, names = folder
    with pytest.raises(ValueError, match="Received 7 image paths but 6 labels"):
        as_image_source(paths, names[:6])
    with pytest.raises(ValueError, match="Received 3 images but 2 labels"):
        as_image_source(np.zeros((3, 2, 2, 3)), [0, 1])


def test_bad_array_shapes():
    with pytest.raises(ValueError, match=r"Received shape \(4, 4\)"):
        as_image_source(np.zeros((4, 4)), [0])
    with pytest.raises(ValueError, match=r"Drop the alpha channel"):
        as_image_source(np.zeros((2, 4, 4, 4)), [0, 1])
    with pytest.raises(ValueError, match=r"looks like one image.*np.newaxis"):
        as_image_source(np.zeros((4, 4, 3)), [0])
    with pytest.raises(ValueError, match="must hold numbers"):
        as_image_source(np.full((2, 2, 2, 3), "x"), [0, 1])


def test_missing_labels():
    with pytest.raises(ValueError, match=r"no labels. Pass labels=.*\(images, labels\)"):
        as_image_source(np.zeros((2, 4, 4, 3)))
    with pytest.raises(ValueError, match=r"no labels. Pass labels=\[...\]"):
        as_image_source(["a.png"])
    with pytest.raises(ValueError, match="yields images only"):
        as_image_source(tf.data.Dataset.from_tensor_slices(np.zeros((2, 4, 4, 3))))


def test_every_file_unusable_lists_why(tmp_path):
    (tmp_path / "a.jpg").write_text("text")
    (tmp_path / "b.png").write_bytes(b"")
    with pytest.raises(
        ValueError,
        match=r"None of the 2 image files can be used: 1 not an image "
        r"file \(e.g. .*a.jpg\); 1 empty file",
    ):
        as_image_source([tmp_path / "a.jpg", tmp_path / "b.png"], require_labels=False)


def test_none_of_the_listed_paths_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        FileNotFoundError, match="None of the 2 image paths exist.*current directory"
    ):
        as_image_source(["x/a.png", "x/b.png"], ["cat", "dog"])


def test_some_listed_paths_missing_are_skipped(folder):
    _, paths, names = folder
    source = as_image_source([*paths, "/no/such.png"], [*names, "cat"])
    assert len(source) == 7
    assert source.skipped.to_dict("records") == [
        {"path": "/no/such.png", "reason": "file not found"}
    ]


def test_wrong_types_and_combinations(folder):
    root, _, _ = folder
    with pytest.raises(TypeError, match="Unsupported image data of type dict"):
        as_image_source({"a": 1})
    with pytest.raises(ValueError, match="labels= can't be combined with a folder"):
        as_image_source(root, ["cat"])
    with pytest.raises(ValueError, match="mix class names and numbers"):
        as_image_source(np.zeros((2, 2, 2, 3)), ["cat", 1])
    with pytest.raises(ValueError, match="class_names holds duplicates"):
        as_image_source(root, class_names=["cat", "cat"])
    with pytest.raises(ValueError, match="element_spec"):
        as_image_source(tf.data.Dataset.from_tensor_slices({"x": np.zeros((2, 4, 4, 3))}))


def test_paths_as_a_series_or_string_array_and_images_as_a_tensor(folder, arrays):
    _, paths, names = folder
    for data in (pd.Series(paths), np.array(paths)):
        assert as_image_source(data, names).paths == paths
    images, _ = arrays
    source = as_image_source(tf.constant(images), names)
    np.testing.assert_array_equal(source.images, images)

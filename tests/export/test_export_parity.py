"""The parity check: a table of how each export answers against the Keras model."""

import numpy as np
import pandas as pd
import pytest
from export_helpers import keras_probabilities, smooth_images

import transferkit as tk
from transferkit.export.parity import COLUMNS

pytest.importorskip("ai_edge_litert", reason="the LiteRT runtime comes with transferkit[export]")


@pytest.fixture(scope="module")
def labels(images):
    return np.arange(len(images)) % 3


def test_the_table_compares_the_export_with_the_keras_model(finetuner, images, labels, tmp_path):
    table = finetuner.export(tmp_path / "cats.tflite", "litert", check=(images, labels))

    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == COLUMNS
    assert list(table.index) == ["keras", "litert"]
    keras_row, litert = table.loc["keras"], table.loc["litert"]
    expected = keras_probabilities(finetuner.model, images)
    assert keras_row["accuracy"] == pytest.approx((expected.argmax(1) == labels).mean())
    assert litert["accuracy"] == keras_row["accuracy"]
    assert litert["agreement"] == 1.0
    assert 0 <= litert["max_abs_diff"] <= 1e-4 and litert["tolerance"] == 1e-4
    assert bool(litert["within_tolerance"]) is True
    assert litert["file_mb"] == pytest.approx((tmp_path / "cats.tflite").stat().st_size / 1e6)
    assert litert["latency_ms"] > 0 and keras_row["latency_ms"] > 0
    assert pd.isna(keras_row["file_mb"]) and pd.isna(keras_row["within_tolerance"])


def test_without_check_nothing_is_measured(finetuner, tmp_path):
    assert finetuner.export(tmp_path / "cats.tflite", "litert") is None


def test_unlabelled_images_leave_accuracy_empty(finetuner, images, tmp_path):
    table = finetuner.export(tmp_path / "cats.tflite", "litert", check=images)
    assert table["accuracy"].isna().all()
    assert table.loc["litert", "agreement"] == 1.0


def test_a_folder_of_class_folders_checks_with_its_labels(finetuner, tmp_path, image_folder):
    folder = image_folder(classes=("cat", "dog", "bird"), per_class=3)
    table = finetuner.export(tmp_path / "cats.tflite", "litert", check=folder)
    assert table["accuracy"].notna().all()


def test_an_export_beyond_its_tolerance_raises_with_the_table_and_is_not_kept(
    finetuner, images, tmp_path
):
    path = tmp_path / "cats.tflite"
    path.write_bytes(b"the previous export")
    (tmp_path / "cats.tflite.json").write_text("{}")
    with pytest.raises(tk.export.ParityError, match=r"litert float16 \(mean difference") as error:
        finetuner.export(
            path, "litert", quantize="float16", check=images, tolerance=1e-12, overwrite=True
        )
    assert error.value.table.loc["litert float16", "within_tolerance"] == False  # noqa: E712
    assert "max_abs_diff" in str(error.value)
    # Checked before taking its place: the previous export is intact, nothing else left.
    assert path.read_bytes() == b"the previous export"
    assert sorted(item.name for item in tmp_path.iterdir()) == ["cats.tflite", "cats.tflite.json"]


def test_integer_quantization_is_reported_not_judged(finetuner, images, tmp_path):
    table = finetuner.export(
        tmp_path / "int8.tflite",
        "litert",
        quantize="full_integer",
        representative_data=smooth_images(20, seed=5),
        check=images,
        tolerance=1e-12,
    )
    row = table.loc["litert full_integer"]
    assert row["max_abs_diff"] > 0
    assert pd.isna(row["tolerance"]) and pd.isna(row["within_tolerance"])


def test_check_parity_takes_several_exports(finetuner, images, tmp_path):
    paths = [tmp_path / "float32.tflite", tmp_path / "float16.tflite"]
    finetuner.export(paths[0], "litert")
    finetuner.export(paths[1], "litert", quantize="float16")
    table = tk.export.check_parity(finetuner.model, paths, images)
    assert list(table.index) == ["keras", "litert", "litert float16"]
    assert table.loc["litert float16", "tolerance"] == 1e-3
    assert table["within_tolerance"].iloc[1:].all()

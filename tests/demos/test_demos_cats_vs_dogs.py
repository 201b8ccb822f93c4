import json

import pandas as pd
import pytest

from transferkit.backbones import WeightsDownloadError
from transferkit.demos import cats_vs_dogs


def test_auto_weights_fall_back_to_offline_mobilenet(monkeypatch, tmp_path, capfd):
    def no_network(*args, **kwargs):
        raise WeightsDownloadError("Could not download (no network)")

    offline = tmp_path / "mobilenet.weights.h5"
    monkeypatch.setattr(cats_vs_dogs, "build_backbone", no_network)
    monkeypatch.setattr(cats_vs_dogs, "mobilenet_imagenet_weights", lambda: offline)
    backbone, weights, described = cats_vs_dogs.pick_backbone("auto")
    assert (backbone, weights) == ("mobilenet", offline)
    assert "offline" in described
    assert "could not download the ImageNet weights of resnet50" in capfd.readouterr().err


def test_folder_source_holds_out_a_stratified_test_split(image_folder):
    root = image_folder(per_class=10)
    train, test = cats_vs_dogs.load_data("folder", str(root), train_images=None, seed=0)
    assert len(train.data) == 16 and len(test.data) == 4
    assert sorted(test.data.labels.tolist()) == [0, 0, 1, 1]
    assert not set(train.data.paths) & set(test.data.paths)


def test_bad_source_arguments():
    with pytest.raises(ValueError, match="Unknown source 'kaggle'"):
        cats_vs_dogs.load_data("kaggle")
    with pytest.raises(ValueError, match="needs data_dir"):
        cats_vs_dogs.load_data("folder")


def test_run_writes_the_results_folder(image_folder, tmp_path, monkeypatch):
    root = image_folder(per_class=10)
    monkeypatch.setattr(
        cats_vs_dogs, "pick_backbone", lambda weights: ("mobilenet", None, "mobilenet, random")
    )
    out = tmp_path / "run"
    metrics = cats_vs_dogs.run(
        source="folder", data_dir=str(root), image_size=32, epochs=2, frozen_epochs=1, out=out
    )
    assert {p.name for p in out.iterdir()} == {
        "model.keras",
        "history.csv",
        "predictions.csv",
        "confusion_matrix.csv",
        "metrics.json",
        "history.png",
        "confusion_matrix.png",
        "predictions.png",
    }
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    assert list(pd.read_csv(out / "history.csv")["phase"]) == ["frozen", "unfrozen"]
    # A second run refuses to replace the results unless asked.
    with pytest.raises(FileExistsError, match="not empty"):
        cats_vs_dogs.run(source="folder", data_dir=str(root), image_size=32, epochs=1, out=out)

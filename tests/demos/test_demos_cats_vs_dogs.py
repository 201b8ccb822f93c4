import json
import sys

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


def test_offline_mobilenet_weights_skip_the_download(monkeypatch, tmp_path):
    # README and the tutorial quote --weights offline-mobilenet to train the measured
    # MobileNet where Keras's download of ResNet50's weights would work.
    def download(*args, **kwargs):
        raise AssertionError("tried Keras's download")

    offline = tmp_path / "mobilenet.weights.h5"
    monkeypatch.setattr(cats_vs_dogs, "build_backbone", download)
    monkeypatch.setattr(cats_vs_dogs, "mobilenet_imagenet_weights", lambda: offline)
    backbone, weights, _ = cats_vs_dogs.pick_backbone("offline-mobilenet")
    assert (backbone, weights) == ("mobilenet", offline)


def test_offline_dinov2_is_the_converted_preset_as_a_hub_backbone(monkeypatch, tmp_path):
    import transferkit.offline

    monkeypatch.setattr(transferkit.offline, "dinov2_vits14_preset", lambda: tmp_path)
    backbone, weights, described = cats_vs_dogs.pick_backbone("offline-dinov2")
    assert (backbone, weights) == (f"hub:{tmp_path}", "imagenet")
    assert "DINOv2 ViT-S/14" in described


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
        "run.json",
        "per_class.csv",
        "calibration.csv",
        "reliability.png",
        "top_losses.csv",
        "top_losses.png",
        "report.html",
        "logs",
    }
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    assert list(pd.read_csv(out / "history.csv")["phase"]) == ["frozen", "unfrozen"]
    # A second run refuses to replace the results unless asked.
    with pytest.raises(FileExistsError, match="not empty"):
        cats_vs_dogs.run(source="folder", data_dir=str(root), image_size=32, epochs=1, out=out)


class FakeTFDS:
    """Stands in for `tensorflow_datasets` (not installed here, and it needs internet)."""

    def __init__(self, images_per_class=3, fail=None, num_examples=None):
        self.images_per_class, self.fail, self.loads = images_per_class, fail, 0
        self.num_examples = num_examples  # what the split info says; the real count if None

    def load(self, name, split, as_supervised, with_info):
        import types

        import numpy as np
        import tensorflow as tf

        self.loads += 1
        if self.fail:
            raise self.fail
        assert (name, split, as_supervised, with_info) == ("cats_vs_dogs", "train", True, True)
        count = 2 * self.images_per_class
        images = np.zeros((count, 20, 24, 3), "uint8")
        images[self.images_per_class :, ..., 2] = 200  # dogs are blue
        # Each image its own: identical files would be kept together by the validation split.
        images[..., 1] = np.arange(count)[:, None, None] * 10
        labels = np.repeat([0, 1], self.images_per_class)
        info = types.SimpleNamespace(
            features={"label": types.SimpleNamespace(names=["cat", "dog"])},
            splits={"train": types.SimpleNamespace(num_examples=self.num_examples or count)},
        )
        return tf.data.Dataset.from_tensor_slices((images, labels)), info


class UnevenTFDS(FakeTFDS):
    """4 cats and 7 dogs, while the split info says 12 images."""

    def load(self, name, split, as_supervised, with_info):
        import numpy as np

        dataset, info = super().load(name, split, as_supervised, with_info)
        labels = np.array([0] * 4 + [1] * 7)
        images = np.zeros((len(labels), 20, 24, 3), "uint8")
        # Each image its own: identical files would be kept together by the validation split.
        images[..., 1] = np.arange(len(labels))[:, None, None] * 10
        return type(dataset).from_tensor_slices((images, labels)), info


def test_tfds_source_writes_a_folder_once_and_reports_the_counts_it_wrote(
    monkeypatch, tmp_path, capfd
):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    fake = UnevenTFDS(num_examples=12)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    train, test = cats_vs_dogs.load_data("tfds", train_images=None, seed=0)
    assert len(train.data) + len(test.data) == 11
    assert "(Kaggle, 11 images: 4 cat, 7 dog)" in train.description
    log = capfd.readouterr().err
    assert "wrote 11 images (4 cat, 7 dog)" in log
    assert "gave 11 images, but its split info says 12" in log
    folder = tmp_path / "cache" / "demos" / "tfds_cats_vs_dogs"
    assert json.loads((folder / "counts.json").read_text()) == {
        "images": 11,
        "per_class": {"cat": 4, "dog": 7},
    }
    assert sorted(p.name for p in (folder / "dog").iterdir())[:1] == ["00004.jpg"]
    # A second run reads the cached folder and its counts, without TFDS.
    again, _ = cats_vs_dogs.load_data("tfds", train_images=None, seed=0)
    assert fake.loads == 1 and again.description == train.description


def test_tfds_folder_of_an_older_version_is_counted_not_trusted(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", FakeTFDS(images_per_class=5))
    cats_vs_dogs.load_data("tfds", train_images=None, seed=0)
    folder = tmp_path / "cache" / "demos" / "tfds_cats_vs_dogs"
    # Earlier versions wrote TFDS's split count and 25,000 minus it as "corrupt_skipped".
    (folder / "counts.json").write_text('{"images": 23262, "corrupt_skipped": 1738}')
    train, _ = cats_vs_dogs.load_data("tfds", train_images=None, seed=0)
    assert "(Kaggle, 10 images: 5 cat, 5 dog)" in train.description
    assert json.loads((folder / "counts.json").read_text())["per_class"] == {"cat": 5, "dog": 5}


def test_tfds_failure_says_what_to_do_and_leaves_nothing_behind(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    offline = FakeTFDS(fail=OSError("Failed to download cats_vs_dogs"))
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", offline)
    with pytest.raises(RuntimeError, match="needs internet access.*source='cifar10'"):
        cats_vs_dogs.load_data("tfds")
    assert not (tmp_path / "cache" / "demos" / "tfds_cats_vs_dogs").exists()


def test_tfds_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails
    with pytest.raises(ImportError, match="pip install tensorflow-datasets"):
        cats_vs_dogs.load_data("tfds")


@pytest.mark.parametrize("given, expected", [([], "float32"), (["--precision", "auto"], "auto")])
def test_the_demo_command_takes_the_examples_precision(monkeypatch, tmp_path, given, expected):
    # `transferkit demo cats-vs-dogs` is the same run as examples/cats_vs_dogs/train.py,
    # which takes --precision: the command passes it through to the run.
    from transferkit.cli import main

    received = {}
    monkeypatch.setattr(cats_vs_dogs, "run", lambda **settings: received.update(settings))
    command = ["demo", "cats-vs-dogs", "--out", str(tmp_path / "run"), *given]
    assert main(command) == 0
    assert received["precision"] == expected


def test_the_run_trains_and_records_in_its_precision(image_folder, tmp_path, monkeypatch):
    root = image_folder(per_class=6)
    monkeypatch.setattr(
        cats_vs_dogs, "pick_backbone", lambda weights: ("mobilenet", None, "mobilenet, random")
    )
    built = {}
    original = cats_vs_dogs.FineTuner

    def recording(*args, **kwargs):
        built.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(cats_vs_dogs, "FineTuner", recording)
    out = tmp_path / "run"
    cats_vs_dogs.run(
        source="folder",
        data_dir=str(root),
        image_size=32,
        epochs=1,
        frozen_epochs=1,
        out=out,
        precision="mixed_bfloat16",
    )
    assert built["precision"] == "mixed_bfloat16"
    assert json.loads((out / "metrics.json").read_text())["precision"] == "mixed_bfloat16"

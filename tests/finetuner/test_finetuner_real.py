"""Fine-tuning real ImageNet weights on real photos (fetched through the package registries)."""

import numpy as np
import pytest

import transferkit as tk
from transferkit.offline import (
    CIFAR10_CLASS_NAMES,
    load_cifar10_cats_vs_dogs,
    mobilenet_imagenet_weights,
)


def balanced_subset(labels, per_class, seed):
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in (0, 1)]
    )


@pytest.mark.real
def test_mobilenet_imagenet_fine_tune_on_real_cifar10_cats_vs_dogs(tmp_path):
    names = np.array(CIFAR10_CLASS_NAMES)
    images, labels = load_cifar10_cats_vs_dogs("train")
    test_images, test_labels = load_cifar10_cats_vs_dogs("test")
    train = balanced_subset(labels, 500, seed=0)  # 1000 training images
    test = balanced_subset(test_labels, 500, seed=0)  # 1000 held-out images

    ft = tk.FineTuner(
        "mobilenet",
        weights=mobilenet_imagenet_weights(),
        input_shape=(160, 160, 3),
        seed=0,
    )
    # The default recipe: one head epoch on cached features, then the backbone unfreezes.
    history = ft.fit(images[train], names[labels[train]], epochs=3, verbose=0)
    assert history["phase"].tolist() == ["frozen", "unfrozen", "unfrozen"]

    report = ft.evaluate(test_images[test], names[test_labels[test]])
    print(f"held-out accuracy on 1000 CIFAR-10 test images: {report['accuracy']:.3f}")
    assert report["accuracy"] >= 0.80
    assert report.confusion_matrix.to_numpy().sum() == 1000

    # The saved model predicts the same from raw 32x32 images.
    ft.save(tmp_path / "cats_vs_dogs.keras")
    loaded = tk.load(tmp_path / "cats_vs_dogs.keras")
    sample = test_images[test[:8]]
    np.testing.assert_allclose(
        loaded.predict(sample)["prob_dog"], ft.predict(sample)["prob_dog"], rtol=1e-4, atol=1e-5
    )

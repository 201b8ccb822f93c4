"""Helpers of the export tests: tiny classifiers whose answers depend on the image."""

from pathlib import Path

import keras
import numpy as np

import transferkit as tk
from transferkit.layers import BackbonePreprocessing

RUNNER = Path(__file__).with_name("run_artifact.py")
CLASS_NAMES = ["cat", "dog", "bird"]


def smooth_images(count, size=(30, 20), seed=0):
    """Raw RGB images (float32, 0-255) with structure: coarse noise, upsampled."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, 4, 4, 3)).astype("float32")
    return np.asarray(keras.ops.image.resize(coarse, size), dtype="float32").round()


def layers_of(model):
    yield model
    for layer in getattr(model, "layers", None) or []:
        yield from layers_of(layer)


def calibrate_batchnorm(classifier, images):
    """Sets every BatchNorm's moving statistics to those of `images`.

    With `weights=None` and fresh statistics, deep backbones squash every image to
    the same output, and an export would agree with them trivially; with the
    statistics of real activations, the answers differ from image to image.
    """
    norms = [
        layer
        for layer in layers_of(classifier)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    momenta = [layer.momentum for layer in norms]
    trainable = classifier.backbone.trainable
    classifier.backbone.trainable = True
    for layer in norms:
        layer.momentum = 0.0
    classifier(images, training=True)
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum
    classifier.backbone.trainable = trainable


def tiny_classifier(num_classes=3, size=16, middle=None, mode="tf"):
    """A two-convolution classifier (with BatchNorm) on `size` x `size` images.

    Args:
        middle: callable or None. `middle(x) -> x`, extra layers after the first
            convolution.
    """
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    if middle is not None:
        x = middle(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv_2")(x)
    backbone = keras.Model(inputs, x, name="tiny")
    head = tk.ClassificationHead(
        num_classes=num_classes, class_names=CLASS_NAMES[:num_classes], dropout=0.2
    )
    classifier = tk.ImageClassifier(backbone, head, BackbonePreprocessing((size, size), mode=mode))
    calibrate(classifier, smooth_images(16, (size, size), seed=1))
    return classifier


def calibrate(classifier, images):
    """Makes a random classifier's answers differ from image to image, as trained ones do.

    Sets the BatchNorm statistics to those of `images` (`calibrate_batchnorm`), then
    scales and shifts the head's output layer so that its logits have mean 0 and
    standard deviation 2 across `images`: probabilities neither all alike nor all 0
    and 1, so a difference between a model and its export shows.
    """
    calibrate_batchnorm(classifier, images)
    layer = classifier.head.output_layer
    kernel, bias = (np.asarray(weight) for weight in layer.get_weights())
    features = np.asarray(classifier.feature_extractor()(images), dtype="float64")
    logits = features @ kernel + bias
    scale = 2.0 / (logits.std(axis=0) + 1e-12)
    layer.set_weights([kernel * scale, (bias - logits.mean(axis=0)) * scale])


def keras_probabilities(classifier, images):
    return classifier.head.probabilities(classifier.predict(images, verbose=0))


def assert_informative(probabilities):
    """The answers differ between images: a parity test on them means something."""
    assert probabilities.std(axis=0).max() > 0.05, probabilities

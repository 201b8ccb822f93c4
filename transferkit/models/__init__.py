"""The Keras models transferkit builds: `ImageClassifier`."""

from transferkit.models.image_classifier import ImageClassifier

__all__ = ["ImageClassifier"]

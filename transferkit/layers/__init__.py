"""Keras layers that transferkit puts inside the models it builds."""

from transferkit.layers.image_preprocessing import PREPROCESSING_MODES, BackbonePreprocessing

__all__ = ["BackbonePreprocessing", "PREPROCESSING_MODES"]

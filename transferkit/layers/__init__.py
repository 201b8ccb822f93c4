"""Keras layers that transferkit puts inside the models it builds."""

from transferkit.layers.batch_normalization import BFloat16BatchNormalization
from transferkit.layers.image_preprocessing import PREPROCESSING_MODES, BackbonePreprocessing

__all__ = ["BackbonePreprocessing", "BFloat16BatchNormalization", "PREPROCESSING_MODES"]

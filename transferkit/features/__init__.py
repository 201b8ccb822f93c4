"""The feature cache: a frozen backbone's features, computed once."""

from transferkit.features.extraction import extract_features, model_fingerprint, source_fingerprint

__all__ = ["extract_features", "model_fingerprint", "source_fingerprint"]

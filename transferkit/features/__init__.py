"""The feature cache: a frozen backbone's features, computed once."""

from transferkit.features.cache import FeatureCache, default_cache
from transferkit.features.extraction import (
    extract_features,
    feature_batches,
    model_fingerprint,
    source_fingerprint,
    view_labels,
)

__all__ = [
    "FeatureCache",
    "default_cache",
    "extract_features",
    "feature_batches",
    "model_fingerprint",
    "source_fingerprint",
    "view_labels",
]

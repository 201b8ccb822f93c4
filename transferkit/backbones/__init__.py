"""Keras Applications backbones by name: the registry, and building them with weights."""

from transferkit.backbones.builder import build_backbone
from transferkit.backbones.catalog import list_backbones
from transferkit.backbones.registry import BACKBONES, BackboneSpec, get_backbone_spec
from transferkit.backbones.weights import WeightsDownloadError

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "WeightsDownloadError",
    "build_backbone",
    "get_backbone_spec",
    "list_backbones",
]

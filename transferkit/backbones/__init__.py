"""Backbones by name: the Keras Applications registry, KerasHub presets, and building them."""

from transferkit.backbones import hub
from transferkit.backbones.builder import build_backbone
from transferkit.backbones.catalog import list_backbones
from transferkit.backbones.hub import HubPresetError
from transferkit.backbones.registry import BACKBONES, BackboneSpec, get_backbone_spec
from transferkit.backbones.weights import WeightsDownloadError

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "HubPresetError",
    "WeightsDownloadError",
    "build_backbone",
    "get_backbone_spec",
    "hub",
    "list_backbones",
]

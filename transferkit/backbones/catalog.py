"""`list_backbones`: the table of backbones transferkit builds by name."""

import importlib.util

import pandas as pd

from transferkit.backbones import registry
from transferkit.backbones.builder import build_backbone

SOURCES = ("all", "keras.applications", "keras_hub")


def list_backbones(with_parameters: bool = False, source: str = "all") -> pd.DataFrame:
    """Lists the backbones transferkit can build by name.

    Two sources: the Keras Applications models (`"resnet50"`, ...), whose
    ImageNet weights Keras downloads, and KerasHub's built-in image presets
    (`"hub:vit_base_patch16_224_imagenet"`, ...), listed when keras-hub is
    installed (`pip install "transferkit[hub]"`), whose weights come from their
    Kaggle handle. Any other KerasHub preset (`"hf://owner/name"`, a local
    folder) is accepted as `backbone=` too.

    Args:
        with_parameters: bool. Whether to count the parameters of every Keras
            Applications backbone, by building it without its top and without
            weights at its default size; this takes a minute or two and a few GB
            of memory. KerasHub rows always carry the count their preset states.
            Defaults to `False`.
        source: str. `"all"`, `"keras.applications"` or `"keras_hub"`.
            Defaults to `"all"`.

    Returns:
        A `pandas.DataFrame` with one row per backbone and the columns `name`,
        `application` (the Keras class, or the KerasHub model), `input_size`
        (the default square size; None where a KerasHub preset states it only
        once downloaded), `preprocessing`, `family`, `source` and `weights`
        (where pretrained weights come from), plus `parameters` when asked or
        known.

    Raises:
        ValueError: for an unknown `source`.

    Example:

    ```python
    table = list_backbones(source="keras.applications")
    table[table.family == "efficientnetv2"]
    ```
    """
    if source not in SOURCES:
        raise ValueError(f"`source` must be one of {SOURCES}. Received: source={source!r}")
    specs = list(registry.BACKBONES.values()) if source != "keras_hub" else []
    table = pd.DataFrame(
        {
            "name": [spec.name for spec in specs],
            "application": [spec.application for spec in specs],
            "input_size": [spec.default_size for spec in specs],
            "preprocessing": [spec.preprocessing for spec in specs],
            "family": [spec.family for spec in specs],
            "source": ["keras.applications"] * len(specs),
            "weights": ["imagenet (Keras download)"] * len(specs),
        }
    )
    if with_parameters:
        counts = []
        for name in table["name"]:
            model, _ = build_backbone(name, weights=None)
            counts.append(model.count_params())
            del model
        table["parameters"] = counts
    if source != "keras.applications" and importlib.util.find_spec("keras_hub") is not None:
        from transferkit.backbones.hub import hub_backbone_table

        rows = pd.DataFrame(hub_backbone_table()).drop(columns="description")
        rows["preprocessing"] = "preset"
        columns = list(dict.fromkeys([*table.columns, "parameters"]))  # once, if counted
        table = pd.concat([table, rows[columns]], ignore_index=True)
        for column in ("input_size", "parameters"):
            table[column] = table[column].astype("Int64")
    return table

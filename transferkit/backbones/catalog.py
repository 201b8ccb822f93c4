"""`list_backbones`: the table of backbones transferkit builds by name."""

import pandas as pd

from transferkit.backbones import registry
from transferkit.backbones.builder import build_backbone


def list_backbones(with_parameters: bool = False) -> pd.DataFrame:
    """Lists the backbones transferkit can build by name.

    Args:
        with_parameters: bool. Whether to add a `parameters` column, counted by
            building every backbone without its top and without weights at its
            default size; this takes a minute or two and a few GB of memory.
            Defaults to `False`.

    Returns:
        A `pandas.DataFrame` with one row per backbone and the columns `name`,
        `application`, `input_size` (the default square size), `preprocessing` and
        `family`, plus `parameters` when asked.

    Example:

    ```python
    table = list_backbones()
    table[table.family == "efficientnetv2"]
    ```
    """
    table = pd.DataFrame(
        {
            "name": [spec.name for spec in registry.BACKBONES.values()],
            "application": [spec.application for spec in registry.BACKBONES.values()],
            "input_size": [spec.default_size for spec in registry.BACKBONES.values()],
            "preprocessing": [spec.preprocessing for spec in registry.BACKBONES.values()],
            "family": [spec.family for spec in registry.BACKBONES.values()],
        }
    )
    if with_parameters:
        counts = []
        for name in table["name"]:
            model, _ = build_backbone(name, weights=None)
            counts.append(model.count_params())
            del model
        table["parameters"] = counts
    return table

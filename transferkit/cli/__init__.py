"""The `transferkit` command line: fit, evaluate, predict, export, tune, backbones, demo.

Importing this package is cheap: TensorFlow and the rest of transferkit are
imported by the commands that need them, so `transferkit --help` answers at once.

```bash
transferkit fit data/train --out runs/cats --backbone mobilenet --epochs 5
transferkit predict runs/cats/model.keras photos/ --csv predictions.csv
```
"""

from transferkit.cli.main import build_parser, main

__all__ = ["build_parser", "main"]

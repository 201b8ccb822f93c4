"""transferkit: fine-tune any Keras Applications backbone into an image classifier.

```python
import transferkit as tk
ft = tk.FineTuner("resnet50", num_classes=2)
ft.fit("data/train", epochs=5)
ft.predict(["cat.jpg", "dog.jpg"])   # a pandas DataFrame
```
"""

# ruff: noqa: E402 -- TensorFlow must be imported (quietly) before the modules that use it.
from transferkit.utils.quiet import import_tensorflow_quietly

import_tensorflow_quietly()

from transferkit import (
    backbones,
    data,
    features,
    heads,
    interpret,
    layers,
    models,
    offline,
    optimizers,
    plots,
    report,
    schedules,
    tuning,
)
from transferkit.backbones import build_backbone, list_backbones
from transferkit.finetuner import EvaluationReport, FineTuner, load
from transferkit.heads import ClassificationHead
from transferkit.models import ImageClassifier
from transferkit.schedules import Freeze, FreezeUnfreeze, GradualUnfreeze, NoFreeze, Schedule
from transferkit.tuning import FineTunerHyperModel, TuneResult, tune
from transferkit.version import __version__

__all__ = [
    "__version__",
    "FineTuner",
    "load",
    "ImageClassifier",
    "EvaluationReport",
    "ClassificationHead",
    "Schedule",
    "NoFreeze",
    "Freeze",
    "FreezeUnfreeze",
    "GradualUnfreeze",
    "tune",
    "TuneResult",
    "FineTunerHyperModel",
    "build_backbone",
    "list_backbones",
    "backbones",
    "data",
    "features",
    "heads",
    "interpret",
    "layers",
    "models",
    "offline",
    "optimizers",
    "plots",
    "report",
    "schedules",
    "tuning",
]

"""transferkit: fine-tune any Keras Applications backbone into an image classifier.

```python
import transferkit as tk
ft = tk.FineTuner("resnet50", num_classes=2)
ft.fit("data/train", epochs=5)
ft.predict(["cat.jpg", "dog.jpg"])   # a pandas DataFrame
```

`import transferkit` is cheap: each public name is imported on its first use
(`tk.FineTuner`, `from transferkit import tune`), which first imports TensorFlow
quietly. So `transferkit --help` answers at once, and a script pays for TensorFlow
only when it uses it.

Plain `keras.saving.load_model` finds transferkit's classes once their modules
are imported: when Keras is already imported, `import transferkit` imports them
at once (it costs nothing then), so `import keras`, `import transferkit`, then
`keras.saving.load_model(path)` works; otherwise use `transferkit.load(path)`, or
any `transferkit` name first.
"""

import importlib as _importlib
import importlib.abc as _importlib_abc
import importlib.machinery as _importlib_machinery
import sys as _sys
from typing import TYPE_CHECKING

from transferkit.utils.quiet import import_tensorflow_quietly as _import_tensorflow_quietly
from transferkit.version import __version__

if TYPE_CHECKING:  # what the lazy names are, for type checkers, editors and the API docs
    from transferkit import (
        backbones,
        data,
        features,
        heads,
        layers,
        offline,
        optimizers,
        plots,
        schedules,
        tuning,
    )
    from transferkit.backbones import build_backbone, list_backbones
    from transferkit.finetuner import EvaluationReport, FineTuner, load
    from transferkit.heads import ClassificationHead
    from transferkit.schedules import Freeze, FreezeUnfreeze, GradualUnfreeze, NoFreeze, Schedule
    from transferkit.tuning import FineTunerHyperModel, TuneResult, tune

# Each lazy public name -> the module that defines it (a sub-module's name maps to itself).
_LAZY = {
    "FineTuner": "transferkit.finetuner",
    "load": "transferkit.finetuner",
    "EvaluationReport": "transferkit.finetuner",
    "ClassificationHead": "transferkit.heads",
    "Schedule": "transferkit.schedules",
    "NoFreeze": "transferkit.schedules",
    "Freeze": "transferkit.schedules",
    "FreezeUnfreeze": "transferkit.schedules",
    "GradualUnfreeze": "transferkit.schedules",
    "tune": "transferkit.tuning",
    "TuneResult": "transferkit.tuning",
    "FineTunerHyperModel": "transferkit.tuning",
    "build_backbone": "transferkit.backbones",
    "list_backbones": "transferkit.backbones",
    "ImageClassifier": "transferkit.models",
    **{
        name: f"transferkit.{name}"
        for name in (
            "backbones",
            "data",
            "features",
            "heads",
            "layers",
            "models",
            "offline",
            "optimizers",
            "plots",
            "schedules",
            "tuning",
        )
    },
}

__all__ = [
    "__version__",
    "FineTuner",
    "load",
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
    "layers",
    "offline",
    "optimizers",
    "plots",
    "schedules",
    "tuning",
]
# transferkit.models is new; until it is part of the package, `from transferkit import *`
# must not fail on it. (Looked for in this package's folder only, not through other finders.)
if _importlib_machinery.PathFinder.find_spec("transferkit.models", __path__) is not None:
    __all__ += ["ImageClassifier", "models"]


def __getattr__(name: str):
    """Imports a public name on its first use (PEP 562), TensorFlow first and quietly."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'transferkit' has no attribute {name!r}")
    _import_tensorflow_quietly()
    try:
        module = _importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise  # the module exists but lacks a dependency: that is the user's news
        raise AttributeError(
            f"module 'transferkit' has no attribute {name!r}: this installation of "
            f"transferkit has no {module_name}."
        ) from error
    value = module if module_name == f"transferkit.{name}" else getattr(module, name)
    globals()[name] = value  # later uses are plain attribute look-ups
    return value


def __dir__() -> list[str]:
    # The public names, loaded or not, and the module's own; not the helpers above.
    own = {name for name in globals() if not name.startswith("_") or name.startswith("__")}
    return sorted((own - {"TYPE_CHECKING"}) | set(__all__))


class _QuietTensorFlowFirst(_importlib_abc.MetaPathFinder):
    """Imports TensorFlow quietly before any transferkit module that uses it.

    `from transferkit.data import ...` skips `__getattr__` above; without this, it
    would import TensorFlow with its start-up chatter. Finds nothing itself: the
    usual finders still find the module.
    """

    LIGHT = frozenset({"__main__", "cli", "utils", "version"})  # no TensorFlow in these

    def find_spec(self, fullname, path, target=None):
        parts = fullname.split(".")
        if parts[0] == "transferkit" and len(parts) > 1 and parts[1] not in self.LIGHT:
            _import_tensorflow_quietly()
        return None


if not any(isinstance(finder, _QuietTensorFlowFirst) for finder in _sys.meta_path):
    _sys.meta_path.insert(0, _QuietTensorFlowFirst())

# Keras loads a saved model's custom classes only if they are registered, which
# happens when their modules are imported; with Keras loaded already that is free.
if "keras" in _sys.modules:
    for _name in __all__:
        if _name in _LAZY:
            __getattr__(_name)

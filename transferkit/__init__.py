"""transferkit: fine-tune any Keras Applications backbone into an image classifier.

```python
import transferkit as tk
ft = tk.FineTuner("resnet50", num_classes=2)
ft.fit("data/train", epochs=5)
ft.predict(["cat.jpg", "dog.jpg"])   # a pandas DataFrame
```

`import transferkit` imports TensorFlow (quietly) and registers transferkit's
classes with Keras, so plain `keras.saving.load_model(path)` works after it. The
`transferkit` command is the exception: it must answer `--help` without
TensorFlow, so when this package is imported to run it, each public name is
imported on its first use instead (PEP 562 `__getattr__`, TensorFlow first).
"""

import importlib as _importlib
import importlib.abc as _importlib_abc
import os as _os
import sys as _sys
from typing import TYPE_CHECKING

from transferkit.utils.quiet import import_tensorflow_quietly as _import_tensorflow_quietly
from transferkit.version import __version__

if TYPE_CHECKING:  # what the lazy names are, for type checkers, editors and the API docs
    from transferkit import (
        backbones,
        data,
        evaluation,
        export,
        features,
        heads,
        interpret,
        layers,
        models,
        offline,
        optimizers,
        plots,
        precision,
        report,
        schedules,
        training,
        tuning,
    )
    from transferkit.backbones import build_backbone, list_backbones
    from transferkit.finetuner import EvaluationReport, FineTuner, load, resolve_strategy
    from transferkit.heads import ClassificationHead
    from transferkit.models import ImageClassifier
    from transferkit.schedules import Freeze, FreezeUnfreeze, GradualUnfreeze, NoFreeze, Schedule
    from transferkit.tuning import FineTunerHyperModel, TuneResult, tune

# Each lazy public name -> the module that defines it (a sub-module's name maps to itself).
_LAZY = {
    "FineTuner": "transferkit.finetuner",
    "load": "transferkit.finetuner",
    "EvaluationReport": "transferkit.finetuner",
    "resolve_strategy": "transferkit.finetuner",
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
            "evaluation",
            "export",
            "features",
            "heads",
            "interpret",
            "layers",
            "models",
            "offline",
            "optimizers",
            "plots",
            "precision",
            "report",
            "schedules",
            "training",
            "tuning",
        )
    },
}

__all__ = [
    "__version__",
    "FineTuner",
    "load",
    "ImageClassifier",
    "EvaluationReport",
    "resolve_strategy",
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
    "evaluation",
    "export",
    "features",
    "heads",
    "interpret",
    "layers",
    "models",
    "offline",
    "optimizers",
    "plots",
    "precision",
    "report",
    "schedules",
    "training",
    "tuning",
]


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

    # No TensorFlow in these.
    LIGHT = frozenset({"__main__", "cli", "defaults", "utils", "version"})

    def find_spec(self, fullname, path, target=None):
        parts = fullname.split(".")
        if parts[0] == "transferkit" and len(parts) > 1 and parts[1] not in self.LIGHT:
            _import_tensorflow_quietly()
        return None


if not any(isinstance(finder, _QuietTensorFlowFirst) for finder in _sys.meta_path):
    _sys.meta_path.insert(0, _QuietTensorFlowFirst())


def _started_by_the_command() -> bool:
    """Whether this import runs the `transferkit` command (or `python -m transferkit`)."""
    script = _os.path.basename(_sys.argv[0]) if _sys.argv else ""
    # While `python -m` imports the package of the module it runs, argv[0] is "-m".
    return script in ("transferkit", "transferkit.exe") or script == "-m"


# Keras loads a saved model's custom classes only if they are registered, which happens
# when their modules are imported: a library import loads everything now.
if not _started_by_the_command():
    for _name in __all__:
        if _name in _LAZY:
            __getattr__(_name)

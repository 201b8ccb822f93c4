"""Hyperparameter search over the whole fine-tuning recipe, on KerasTuner.

```python
import transferkit as tk
result = tk.tune("data/train", backbones=["mobilenetv2", "efficientnetb0"], epochs=4)
result.results                    # one row per trial
result.best_finetuner().save("best.keras")
```
"""

from transferkit.tuning.hypermodel import FineTunerHyperModel
from transferkit.tuning.results import TuneResult
from transferkit.tuning.search import TUNERS, tune
from transferkit.tuning.space import SearchSpace

__all__ = ["FineTunerHyperModel", "SearchSpace", "TUNERS", "TuneResult", "tune"]

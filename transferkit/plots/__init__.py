"""The figures a fine-tuning run produces, as matplotlib figures and PNG files.

Every function returns a `matplotlib.figure.Figure` drawn by Agg (no pyplot,
no change to your backend) and, given `path`, also saves it as a PNG.

```python
import transferkit as tk
history = ft.fit("data/train", epochs=6)
tk.plots.plot_history(history, "runs/cats/history.png")
report = ft.evaluate("data/test")
tk.plots.plot_confusion_matrix(report.confusion_matrix, "runs/cats/confusion.png")
tk.plots.plot_predictions(None, report.predictions, "runs/cats/mistakes.png")
```
"""

from transferkit.plots.calibration import plot_reliability_diagram
from transferkit.plots.confusion import plot_confusion_matrix
from transferkit.plots.gradcam import plot_gradcam, plot_top_losses
from transferkit.plots.history import plot_history
from transferkit.plots.lr_find import plot_lr_find
from transferkit.plots.predictions import plot_predictions
from transferkit.plots.search import plot_search

__all__ = [
    "plot_confusion_matrix",
    "plot_gradcam",
    "plot_history",
    "plot_lr_find",
    "plot_predictions",
    "plot_reliability_diagram",
    "plot_search",
    "plot_top_losses",
]

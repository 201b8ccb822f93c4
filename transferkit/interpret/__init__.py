"""Understanding and trusting a classifier: Grad-CAM, test-time augmentation, calibration.

```python
import transferkit as tk
explanation = ft.explain("photos/")                 # where the model looked
predictions = ft.predict("photos/", tta=True)       # averaged over a mirror
result = ft.calibrate("data/val")                   # temperature scaling, kept in the model
```
"""

from transferkit.interpret.calibration import (
    THRESHOLD_METRICS,
    CalibrationResult,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    reliability_table,
)
from transferkit.interpret.gradcam import Explanation, FeatureMap, GradCAM, find_feature_map
from transferkit.interpret.thresholds import average_precision, choose_thresholds
from transferkit.interpret.tta import DEFAULT_TTA_VIEWS, TTA_VIEWS, tta_outputs

__all__ = [
    "CalibrationResult",
    "DEFAULT_TTA_VIEWS",
    "Explanation",
    "FeatureMap",
    "GradCAM",
    "THRESHOLD_METRICS",
    "TTA_VIEWS",
    "average_precision",
    "choose_threshold",
    "choose_thresholds",
    "expected_calibration_error",
    "find_feature_map",
    "fit_temperature",
    "reliability_table",
    "tta_outputs",
]

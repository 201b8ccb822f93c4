"""The run report: a readable HTML page of a training run, and its TensorBoard logs.

```python
import transferkit as tk
tk.report.write_report("runs/cats")            # runs/cats/report.html
```
"""

from transferkit.report.html import NotARunFolderError, render_report, write_report
from transferkit.report.run_folder import (
    DETAIL_FILES,
    REPORT_FILE,
    REQUIRED_FILES,
    run_summary,
    write_run_details,
)
from transferkit.report.tensorboard import LOG_FOLDER, PhaseMarker, tensorboard_callbacks

__all__ = [
    "DETAIL_FILES",
    "LOG_FOLDER",
    "NotARunFolderError",
    "PhaseMarker",
    "REPORT_FILE",
    "REQUIRED_FILES",
    "render_report",
    "run_summary",
    "tensorboard_callbacks",
    "write_report",
    "write_run_details",
]

"""The FineTuner: the composer of the recipe, and `load`."""

from transferkit.evaluation import EvaluationReport
from transferkit.finetuner.finetuner import FineTuner, load
from transferkit.training.distribution import resolve_strategy

__all__ = ["FineTuner", "load", "EvaluationReport", "resolve_strategy"]

"""The FineTuner and everything it returns."""

from transferkit.finetuner.distribution import resolve_strategy
from transferkit.finetuner.finetuner import FineTuner, load
from transferkit.finetuner.reports import EvaluationReport

__all__ = ["FineTuner", "load", "EvaluationReport", "resolve_strategy"]

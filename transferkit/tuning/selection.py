"""Choosing the winner of a search on images that played no part in the search.

The best of many trials on one validation split is optimistic: part of its lead
is the split's noise. So the search's finalists (the default recipe and the
best other trials at full budget) are measured again on a confirmation split,
held out of the search, and the default recipe keeps its place unless a
challenger beats it there clearly:

- single-label data: on the confirmation images where the two models disagree,
  the challenger must be right more often than the default by more than `z`
  standard deviations of that count under "equally good" (`b - c > z *
  sqrt(b + c)`, McNemar's paired comparison). The challenger tested is the best
  of several on these same images, so its lead is the largest of several draws:
  `z` is one-sided at `FALSE_SWITCH_RATE / challengers` (Bonferroni), so that
  when no challenger is better, the default is replaced at most that often
  whatever the number of finalists (z = 1.28 for one challenger, 1.64 for two);
- multi-label data: the challenger's mean average precision on the
  confirmation images must exceed the default's by more than
  `CLEAR_MULTI_LABEL_GAIN`.
"""

import dataclasses
import math
import statistics

import numpy as np
import pandas as pd

# How often, at most, the default is replaced when no challenger is truly better.
FALSE_SWITCH_RATE = 0.1
CLEAR_MULTI_LABEL_GAIN = 0.01


@dataclasses.dataclass
class Finalist:
    """One finalist as measured on the confirmation split."""

    trial_id: str
    default: bool
    validation: float
    confirmation: float
    correct: np.ndarray | None  # per image, single-label only


def clear_gain_z(challengers: int) -> float:
    """The standard deviations a challenger's lead must exceed, the best of `challengers`."""
    return statistics.NormalDist().inv_cdf(1 - FALSE_SWITCH_RATE / max(1, challengers))


def clear_gain(
    challenger: Finalist, default: Finalist, multi_label: bool, challengers: int = 1
) -> bool:
    """Whether `challenger` (the best of `challengers`) beats `default` beyond the noise."""
    if multi_label or challenger.correct is None or default.correct is None:
        return challenger.confirmation - default.confirmation > CLEAR_MULTI_LABEL_GAIN
    wins = int(np.sum(challenger.correct & ~default.correct))
    losses = int(np.sum(default.correct & ~challenger.correct))
    return wins - losses > clear_gain_z(challengers) * math.sqrt(wins + losses)


def choose(finalists: list[Finalist], multi_label: bool) -> Finalist:
    """The default finalist, unless the challenger best on confirmation clearly beats it."""
    challengers = sorted(
        (finalist for finalist in finalists if not finalist.default),
        key=lambda finalist: -finalist.confirmation,
    )
    default = next((finalist for finalist in finalists if finalist.default), None)
    if default is None:
        return challengers[0]
    if challengers and clear_gain(challengers[0], default, multi_label, len(challengers)):
        return challengers[0]
    return default


def finalists_frame(
    finalists: list[Finalist], chosen: Finalist, validation_metric: str, metric: str
) -> pd.DataFrame:
    """One row per finalist: its scores, its gains over the default, and which was chosen."""
    default = next((finalist for finalist in finalists if finalist.default), None)
    rows = []
    for finalist in finalists:
        row = {
            "trial_id": finalist.trial_id,
            "default": finalist.default,
            validation_metric: finalist.validation,
            f"confirmation_{metric}": finalist.confirmation,
            "validation_gain": np.nan,
            "confirmation_gain": np.nan,
            "chosen": finalist is chosen,
        }
        if default is not None:
            row["validation_gain"] = finalist.validation - default.validation
            row["confirmation_gain"] = finalist.confirmation - default.confirmation
        rows.append(row)
    return pd.DataFrame(rows)

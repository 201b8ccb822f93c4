"""Choosing the winner of a search on images that played no part in the search.

The best of many trials on one validation split is optimistic: part of its lead
is the split's noise. So the search's finalists (the default recipe and the
best other trials at full budget) are measured again on a confirmation split,
held out of the search. The challenger is named before those measurements: the
trial the search itself ranks first (its best on the objective, the default
aside). It replaces the default recipe only if it beats it there clearly:

- single-label data: on the confirmation images where the two models disagree,
  the challenger must be right more often than the default by more than
  `CLEAR_GAIN_Z` standard deviations of that count under "equally good"
  (`b - c > z * sqrt(b + c)`, McNemar's paired comparison);
- multi-label data: the challenger's mean average precision on the
  confirmation images must exceed the default's by more than
  `CLEAR_MULTI_LABEL_GAIN`.

One comparison, fixed in advance, so an equally good challenger replaces the
default one time in ten whatever the number of finalists. Picking instead the
finalist best on the confirmation images would make its lead the largest of
several draws of noise: the bar would have to rise with their number
(Bonferroni: 1.64 for two challengers), and on a few hundred images a real gain
of two points would rarely clear it. The other finalists are measured and
reported all the same.
"""

import dataclasses
import math

import numpy as np
import pandas as pd

# One-sided 90 %: an equally good challenger replaces the default one time in ten.
CLEAR_GAIN_Z = 1.28
CLEAR_MULTI_LABEL_GAIN = 0.01


@dataclasses.dataclass
class Finalist:
    """One finalist as measured on the confirmation split."""

    trial_id: str
    default: bool
    validation: float
    confirmation: float
    correct: np.ndarray | None  # per image, single-label only


def clear_gain(challenger: Finalist, default: Finalist, multi_label: bool) -> bool:
    """Whether `challenger` beats `default` on the confirmation split beyond its noise."""
    if multi_label or challenger.correct is None or default.correct is None:
        return challenger.confirmation - default.confirmation > CLEAR_MULTI_LABEL_GAIN
    wins = int(np.sum(challenger.correct & ~default.correct))
    losses = int(np.sum(default.correct & ~challenger.correct))
    return wins - losses > CLEAR_GAIN_Z * math.sqrt(wins + losses)


def choose(finalists: list[Finalist], multi_label: bool) -> Finalist:
    """The default, unless the search's own pick clearly beats it on confirmation.

    Args:
        finalists: list of `Finalist`. In the search's order: the default
            recipe (if it ran), then the other trials best first on the
            search's objective.
        multi_label: bool. Whether to compare mean average precision.

    Returns:
        The chosen `Finalist`. Without a default recipe among them, the one
        best on the confirmation split.
    """
    default = next((finalist for finalist in finalists if finalist.default), None)
    challengers = [finalist for finalist in finalists if not finalist.default]
    if default is None:
        return max(challengers, key=lambda finalist: finalist.confirmation)
    if challengers and clear_gain(challengers[0], default, multi_label):
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

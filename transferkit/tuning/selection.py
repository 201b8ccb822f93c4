"""Choosing the winner of a search on images that played no part in the search.

The best of many trials on one validation split is optimistic: part of its lead
is the split's noise. So the search's finalists (the default recipe, the
default recipe at each larger image size, and the best other trials at full
budget) are measured again on a confirmation split, held out of the search.
Two comparisons decide:

1. The default recipe at a larger image size (`DefaultFirst`'s trials after
   the first) was named before the search began, not picked for its
   validation score, so the validation images measure it as they measure the
   default recipe (both at their best epoch there), and the confirmation
   images add to them: it replaces the default recipe when its gain over the
   default, each split's gain weighed by its images, is above zero (single-
   label: it is right on more of the validation and confirmation images
   together; multi-label: validation PR-AUC and confirmation mean average
   precision). With several larger sizes, the one with the largest such
   gain. No bar above zero: one only as good as the default is chosen about
   half the time and costs no accuracy (only the larger input's seconds),
   one slightly worse is chosen less often, and the gain of a larger input,
   a point or so, is too small to clear a bar on a few hundred images.
2. The trial the search itself ranks first among the others (its best on
   the objective, named before the confirmation images are looked at) was
   picked for its validation score, so only the confirmation images measure
   it. It replaces the winner of (1) only if it beats it there clearly:

   - single-label data: on the confirmation images where the two models
     disagree, the challenger must be right more often by more than
     `CLEAR_GAIN_Z` standard deviations of that count under "equally good"
     (`b - c > z * sqrt(b + c)`, McNemar's paired comparison);
   - multi-label data: the challenger's mean average precision on the
     confirmation images must exceed the other's by more than
     `CLEAR_MULTI_LABEL_GAIN`.

An equally good challenger replaces the winner of (1) at most one time in
ten whatever the number of finalists. Picking instead the finalist best on the
confirmation images would make its lead the largest of several draws of
noise: the bar would have to rise with their number (Bonferroni: 1.64 for two
challengers), and on a few hundred images a real gain of two points would
rarely clear it. The other finalists are measured and reported all the same.
"""

import dataclasses
import math

import numpy as np
import pandas as pd

# One-sided 90 %: an equally good challenger replaces the default one time in ten.
CLEAR_GAIN_Z = 1.28
CLEAR_MULTI_LABEL_GAIN = 0.01
# Below this a pooled gain is a tie of float rounding (one image of a million is 1e-6).
TIE = 1e-9


@dataclasses.dataclass
class Finalist:
    """One finalist as measured on the confirmation split."""

    trial_id: str
    default: bool
    validation: float
    confirmation: float
    correct: np.ndarray | None  # per image, single-label only
    anchor: bool = False  # the default recipe at a larger image size


def _paired(challenger: Finalist, incumbent: Finalist, multi_label: bool) -> bool:
    """Whether the two are compared image by image (single-label, both measured so)."""
    return not multi_label and challenger.correct is not None and incumbent.correct is not None


def disagreements(challenger: Finalist, incumbent: Finalist) -> tuple[int, int]:
    """`(wins, losses)`: confirmation images only `challenger`, only `incumbent` gets right."""
    wins = int(np.sum(challenger.correct & ~incumbent.correct))
    losses = int(np.sum(incumbent.correct & ~challenger.correct))
    return wins, losses


def wins_needed(disagreeing: int) -> int | None:
    """The fewest of `disagreeing` images a challenger must win to be clearly better.

    None when no number is enough (no image where the two disagree).
    """
    for wins in range(disagreeing + 1):
        if 2 * wins - disagreeing > CLEAR_GAIN_Z * math.sqrt(disagreeing):
            return wins
    return None


def clear_gain(challenger: Finalist, incumbent: Finalist, multi_label: bool) -> bool:
    """Whether `challenger` beats `incumbent` on the confirmation split beyond its noise."""
    if not _paired(challenger, incumbent, multi_label):
        return challenger.confirmation - incumbent.confirmation > CLEAR_MULTI_LABEL_GAIN
    wins, losses = disagreements(challenger, incumbent)
    return wins - losses > CLEAR_GAIN_Z * math.sqrt(wins + losses)


def pooled_gain(
    finalist: Finalist, default: Finalist, validation_images: int, confirmation_images: int
) -> float:
    """`finalist`'s gain over `default` on the validation and confirmation images together.

    Each split's gain weighs by its images: for accuracy, the difference in
    images right over all of them. A missing validation score, or an unknown
    number of validation images (0), leaves the confirmation split alone.
    """
    validation_gain = finalist.validation - default.validation
    confirmation_gain = finalist.confirmation - default.confirmation
    if not math.isfinite(validation_gain) or validation_images <= 0:
        return confirmation_gain
    total = validation_images + confirmation_images
    return (validation_gain * validation_images + confirmation_gain * confirmation_images) / total


def choose(
    finalists: list[Finalist],
    multi_label: bool,
    validation_images: int = 0,
    confirmation_images: int = 0,
) -> Finalist:
    """The default recipe, unless a larger image size or the search's own pick beats it.

    See the module's docstring for the two comparisons.

    Args:
        finalists: list of `Finalist`. In the search's order: the default
            recipe (if it ran), the default recipe at larger sizes
            (`anchor=True`), then the other trials best first on the
            search's objective.
        multi_label: bool. Whether to compare mean average precision.
        validation_images: int. Images of the validation split, to weigh
            its gains against the confirmation split's. Defaults to `0`
            (the confirmation split alone).
        confirmation_images: int. Images of the confirmation split.
            Defaults to `0`.

    Returns:
        The chosen `Finalist`. Without a default recipe among them, the one
        best on the confirmation split.
    """
    default = next((finalist for finalist in finalists if finalist.default), None)
    if default is None:
        return max(finalists, key=lambda finalist: finalist.confirmation)
    winner = _larger_size_winner(finalists, default, validation_images, confirmation_images)
    challengers = _challengers(finalists)
    if challengers and clear_gain(challengers[0], winner, multi_label):
        return challengers[0]
    return winner


def _challengers(finalists: list[Finalist]) -> list[Finalist]:
    return [finalist for finalist in finalists if not finalist.default and not finalist.anchor]


def _larger_size_winner(
    finalists: list[Finalist], default: Finalist, validation_images: int, confirmation_images: int
) -> Finalist:
    """Comparison (1): the default recipe, or the larger size with the largest pooled gain."""
    anchors = [finalist for finalist in finalists if finalist.anchor]
    if anchors:
        gains = [
            pooled_gain(anchor, default, validation_images, confirmation_images)
            for anchor in anchors
        ]
        if max(gains) > TIE:
            return anchors[int(np.argmax(gains))]
    return default


def reasons(
    finalists: list[Finalist],
    multi_label: bool,
    validation_images: int = 0,
    confirmation_images: int = 0,
    chosen: Finalist | None = None,
) -> dict[str, str]:
    """Why `choose` kept or passed over each finalist, in a line each, by trial id.

    Args:
        finalists: list of `Finalist`. As `choose` takes them.
        multi_label: bool. As for `choose`.
        validation_images: int. As for `choose`. Defaults to `0`.
        confirmation_images: int. As for `choose`. Defaults to `0`.
        chosen: `Finalist` or None. What `choose` chose among them, when the
            caller has it already; `None` chooses again. Defaults to `None`.

    Returns:
        A dict: trial id -> the reason, e.g. `"not clearly better than trial 00: right
        on 3 of the 5 confirmation images where they disagree (4 needed)"`.
    """
    if chosen is None:
        chosen = choose(finalists, multi_label, validation_images, confirmation_images)
    default = next((finalist for finalist in finalists if finalist.default), None)
    if default is None:
        return {
            finalist.trial_id: (
                "the best on the confirmation images (no default recipe to compare with)"
                if finalist is chosen
                else f"below trial {chosen.trial_id} on the confirmation images"
            )
            for finalist in finalists
        }
    incumbent = _larger_size_winner(finalists, default, validation_images, confirmation_images)
    challengers = _challengers(finalists)
    said = {}
    for finalist in finalists:
        if finalist.default and finalist is chosen:
            said[finalist.trial_id] = "the default recipe, kept: no finalist beat it"
        elif finalist.default:
            said[finalist.trial_id] = "the default recipe" + (
                "" if incumbent is finalist else f", passed over for trial {incumbent.trial_id}"
            )
        elif finalist.anchor:
            gain = pooled_gain(finalist, default, validation_images, confirmation_images)
            pooled = validation_images > 0 and math.isfinite(
                finalist.validation - default.validation
            )
            images = validation_images + confirmation_images if pooled else confirmation_images
            where = "validation and confirmation images" if pooled else "confirmation images"
            net = round(gain * images)
            if multi_label or not images:
                how = f"a gain of {gain:+.4f} over the default recipe"
            elif net:
                more = "more" if net > 0 else "fewer"
                how = f"right on {abs(net)} {more} of the {images} {where} than the default recipe"
            else:
                how = f"right on as many of the {images} {where} as the default recipe"
            if finalist is incumbent:
                said[finalist.trial_id] = f"the default recipe at a larger size, {how}"
            elif gain > TIE:
                said[finalist.trial_id] = f"{how}, less than trial {incumbent.trial_id}"
            else:
                said[finalist.trial_id] = f"not chosen: {how}"
        elif finalist is challengers[0]:
            said[finalist.trial_id] = _challenger_reason(finalist, incumbent, multi_label)
        else:
            said[finalist.trial_id] = (
                f"measured only: the search's own pick, trial {challengers[0].trial_id}, is "
                "the one compared"
            )
    if challengers and chosen is challengers[0]:
        replaced = said[incumbent.trial_id]
        said[incumbent.trial_id] = f"{replaced}; replaced by trial {chosen.trial_id}"
    return said


def _challenger_reason(challenger: Finalist, incumbent: Finalist, multi_label: bool) -> str:
    """Comparison (2) in words: the search's own pick against the winner of (1)."""
    clear = clear_gain(challenger, incumbent, multi_label)
    verdict = "clearly better" if clear else "not clearly better"
    if not _paired(challenger, incumbent, multi_label):
        gain = challenger.confirmation - incumbent.confirmation
        return (
            f"{verdict} than trial {incumbent.trial_id}: {gain:+.4f} confirmation mean "
            f"average precision (more than +{CLEAR_MULTI_LABEL_GAIN:g} needed)"
        )
    wins, losses = disagreements(challenger, incumbent)
    disagreeing = wins + losses
    if not disagreeing:
        return (
            f"{verdict} than trial {incumbent.trial_id}: right and wrong on the same "
            "confirmation images"
        )
    needed = wins_needed(disagreeing)
    return (
        f"{verdict} than trial {incumbent.trial_id}: right on {wins} of the {disagreeing} "
        f"confirmation images where they disagree ({needed} needed)"
    )


def finalists_frame(
    finalists: list[Finalist],
    chosen: Finalist,
    validation_metric: str,
    metric: str,
    why: dict[str, str] | None = None,
) -> pd.DataFrame:
    """One row per finalist: its scores, its gains over the default, which was chosen, and why.

    `why` is `reasons(...)`; without it the `reason` column is empty.
    """
    default = next((finalist for finalist in finalists if finalist.default), None)
    rows = []
    for finalist in finalists:
        row = {
            "trial_id": finalist.trial_id,
            "default": finalist.default,
            "anchor": finalist.anchor,
            validation_metric: finalist.validation,
            f"confirmation_{metric}": finalist.confirmation,
            "validation_gain": np.nan,
            "confirmation_gain": np.nan,
            "chosen": finalist is chosen,
            "reason": (why or {}).get(finalist.trial_id, ""),
        }
        if default is not None:
            row["validation_gain"] = finalist.validation - default.validation
            row["confirmation_gain"] = finalist.confirmation - default.confirmation
        rows.append(row)
    return pd.DataFrame(rows)

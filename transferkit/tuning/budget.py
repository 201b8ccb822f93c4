"""What `tune` adds to any KerasTuner tuner: the default recipe first, and a time budget.

Both are small subclasses of KerasTuner's own classes, made for the tuner class
the user chose (`keras_tuner.RandomSearch`, `Hyperband`, ... or their own), so
the search loop, the oracle's choices and the records stay KerasTuner's:

- `DefaultFirst` (an oracle mixin): the first values an oracle draws are every
  hyperparameter's default, i.e. the default recipe, so trial one of every
  search is what `FineTuner` does when left alone; when the image size is
  searched, the default recipe at each larger size follows;
- `TimeBudget` (a tuner mixin): before each new trial, the tuner stops the
  search when the time left cannot pay for another trial (the mean of the
  trials so far, scaled to the next trial's image size when it is known),
  and a trial still running when the budget ends is stopped and recorded as
  failed with that reason.
"""

import time

import keras
import keras_tuner
from keras_tuner.engine import hyperparameters as hp_module

# Subclasses made once per (mixin, class), so a resumed search or a second search reuses them.
_MIXED_IN = {}


def mixed_in(mixin: type, cls: type) -> type:
    """`cls` with `mixin` in front, named like `cls` (the same class for the same pair)."""
    if issubclass(cls, mixin):
        return cls
    if (mixin, cls) not in _MIXED_IN:
        _MIXED_IN[mixin, cls] = type(cls.__name__, (mixin, cls), {})
    return _MIXED_IN[mixin, cls]


class DefaultFirst:
    """Oracle mixin: the default recipe first, then the default recipe at each larger size.

    Trial one is every hyperparameter's default (the default recipe). When the
    image size is searched, the next trials are the default recipe at each
    image size larger than the default one, smallest first: an ImageNet
    backbone sees small photos better when they are enlarged towards the size
    it was trained at, so the same recipe on more pixels is the first thing a
    larger budget should try (see `transferkit.tuning.space.image_sizes`).
    The random draws come after them.

    These trials run at full budget whatever the oracle: Hyperband's brackets
    start after them (they carry no `tuner/epochs`, so they train every
    epoch), and the oracle records their values, so no later trial repeats
    them.
    """

    def populate_space(self, trial_id):
        values = self.next_anchor()
        # Skipped if already tried (e.g. the user's own tuner drew it).
        if values is not None and not self._duplicate(values):
            return {"status": "RUNNING", "values": values}
        return super().populate_space(trial_id)

    def next_anchor(self) -> dict | None:
        """The values of the next trial if it is one drawn before the random ones, else None."""
        anchors = self.anchor_values()
        return anchors[len(self.trials)] if len(self.trials) < len(anchors) else None

    def anchor_values(self) -> list[dict]:
        """The values of the trials drawn before any random one, in order."""
        hps = hp_module.HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if hps.is_active(hp):
                hps.values[hp.name] = hp.default
        default = dict(hps.values)
        size = next((hp for hp in self.hyperparameters.space if hp.name == "image_size"), None)
        return [default, *at_larger_sizes(default, size)]


def at_larger_sizes(default: dict, size) -> list[dict]:
    """The default recipe's values at each larger image size a search tries, smallest first.

    Args:
        default: dict. The default recipe's values.
        size: the `image_size` hyperparameter, or None. Only a `Choice` lists
            larger sizes.
    """
    if not isinstance(size, hp_module.Choice) or "image_size" not in default:
        return []
    larger = sorted(value for value in size.values if value > default["image_size"])
    return [dict(default, image_size=value) for value in larger]


def default_first(oracle) -> None:
    """Makes `oracle` (KerasTuner's, in this process) draw the default values first.

    An oracle is built inside its tuner's constructor, so its class is changed
    to a subclass that adds `DefaultFirst`; its state and records are untouched.
    A worker's oracle is the chief's, served over the network: left alone.
    """
    if not isinstance(oracle, keras_tuner.Oracle):
        return
    if isinstance(oracle, keras_tuner.oracles.GridSearchOracle):
        return  # a grid starts from the defaults already
    oracle.__class__ = mixed_in(DefaultFirst, type(oracle))


class BudgetExhausted(keras_tuner.errors.FailedTrialError):
    """Raised inside a trial still running when the search's time budget ends."""


class StopAtDeadline(keras.callbacks.Callback):
    """Fails the trial (KerasTuner records why) when `deadline` (`time.perf_counter`) passes."""

    def __init__(self, deadline: float, time_budget: float):
        super().__init__()
        self.deadline = deadline
        self.time_budget = time_budget

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() > self.deadline:
            raise BudgetExhausted(
                f"the search's time_budget of {self.time_budget:g} s ran out during this trial"
            )


class TimeBudget:
    """Tuner mixin: start a trial only while the time budget can pay for it.

    Attributes:
        time_budget: float or None. Seconds for the whole search.
        stopped_by_budget: bool. Whether the budget ended the search (rather
            than `max_trials` or the oracle).
    """

    time_budget = None
    stopped_by_budget = False
    search_started = None

    def on_search_begin(self):
        super().on_search_begin()
        self.search_started = time.perf_counter()
        self.stopped_by_budget = False
        if self.time_budget is not None:
            self.hypermodel.deadline = self.search_started + self.time_budget
            self.hypermodel.time_budget = self.time_budget

    def pre_create_trial(self):
        super().pre_create_trial()
        if self.time_budget is None or not self.oracle.trials:
            return
        elapsed = time.perf_counter() - self.search_started
        estimate = self.next_trial_seconds()
        if elapsed + estimate > self.time_budget or elapsed >= self.time_budget:
            # KerasTuner's own stop: an oracle hands out no trial beyond max_trials.
            self.oracle.max_trials = len(self.oracle.trials)
            self.stopped_by_budget = True

    def next_trial_seconds(self) -> float:
        """What the next trial should cost: the mean of the completed trials.

        When the next trial's image size is known in advance (the default
        recipe at a larger size, see `DefaultFirst`), each trial's seconds are
        scaled by the ratio of the images' pixels first.
        """
        next_anchor = getattr(self.oracle, "next_anchor", None)
        size = (next_anchor() or {}).get("image_size") if next_anchor else None
        costs = []
        for trial in self.oracle.trials.values():
            if trial.status != "COMPLETED" or not trial.metrics.exists("seconds"):
                continue
            seconds = trial.metrics.get_last_value("seconds")
            ran_at = trial.hyperparameters.values.get("image_size")
            if size and ran_at:
                seconds *= (size / ran_at) ** 2
            costs.append(seconds)
        return sum(costs) / len(costs) if costs else 0.0

    def on_search_end(self):
        super().on_search_end()
        self.hypermodel.deadline = None


def budgeted(tuner_class: type) -> type:
    """`tuner_class` with `TimeBudget` mixed in (the same class for the same input)."""
    return mixed_in(TimeBudget, tuner_class)

"""`NearDefault`: random draws that change a few hyperparameters of the default recipe.

Plain random search draws every hyperparameter afresh, so each trial differs
from the default recipe in ten things at once and is mostly worse: one bad
value (a tiny fine-tuning rate, no unfreezing) sinks the others. Near the
default, each hyperparameter of a draw is drawn at random with probability
`change_rate` and otherwise keeps its default, so a trial is the default recipe
with two or three changes (about 11 hyperparameters vary in the default space:
0.25 changes 2.75 of them on average), and a change that helps is not hidden by
others that hurt. `change_rate=1` is plain random search.

The mixin replaces `Oracle._random_values`, which KerasTuner's random search,
Hyperband (each new bracket's candidates) and Bayesian optimisation (its first,
random points) draw from; KerasTuner's seed state, its duplicate check and its
stop when no new values can be found stay as they are.
"""

import random

import keras_tuner
from keras_tuner.engine import hyperparameters as hp_module

from transferkit.tuning.budget import mixed_in


class NearDefault:
    """Oracle mixin: each hyperparameter is drawn with probability `change_rate`, else default.

    Attributes:
        change_rate: float in (0, 1]. The chance that a draw changes each
            hyperparameter; 1 draws every one (plain random search).
    """

    change_rate = 1.0

    def _random_values(self):
        if self.change_rate >= 1:
            return super()._random_values()
        collisions = 0
        while True:
            rng = self._draw_random_state()
            hps = hp_module.HyperParameters()
            for hp in self.hyperparameters.space:
                hps.merge([hp])
                if not hps.is_active(hp):  # only active ones go in `values`
                    continue
                if rng.random() < self.change_rate:
                    hps.values[hp.name] = hp.random_sample(rng.randrange(2**32))
                else:
                    hps.values[hp.name] = hp.default
            if not self._duplicate(hps.values):
                return hps.values
            # The default itself, or a draw already tried: KerasTuner's own rule.
            collisions += 1
            if collisions > self._max_collisions:
                return None

    def _draw_random_state(self) -> random.Random:
        """A generator for one draw, from the oracle's seed and its count of draws.

        KerasTuner seeds each value with the running integer `_seed_state`, so
        the draws of two oracles whose seeds differ by one are shifted copies of
        each other, and a draw that uses one number more or fewer (a change or
        not) can make them the same from then on. Hashing the seed and the count
        together (Python seeds a string through SHA-512) keeps the draws of
        different seeds apart, and the search reproducible and resumable (the
        count is `_seed_state`, which the oracle saves).
        """
        rng = random.Random(f"{self.seed}/{self._seed_state}")
        self._seed_state += 1
        return rng


def near_default(oracle, change_rate: float) -> None:
    """Makes `oracle` (KerasTuner's, in this process) draw near the default values.

    Like `transferkit.tuning.budget.default_first`, it changes the oracle's class
    to a subclass that adds `NearDefault`, leaving its state and records alone;
    a worker's oracle (a client of the chief's) is left alone.
    """
    if not isinstance(oracle, keras_tuner.Oracle):
        return
    oracle.__class__ = mixed_in(NearDefault, type(oracle))
    oracle.change_rate = float(change_rate)

"""The base of every fine-tuning schedule, and the phases a schedule plans."""

import dataclasses
import inspect
import json

import keras

from transferkit import defaults


@dataclasses.dataclass(frozen=True)
class Phase:
    """A stretch of epochs during which the same part of the backbone trains.

    Args:
        name: str. Shown in the log and in the history, e.g. `"frozen"`.
        start_epoch: int. First epoch of the phase (0-based).
        end_epoch: int. Epoch after the last one of the phase.
        trainable_blocks: int or None. How many blocks of the backbone train,
            counted from the top: `0` keeps the backbone frozen, `None` trains
            all of it.
        learning_rate: float. Peak learning rate of the head in this phase; the
            backbone's blocks get it times their multiplier.
    """

    name: str
    start_epoch: int
    end_epoch: int
    trainable_blocks: int | None
    learning_rate: float

    @property
    def epochs(self) -> int:
        """Number of epochs in the phase."""
        return self.end_epoch - self.start_epoch

    @property
    def frozen(self) -> bool:
        """Whether the whole backbone stays frozen in this phase."""
        return self.trainable_blocks == 0


def check_positive(name: str, value) -> float:
    """Returns `value` as a float, or raises if it is not a number > 0."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"`{name}` must be a number > 0. Received: {name}={value!r}")
    return float(value)


def check_warmup(warmup) -> float:
    """Returns `warmup` as a float, or raises if it is not in [0, 1)."""
    if not isinstance(warmup, (int, float)) or isinstance(warmup, bool) or not 0 <= warmup < 1:
        raise ValueError(f"`warmup` must be a number in [0, 1). Received: warmup={warmup!r}")
    return float(warmup)


def check_multiplier(lowest_block_multiplier) -> float:
    """Returns the lowest block's learning-rate multiplier, or raises if not in (0, 1]."""
    value = lowest_block_multiplier
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 1:
        raise ValueError(
            "`lowest_block_multiplier` multiplies the head's learning rate for the lowest "
            "trainable backbone block, so it must be in (0, 1] (1 trains every block at the "
            f"head's rate). Received: lowest_block_multiplier={value!r}"
        )
    return float(value)


def block_multipliers(num_trainable: int, lowest_block_multiplier: float) -> list[float]:
    """Geometric learning-rate multipliers of `num_trainable` blocks, from the top down.

    The lowest block gets `lowest_block_multiplier` and the top one
    `lowest_block_multiplier ** (1 / num_trainable)`.
    """
    if num_trainable <= 0:
        return []
    lowest = lowest_block_multiplier
    return [lowest ** ((rank + 1) / num_trainable) for rank in range(num_trainable)]


def reject_unused(schedule_class: type, kwargs: dict, why: str) -> None:
    """Raises for arguments a schedule does not use, rather than ignoring them.

    Args:
        schedule_class: The schedule's class (`type(self)`).
        kwargs: dict. The arguments it received but does not take.
        why: str. Why it does not use `Schedule`'s arguments among them.
    """
    if not kwargs:
        return
    known = set(argument_names(Schedule))
    reason = why if set(kwargs) <= known else "unknown argument(s)"
    raise ValueError(
        f"{schedule_class.__name__} does not take {sorted(kwargs)}: {reason}. It takes "
        f"{argument_names(schedule_class)}. Received: "
        + ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
    )


def argument_names(schedule_class: type) -> list[str]:
    """The arguments a schedule class takes.

    A subclass's `**kwargs` is taken to pass its parent's arguments on (the next
    class in its MRO that defines `__init__`); a built-in schedule that refuses
    the ones it does not use names its catch-all `**unused`.
    """
    names, forwards = [], False
    for name, parameter in inspect.signature(schedule_class).parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            forwards = name != "unused"
        elif parameter.kind is not inspect.Parameter.VAR_POSITIONAL:
            names.append(name)
    if forwards:
        defining = [cls for cls in schedule_class.__mro__ if "__init__" in vars(cls)]
        parent = next((cls for cls in defining[1:] if issubclass(cls, Schedule)), None)
        if parent is not None:
            names += [name for name in argument_names(parent) if name not in names]
    return names


def upgrade_config(schedule_class: type, config: dict) -> dict:
    """Translates a schedule config saved by transferkit 0.1 into today's arguments.

    0.1 stored `lr_mult` (how many times slower the lowest block learned than the
    head; today's `lowest_block_multiplier` is its reciprocal), every rate on every
    schedule (today a schedule takes only those it uses), and
    `fine_tune_learning_rate=None` for the default.
    """
    config = dict(config)
    if "lr_mult" not in config:
        return config
    config["lowest_block_multiplier"] = 1.0 / float(config.pop("lr_mult"))
    if config.get("fine_tune_learning_rate", 0) is None:
        config.pop("fine_tune_learning_rate")
    taken = argument_names(schedule_class)
    return {key: value for key, value in config.items() if key in taken}


class Schedule:
    """Base class of fine-tuning schedules: which blocks train in which epochs.

    A schedule plans the run as a list of `Phase`s. `FineTuner.fit` runs them
    in order, changing `trainable` and recompiling (and saying so in the log)
    at each phase boundary, with a warm-up then cosine learning rate inside
    each phase. Subclasses override `phases()`; everything else (learning
    rates, BatchNorm handling, serialization) is shared. A built-in schedule
    takes only the arguments it uses: `Freeze` has no fine-tuning rate,
    `NoFreeze` no frozen-phase rate, and passing one is an error.

    Args:
        learning_rate: float. Peak learning rate of the head while the backbone
            is frozen. A new head on fixed features is a small, well-behaved
            problem: at `1e-2` a linear head reached in one epoch what it needed
            five epochs for at `1e-3` (`python -m bench.head_learning_rate`).
            Defaults to `1e-2`.
        fine_tune_learning_rate: float. Peak learning rate of the head once
            backbone blocks train (the blocks get it times their multiplier). It
            does not follow `learning_rate`: how fast pretrained weights may move
            does not depend on how fast a new head learns. Defaults to `1e-4`.
        lowest_block_multiplier: float. Learning-rate multiplier, in `(0, 1]`, of
            the lowest trainable backbone block: it learns at
            `fine_tune_learning_rate * lowest_block_multiplier`, and the blocks
            above it at multipliers spread geometrically up to the head's 1
            (discriminative learning rates, as in fastai). `1` trains every
            layer at the same rate. Defaults to `0.1`.
        train_bn: bool. Whether BatchNorm layers of unfrozen blocks update their
            statistics and parameters. The Keras guide (and transferkit by
            default) keeps them in inference mode. Defaults to `False`.
        warmup: float. Fraction of each phase's steps spent warming the learning
            rate up before the cosine decay. Defaults to `0.1`.

    Example:

    >>> class HeadThenTop3(Schedule):
    ...     def phases(self, epochs):
    ...         return [
    ...             Phase("frozen", 0, 1, 0, self.learning_rate),
    ...             Phase("top 3 blocks", 1, epochs, 3, self.fine_tune_learning_rate),
    ...         ]
    """

    # What a step of unfreezing counts. `GradualUnfreeze` can count layers instead.
    unit = "blocks"

    def __init__(
        self,
        learning_rate: float = defaults.LEARNING_RATE,
        fine_tune_learning_rate: float = defaults.FINE_TUNE_LEARNING_RATE,
        lowest_block_multiplier: float = defaults.LOWEST_BLOCK_MULTIPLIER,
        train_bn: bool = False,
        warmup: float = defaults.WARMUP,
    ):
        self.learning_rate = check_positive("learning_rate", learning_rate)
        self.fine_tune_learning_rate = check_positive(
            "fine_tune_learning_rate", fine_tune_learning_rate
        )
        self.lowest_block_multiplier = check_multiplier(lowest_block_multiplier)
        self.train_bn = bool(train_bn)
        self.warmup = check_warmup(warmup)

    def phases(self, epochs: int) -> list[Phase]:
        """Plans a run of `epochs` epochs. Override this in a subclass.

        Args:
            epochs: int. Total number of epochs of the run.

        Returns:
            A list of `Phase`s that covers epochs `0` to `epochs` without gaps.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement `phases(epochs)`.")

    def plan(self, epochs: int) -> list[Phase]:
        """Validates `epochs`, asks `phases()` for the plan and checks it."""
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"`epochs` must be an integer >= 1. Received: epochs={epochs!r}")
        phases = [phase for phase in self.phases(epochs) if phase.epochs > 0]
        expected = 0
        for phase in phases:
            if phase.start_epoch != expected:
                raise ValueError(
                    f"{type(self).__name__}.phases({epochs}) left a gap or overlap at epoch "
                    f"{expected}: {phases}"
                )
            expected = phase.end_epoch
        if expected != epochs:
            raise ValueError(
                f"{type(self).__name__}.phases({epochs}) covers {expected} epochs, not {epochs}."
            )
        return phases

    def block_multipliers(self, num_trainable: int) -> list[float]:
        """Learning-rate multipliers of the trainable blocks, from the top block down.

        The lowest of `n` trainable blocks gets `lowest_block_multiplier` and the
        top one `lowest_block_multiplier ** (1 / n)`, so rates fall geometrically
        from the head's into the backbone.
        """
        return block_multipliers(num_trainable, self.lowest_block_multiplier)

    def learning_rate_schedule(self, phase: Phase, steps_per_epoch: int):
        """The learning rate over one phase: linear warm-up, then cosine decay.

        Returns:
            A `keras.optimizers.schedules.CosineDecay` peaking at
            `phase.learning_rate`.
        """
        total = max(1, phase.epochs * max(1, int(steps_per_epoch)))
        warmup_steps = int(total * self.warmup)
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=phase.learning_rate / 10
            if warmup_steps
            else phase.learning_rate,
            decay_steps=max(1, total - warmup_steps),
            alpha=0.01,
            warmup_target=phase.learning_rate if warmup_steps else None,
            warmup_steps=warmup_steps,
        )

    def get_config(self) -> dict:
        """The schedule's constructor arguments: exactly those its class takes."""
        return {name: getattr(self, name) for name in argument_names(type(self))}

    @classmethod
    def from_config(cls, config: dict):
        """Rebuilds a schedule from `get_config()`, also from a transferkit 0.1 config."""
        return cls(**upgrade_config(cls, config))

    def __repr__(self):
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self), json.dumps(self.get_config(), sort_keys=True, default=repr)))

"""The base of every fine-tuning schedule, and the phases a schedule plans."""

import dataclasses

import keras


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


DEFAULT_FINE_TUNE_LEARNING_RATE = 1e-4


def _check_positive(name, value, allow_zero=False):
    low_ok = value >= 0 if allow_zero else value > 0
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low_ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be a number {bound}. Received: {name}={value!r}")


class Schedule:
    """Base class of fine-tuning schedules: which blocks train in which epochs.

    A schedule plans the run as a list of `Phase`s. `FineTuner.fit` runs them
    in order, changing `trainable` and recompiling (and saying so in the log)
    at each phase boundary, with a warm-up then cosine learning rate inside
    each phase. Subclasses override `phases()`; everything else (learning
    rates, BatchNorm handling, serialization) is shared.

    Args:
        learning_rate: float. Peak learning rate of the head while the backbone
            is frozen. A new head on fixed features is a small, well-behaved
            problem: at `1e-2` a linear head reached in one epoch what it needed
            five epochs for at `1e-3` (`bench/head_learning_rate.py`, see the
            docs' home page). Defaults to `1e-2`.
        fine_tune_learning_rate: float. Peak learning rate of the head once
            backbone blocks train (the blocks get it times their multiplier). It
            does not follow `learning_rate`: how fast pretrained weights may move
            does not depend on how fast a new head learns. `None` means the
            default. Defaults to `1e-4`.
        lr_mult: float. Ratio between the head's learning rate and that of the
            lowest trainable backbone block; the blocks in between get rates
            spread geometrically (discriminative learning rates, as in fastai).
            `1` trains every layer at the same rate. Defaults to `10`.
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

    def __init__(
        self,
        learning_rate: float = 1e-2,
        fine_tune_learning_rate: float | None = 1e-4,
        lr_mult: float = 10.0,
        train_bn: bool = False,
        warmup: float = 0.1,
    ):
        _check_positive("learning_rate", learning_rate)
        if fine_tune_learning_rate is not None:
            _check_positive("fine_tune_learning_rate", fine_tune_learning_rate)
        _check_positive("lr_mult", lr_mult)
        if lr_mult < 1:
            raise ValueError(
                "`lr_mult` is how many times slower the lowest backbone block learns than the "
                f"head, so it must be >= 1. Received: lr_mult={lr_mult}"
            )
        if not 0 <= warmup < 1:
            raise ValueError(f"`warmup` must be in [0, 1). Received: warmup={warmup}")
        self.learning_rate = float(learning_rate)
        # None (which configs saved by earlier versions hold) means the default.
        self.fine_tune_learning_rate = float(
            DEFAULT_FINE_TUNE_LEARNING_RATE
            if fine_tune_learning_rate is None
            else fine_tune_learning_rate
        )
        self.lr_mult = float(lr_mult)
        self.train_bn = bool(train_bn)
        self.warmup = float(warmup)

    @property
    def unfrozen_learning_rate(self) -> float:
        """Peak learning rate of the head once the backbone trains."""
        return self.fine_tune_learning_rate

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

        The top block gets `lr_mult ** (-1 / n)` and the lowest `1 / lr_mult`, so
        rates fall geometrically from the head's into the backbone.
        """
        if num_trainable <= 0:
            return []
        return [self.lr_mult ** (-(rank + 1) / num_trainable) for rank in range(num_trainable)]

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
        return {
            "learning_rate": self.learning_rate,
            "fine_tune_learning_rate": self.fine_tune_learning_rate,
            "lr_mult": self.lr_mult,
            "train_bn": self.train_bn,
            "warmup": self.warmup,
        }

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

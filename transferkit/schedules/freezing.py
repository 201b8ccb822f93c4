"""The built-in schedules: from a linear probe to gradual unfreezing.

Each takes only the arguments it uses: a schedule that never unfreezes has no
fine-tuning rate, one that never freezes no frozen-phase rate.
"""

import dataclasses
from collections.abc import Sequence

import keras

from transferkit import defaults
from transferkit.schedules.base import (
    Phase,
    Schedule,
    check_multiplier,
    check_positive,
    check_warmup,
    reject_unused,
)


def _check_epochs(name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")


@keras.saving.register_keras_serializable(package="transferkit")
class NoFreeze(Schedule):
    """Trains the whole network from the first epoch.

    There is no frozen phase, so there is no frozen-phase `learning_rate`: the
    head trains at `fine_tune_learning_rate` throughout.

    Args:
        fine_tune_learning_rate: float. Peak learning rate of the head; the
            backbone's blocks get it times their multiplier. Defaults to `1e-4`.
        lowest_block_multiplier: float. As in `Schedule`. Defaults to `0.1`.
        train_bn: bool. As in `Schedule`. Defaults to `False`.
        warmup: float. As in `Schedule`. Defaults to `0.1`.
    """

    def __init__(
        self,
        fine_tune_learning_rate: float = defaults.FINE_TUNE_LEARNING_RATE,
        lowest_block_multiplier: float = defaults.LOWEST_BLOCK_MULTIPLIER,
        train_bn: bool = False,
        warmup: float = defaults.WARMUP,
        **unused,
    ):
        reject_unused(type(self), unused, "it never freezes the backbone")
        self.fine_tune_learning_rate = check_positive(
            "fine_tune_learning_rate", fine_tune_learning_rate
        )
        self.lowest_block_multiplier = check_multiplier(lowest_block_multiplier)
        self.train_bn = bool(train_bn)
        self.warmup = check_warmup(warmup)

    def phases(self, epochs):
        return [Phase("unfrozen", 0, epochs, None, self.fine_tune_learning_rate)]


@keras.saving.register_keras_serializable(package="transferkit")
class Freeze(Schedule):
    """Keeps the backbone frozen for the whole run: only the head trains (a linear probe).

    With the backbone frozen, `FineTuner` computes its features once and
    trains the head on them, which costs a small fraction of a normal epoch.
    Nothing of the backbone ever trains, so there is no fine-tuning rate,
    multiplier or BatchNorm option.

    Args:
        learning_rate: float. Peak learning rate of the head. Defaults to `1e-2`.
        warmup: float. As in `Schedule`. Defaults to `0.1`.
    """

    # The backbone never trains, so neither does its BatchNorm.
    train_bn = False

    def __init__(
        self,
        learning_rate: float = defaults.LEARNING_RATE,
        warmup: float = defaults.WARMUP,
        **unused,
    ):
        reject_unused(type(self), unused, "it never unfreezes the backbone")
        self.learning_rate = check_positive("learning_rate", learning_rate)
        self.warmup = check_warmup(warmup)

    def phases(self, epochs):
        return [Phase("frozen", 0, epochs, 0, self.learning_rate)]


@keras.saving.register_keras_serializable(package="transferkit")
class FreezeUnfreeze(Schedule):
    """transferkit's default: warm the head up on a frozen backbone, then unfreeze.

    As fastai's `fine_tune`: the new head first learns on a frozen backbone, so
    its random gradients never reach the pretrained weights; then the backbone
    (or its top `unfreeze_blocks` blocks) trains too, at discriminative
    learning rates that fall from the head into the backbone, with BatchNorm in
    inference mode.

    The warm-up runs on cached backbone features (see `FineTuner`): one pass
    of the backbone over the data, then head epochs that cost about a second
    each. At the default head learning rate (`1e-2`) one warm-up epoch is
    enough. A FreezeUnfreeze run of two epochs or more always fine-tunes: when
    `epochs` does not leave room for `frozen_epochs`, the warm-up is shortened so
    that the last epoch trains the backbone (a one-epoch run stays frozen: a random
    head must not train the backbone). Use `Freeze` for a head-only run.

    Args:
        frozen_epochs: int. Epochs of head warm-up with the backbone frozen.
            Defaults to `1`.
        unfreeze_blocks: int or None. How many blocks, from the top, train after
            the warm-up; `None` unfreezes the whole backbone. Defaults to `None`.
        learning_rate: float. As in `Schedule`. Defaults to `1e-2`.
        fine_tune_learning_rate: float. As in `Schedule`. Defaults to `1e-4`.
        lowest_block_multiplier: float. As in `Schedule`. Defaults to `0.1`.
        train_bn: bool. As in `Schedule`. Defaults to `False`.
        warmup: float. As in `Schedule`. Defaults to `0.1`.

    Example:

    >>> FreezeUnfreeze(frozen_epochs=2).plan(5)[1]
    Phase(name='unfrozen', start_epoch=2, end_epoch=5, trainable_blocks=None, learning_rate=0.0001)
    >>> FreezeUnfreeze(frozen_epochs=3).plan(2)[0]  # shortened: the last epoch fine-tunes
    Phase(name='frozen', start_epoch=0, end_epoch=1, trainable_blocks=0, learning_rate=0.01)
    """

    def __init__(
        self,
        frozen_epochs: int = defaults.FROZEN_EPOCHS,
        unfreeze_blocks: int | None = None,
        learning_rate: float = defaults.LEARNING_RATE,
        fine_tune_learning_rate: float = defaults.FINE_TUNE_LEARNING_RATE,
        lowest_block_multiplier: float = defaults.LOWEST_BLOCK_MULTIPLIER,
        train_bn: bool = False,
        warmup: float = defaults.WARMUP,
    ):
        super().__init__(
            learning_rate=learning_rate,
            fine_tune_learning_rate=fine_tune_learning_rate,
            lowest_block_multiplier=lowest_block_multiplier,
            train_bn=train_bn,
            warmup=warmup,
        )
        _check_epochs("frozen_epochs", frozen_epochs)
        if unfreeze_blocks is not None:
            _check_epochs("unfreeze_blocks", unfreeze_blocks, minimum=1)
        self.frozen_epochs = frozen_epochs
        self.unfreeze_blocks = unfreeze_blocks

    def phases(self, epochs):
        split = min(self.frozen_epochs, max(epochs - 1, 1))
        name = "unfrozen" if self.unfreeze_blocks is None else f"top {self.unfreeze_blocks} blocks"
        return [
            Phase("frozen", 0, split, 0, self.learning_rate),
            Phase(name, split, epochs, self.unfreeze_blocks, self.fine_tune_learning_rate),
        ]


@keras.saving.register_keras_serializable(package="transferkit")
class GradualUnfreeze(Schedule):
    """Unfreezes the backbone from the top down, a few blocks at a time.

    Blocks follow the backbone's real structure (a residual block of ResNet,
    an inverted-residual block of MobileNetV2, a `mixed` block of Inception; see
    `transferkit.schedules.backbone_blocks`), so a step never cuts a block in
    half. With `unit="layers"` a step counts layers with weights instead.

    Args:
        frozen_epochs: int. Epochs of head warm-up before the first step.
            Defaults to `1`.
        blocks_per_step: int. Blocks (or layers) added at each step. Defaults
            to `1`.
        epochs_per_step: int. Epochs between steps. Defaults to `1`.
        unfreeze_at: sequence of int or None. Explicit epochs at which the steps
            happen, instead of `frozen_epochs` and `epochs_per_step`. Defaults
            to `None`.
        max_blocks: int or None. Stop unfreezing at this many blocks; `None`
            goes on until the whole backbone trains. Defaults to `None`.
        unit: str. `"blocks"` or `"layers"`. Defaults to `"blocks"`.
        learning_rate: float. As in `Schedule`. Defaults to `1e-2`.
        fine_tune_learning_rate: float. As in `Schedule`. Defaults to `1e-4`.
        lowest_block_multiplier: float. As in `Schedule`. Defaults to `0.1`.
        train_bn: bool. As in `Schedule`. Defaults to `False`.
        warmup: float. As in `Schedule`. Defaults to `0.1`.
    """

    def __init__(
        self,
        frozen_epochs: int = defaults.FROZEN_EPOCHS,
        blocks_per_step: int = 1,
        epochs_per_step: int = 1,
        unfreeze_at: Sequence[int] | None = None,
        max_blocks: int | None = None,
        unit: str = "blocks",
        learning_rate: float = defaults.LEARNING_RATE,
        fine_tune_learning_rate: float = defaults.FINE_TUNE_LEARNING_RATE,
        lowest_block_multiplier: float = defaults.LOWEST_BLOCK_MULTIPLIER,
        train_bn: bool = False,
        warmup: float = defaults.WARMUP,
    ):
        super().__init__(
            learning_rate=learning_rate,
            fine_tune_learning_rate=fine_tune_learning_rate,
            lowest_block_multiplier=lowest_block_multiplier,
            train_bn=train_bn,
            warmup=warmup,
        )
        _check_epochs("frozen_epochs", frozen_epochs)
        _check_epochs("blocks_per_step", blocks_per_step, minimum=1)
        _check_epochs("epochs_per_step", epochs_per_step, minimum=1)
        if max_blocks is not None:
            _check_epochs("max_blocks", max_blocks, minimum=1)
        if unit not in ("blocks", "layers"):
            raise ValueError(f"`unit` must be 'blocks' or 'layers'. Received: unit={unit!r}")
        if unfreeze_at is not None:
            unfreeze_at = list(unfreeze_at)
            for epoch in unfreeze_at:
                _check_epochs("unfreeze_at", epoch)
            if unfreeze_at != sorted(set(unfreeze_at)):
                raise ValueError(
                    f"`unfreeze_at` must be strictly increasing epochs. Received: {unfreeze_at}"
                )
        self.frozen_epochs = frozen_epochs
        self.blocks_per_step = blocks_per_step
        self.epochs_per_step = epochs_per_step
        self.unfreeze_at = unfreeze_at
        self.max_blocks = max_blocks
        self.unit = unit

    def step_epochs(self, epochs: int) -> list[int]:
        """The epochs at which a step unfreezes more of the backbone."""
        if self.unfreeze_at is not None:
            return [epoch for epoch in self.unfreeze_at if epoch < epochs]
        return list(range(self.frozen_epochs, epochs, self.epochs_per_step))

    def phases(self, epochs):
        starts = self.step_epochs(epochs)
        phases = []
        if not starts or starts[0] > 0:
            phases.append(
                Phase("frozen", 0, starts[0] if starts else epochs, 0, self.learning_rate)
            )
        for step, start in enumerate(starts):
            end = starts[step + 1] if step + 1 < len(starts) else epochs
            count = (step + 1) * self.blocks_per_step
            if self.max_blocks is not None:
                count = min(count, self.max_blocks)
            if phases and phases[-1].trainable_blocks == count:
                # Capped by max_blocks: the same blocks go on training in one phase,
                # without a needless recompile and a new warm-up.
                phases[-1] = dataclasses.replace(phases[-1], end_epoch=end)
                continue
            phases.append(
                Phase(f"top {count} {self.unit}", start, end, count, self.fine_tune_learning_rate)
            )
        return phases

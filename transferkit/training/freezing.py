"""Setting what trains: trainable flags, BatchNorm mode, learning-rate multipliers."""

import dataclasses

import keras

from transferkit.schedules import Phase, Schedule, backbone_blocks
from transferkit.schedules.base import block_multipliers, check_multiplier


@dataclasses.dataclass(frozen=True)
class Trainable:
    """What part of a backbone trains, and at which learning-rate multipliers.

    Args:
        units: int. How many units (blocks or layers), counted from the top, train.
        total_units: int. How many units the backbone has.
        unit: str. `"blocks"` or `"layers"`.
        train_bn: bool. Whether BatchNorm layers of the trainable units train.
        lr_multipliers: dict. Variable path prefix -> learning-rate multiplier,
            for the optimizer (`transferkit.optimizers`).
    """

    units: int
    total_units: int
    unit: str = "blocks"
    train_bn: bool = False
    lr_multipliers: dict = dataclasses.field(default_factory=dict)

    @property
    def frozen(self) -> bool:
        """Whether the whole backbone is frozen."""
        return self.units == 0


def variable_prefix(layer: keras.layers.Layer) -> str:
    """The path prefix of a layer's variables (`"conv1_conv/"`, `"vit_encoder/block_1/"`)."""
    folders = [variable.path.split("/")[:-1] for variable in layer.weights]
    common = folders[0]
    for parts in folders[1:]:
        length = 0
        while length < min(len(common), len(parts)) and common[length] == parts[length]:
            length += 1
        common = common[:length]
    return "/".join(common) + "/" if common else f"{layer.name}/"


def backbone_units(backbone: keras.Model, unit: str = "blocks") -> list[list[keras.layers.Layer]]:
    """The backbone's blocks (or single weighted layers when `unit="layers"`), input first."""
    if unit not in ("blocks", "layers"):
        raise ValueError(f"`unit` must be 'blocks' or 'layers'. Received: unit={unit!r}")
    if unit == "layers":
        return [[layer] for layer in backbone.layers if layer.weights]
    return backbone_blocks(backbone)


def set_trainable(
    backbone: keras.Model,
    units: int | None,
    *,
    unit: str = "blocks",
    train_bn: bool = False,
    multipliers: list[float] = (),
) -> Trainable:
    """Makes the top `units` blocks (or layers) of `backbone` trainable, the rest frozen.

    BatchNorm layers stay frozen (and so run in inference mode, keeping their
    moving statistics) unless `train_bn` is set, as the Keras guide advises: a
    small fine-tuning batch would otherwise overwrite the statistics learned
    on ImageNet.

    Args:
        backbone: `keras.Model`.
        units: int or None. How many units train, from the top; `0` freezes
            the backbone, `None` unfreezes all of it.
        unit: str. `"blocks"` or `"layers"`. Defaults to `"blocks"`.
        train_bn: bool. Defaults to `False`.
        multipliers: sequence of float. Learning-rate multipliers of the
            trainable units, from the top down (`Schedule.block_multipliers`);
            units without one train at the head's rate.

    Returns:
        A `Trainable`.

    Raises:
        ValueError: if more units are asked for than the backbone has.
    """
    all_units = backbone_units(backbone, unit)
    total = len(all_units)
    count = total if units is None else units
    if count > total:
        raise ValueError(
            f"Unfreezing {count} {unit} of backbone {backbone.name!r}, which has only {total} "
            f"{unit}. Lower the number of {unit} (e.g. max_blocks=...) or pass None to "
            "unfreeze the whole backbone."
        )
    if count == 0:
        backbone.trainable = False
        return Trainable(0, total, unit, train_bn)

    # Setting `trainable` on the nested model cascades to every layer; the
    # per-layer flags below must come after it.
    backbone.trainable = True
    lr_multipliers = {}
    for index, layers in enumerate(all_units):
        rank = total - 1 - index  # 0 for the top unit
        trains = rank < count
        for layer in layers:
            # Every nested layer is set too: KerasHub's blocks hold BatchNorm layers
            # (frozen unless train_bn) that a parent's flag does not always reach.
            for sub in layer._flatten_layers(include_self=True):
                is_batch_norm = isinstance(sub, keras.layers.BatchNormalization)
                sub.trainable = trains and (train_bn or not is_batch_norm)
            if layer.trainable and layer.weights and rank < len(multipliers):
                lr_multipliers[variable_prefix(layer)] = multipliers[rank]
    in_units = {id(layer) for layers in all_units for layer in layers}
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.InputLayer) or id(layer) in in_units:
            continue
        # A layer holding units (a transformer's encoder) keeps their flags.
        if not any(id(sub) in in_units for sub in layer._flatten_layers(include_self=False)):
            layer.trainable = False
    return Trainable(count, total, unit, train_bn, lr_multipliers)


def unfreeze_top(
    backbone: keras.Model,
    blocks: int | None,
    *,
    unit: str = "blocks",
    train_bn: bool = False,
    lowest_block_multiplier: float = 0.1,
) -> Trainable:
    """Makes the top `blocks` (all for None) trainable at geometric learning-rate multipliers.

    The top block learns at the head's rate and the lowest trainable one at
    `lowest_block_multiplier` of it (see `Schedule`).

    Raises:
        ValueError: for a `lowest_block_multiplier` outside (0, 1] or an unknown `unit`.
    """
    count = len(backbone_units(backbone, unit)) if blocks is None else blocks
    multiplier = check_multiplier(lowest_block_multiplier)
    return set_trainable(
        backbone,
        count,
        unit=unit,
        train_bn=train_bn,
        multipliers=block_multipliers(count, multiplier),
    )


def apply_phase(backbone: keras.Model, phase: Phase, schedule: Schedule) -> Trainable:
    """Sets what trains in `phase` of `schedule` (see `set_trainable`)."""
    if phase.trainable_blocks == 0:
        return set_trainable(backbone, 0, unit=schedule.unit)
    count = phase.trainable_blocks
    if count is None:
        count = len(backbone_units(backbone, schedule.unit))
    return set_trainable(
        backbone,
        phase.trainable_blocks,
        unit=schedule.unit,
        train_bn=schedule.train_bn,
        multipliers=schedule.block_multipliers(count),
    )


def describe_trainable(trainable: Trainable, backbone_name: str) -> str:
    """What trains, in words: the trainable units, their multipliers, BatchNorm's mode."""
    if trainable.frozen:
        return f"backbone {backbone_name} frozen, head trains"
    what = (
        f"top {trainable.units}/{trainable.total_units} {trainable.unit} of "
        f"{backbone_name} trainable"
    )
    values = list(trainable.lr_multipliers.values())
    if values:
        what += f" at {min(values):.3g}x-{max(values):.3g}x the head's learning rate"
    return what + ", BatchNorm " + ("trains" if trainable.train_bn else "kept in inference mode")


def describe_phase(phase: Phase, trainable: Trainable, backbone_name: str) -> str:
    """A log line saying what a phase trains."""
    return (
        f"epoch {phase.start_epoch + 1}-{phase.end_epoch}: phase {phase.name!r}: "
        f"{describe_trainable(trainable, backbone_name)}; "
        f"recompiled (head learning rate {phase.learning_rate:.3g})"
    )

"""Applying a phase to a model: trainable flags, BatchNorm mode, learning-rate multipliers."""

import keras

from transferkit.schedules import Phase, Schedule, backbone_blocks


def backbone_units(backbone: keras.Model, unit: str = "blocks") -> list[list[keras.layers.Layer]]:
    """The backbone's blocks (or single weighted layers when `unit="layers"`), input first."""
    if unit == "layers":
        return [[layer] for layer in backbone.layers if layer.weights]
    return backbone_blocks(backbone)


def apply_phase(backbone: keras.Model, phase: Phase, schedule: Schedule) -> dict:
    """Sets which backbone layers train in `phase` and returns what changed.

    BatchNorm layers stay frozen (and so run in inference mode, keeping their
    moving statistics) unless `schedule.train_bn` is set, as the Keras guide
    advises: a small fine-tuning batch would otherwise overwrite the
    statistics learned on ImageNet.

    Returns:
        A dict with `trainable_units` (how many units train), `total_units`,
        `unit` and `lr_multipliers` (variable path prefix -> multiplier for the
        optimizer).

    Raises:
        ValueError: if the phase asks for more units than the backbone has.
    """
    unit = getattr(schedule, "unit", "blocks")
    units = backbone_units(backbone, unit)
    total = len(units)
    count = total if phase.trainable_blocks is None else phase.trainable_blocks
    if count > total:
        raise ValueError(
            f"Phase {phase.name!r} of {type(schedule).__name__} unfreezes {count} {unit}, but "
            f"backbone {backbone.name!r} has only {total} {unit}. Lower the number of {unit} "
            "(e.g. max_blocks=...) or pass None to unfreeze the whole backbone."
        )
    if count == 0:
        backbone.trainable = False
        return {"trainable_units": 0, "total_units": total, "unit": unit, "lr_multipliers": {}}

    # Setting `trainable` on the nested model cascades to every layer; the
    # per-layer flags below must come after it.
    backbone.trainable = True
    multipliers = {}
    ranks = schedule.block_multipliers(count)
    for index, layers in enumerate(units):
        rank = total - 1 - index  # 0 for the top unit
        trains = rank < count
        for layer in layers:
            is_batch_norm = isinstance(layer, keras.layers.BatchNormalization)
            layer.trainable = trains and (schedule.train_bn or not is_batch_norm)
            if layer.trainable and layer.weights:
                multipliers[f"{layer.name}/"] = ranks[rank]
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if not any(layer in layers for layers in units):
            layer.trainable = False
    return {
        "trainable_units": count,
        "total_units": total,
        "unit": unit,
        "lr_multipliers": multipliers,
    }


def describe_phase(phase: Phase, change: dict, backbone_name: str, train_bn: bool) -> str:
    """A log line saying what a phase trains."""
    if change["trainable_units"] == 0:
        what = f"backbone {backbone_name} frozen, head trains"
    else:
        what = (
            f"top {change['trainable_units']}/{change['total_units']} {change['unit']} of "
            f"{backbone_name} trainable"
        )
        values = list(change["lr_multipliers"].values())
        if values:
            what += f" at {min(values):.3g}x-{max(values):.3g}x the head's learning rate"
        what += ", BatchNorm " + ("trains" if train_bn else "kept in inference mode")
    return (
        f"epoch {phase.start_epoch + 1}-{phase.end_epoch}: phase {phase.name!r}: {what}; "
        f"recompiled (head learning rate {phase.learning_rate:.3g})"
    )

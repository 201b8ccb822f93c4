"""Fine-tuning schedules: which part of the backbone trains when, and at what rate."""

from transferkit.schedules.base import Phase, Schedule
from transferkit.schedules.blocks import backbone_blocks
from transferkit.schedules.freezing import Freeze, FreezeUnfreeze, GradualUnfreeze, NoFreeze

ALIASES = {
    "no_freeze": NoFreeze,
    "freeze": Freeze,
    "linear_probe": Freeze,
    "freeze_unfreeze": FreezeUnfreeze,
    "fine_tune": FreezeUnfreeze,
    "gradual_unfreeze": GradualUnfreeze,
}


def get(identifier) -> Schedule:
    """Returns a schedule from a `Schedule`, an alias, or a serialized config.

    Args:
        identifier: A `Schedule` instance; one of the aliases `"no_freeze"`,
            `"freeze"` (or `"linear_probe"`), `"freeze_unfreeze"` (or
            `"fine_tune"`, the default) and `"gradual_unfreeze"`; or a dict
            from `keras.saving.serialize_keras_object(schedule)`.

    Raises:
        ValueError: for an unknown alias or another kind of value.
    """
    if isinstance(identifier, Schedule):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower().replace("-", "_")
        if key not in ALIASES:
            raise ValueError(
                f"Unknown schedule {identifier!r}. Use one of {sorted(ALIASES)} or a "
                "transferkit.schedules.Schedule instance."
            )
        return ALIASES[key]()
    if isinstance(identifier, dict):
        import keras

        return keras.saving.deserialize_keras_object(identifier)
    raise ValueError(
        "`schedule` must be a Schedule, an alias string or a serialized config. "
        f"Received: schedule={identifier!r}"
    )


__all__ = [
    "Phase",
    "Schedule",
    "NoFreeze",
    "Freeze",
    "FreezeUnfreeze",
    "GradualUnfreeze",
    "backbone_blocks",
    "get",
]

import keras
import pytest

from transferkit import schedules
from transferkit.schedules import (
    Freeze,
    FreezeUnfreeze,
    GradualUnfreeze,
    NoFreeze,
    Phase,
    Schedule,
)


def spans(phases):
    return [(p.name, p.start_epoch, p.end_epoch, p.trainable_blocks) for p in phases]


def test_built_in_plans():
    assert spans(NoFreeze().plan(3)) == [("unfrozen", 0, 3, None)]
    assert spans(Freeze().plan(3)) == [("frozen", 0, 3, 0)]
    assert spans(FreezeUnfreeze(frozen_epochs=2).plan(5)) == [
        ("frozen", 0, 2, 0),
        ("unfrozen", 2, 5, None),
    ]
    # The default warms the head up for 1 epoch (at 1e-2), then fine-tunes (at 1e-4).
    assert [(p.name, p.epochs, p.learning_rate) for p in FreezeUnfreeze().plan(5)] == [
        ("frozen", 1, 1e-2),
        ("unfrozen", 4, 1e-4),
    ]
    # Fewer epochs than the warm-up: it is shortened so the last epoch still fine-tunes ...
    assert spans(FreezeUnfreeze(frozen_epochs=3).plan(2)) == [
        ("frozen", 0, 1, 0),
        ("unfrozen", 1, 2, None),
    ]
    assert spans(FreezeUnfreeze(frozen_epochs=5).plan(3)) == [
        ("frozen", 0, 2, 0),
        ("unfrozen", 2, 3, None),
    ]
    # ... except in a one-epoch run, where a random head must not train the backbone.
    assert spans(FreezeUnfreeze().plan(1)) == [("frozen", 0, 1, 0)]
    # frozen_epochs=0 fine-tunes from the first epoch.
    assert spans(FreezeUnfreeze(frozen_epochs=0).plan(2)) == [("unfrozen", 0, 2, None)]
    assert spans(GradualUnfreeze(blocks_per_step=2, max_blocks=3).plan(4)) == [
        ("frozen", 0, 1, 0),
        ("top 2 blocks", 1, 2, 2),
        ("top 3 blocks", 2, 4, 3),  # capped: one phase, not a recompile per epoch
    ]
    assert spans(GradualUnfreeze(unfreeze_at=[2, 5], unit="layers").plan(6)) == [
        ("frozen", 0, 2, 0),
        ("top 1 layers", 2, 5, 1),
        ("top 2 layers", 5, 6, 2),
    ]


def test_learning_rates_per_phase():
    schedule = FreezeUnfreeze(learning_rate=2e-3, fine_tune_learning_rate=5e-4)
    frozen, unfrozen = schedule.plan(3)
    assert frozen.learning_rate == 2e-3 and unfrozen.learning_rate == 5e-4
    # The fine-tuning rate does not follow the head's: pretrained weights set it.
    assert FreezeUnfreeze(learning_rate=5e-2).plan(2)[1].learning_rate == pytest.approx(1e-4)
    assert NoFreeze().plan(2)[0].learning_rate == pytest.approx(1e-4)


# A schedule saved by transferkit 0.1: every rate on every schedule, `lr_mult` a divisor.
V0_1_CONFIG = {
    "learning_rate": 0.01,
    "fine_tune_learning_rate": None,
    "lr_mult": 10.0,
    "train_bn": False,
    "warmup": 0.1,
}


def test_configs_saved_by_0_1_still_load():
    upgraded = FreezeUnfreeze.from_config({**V0_1_CONFIG, "frozen_epochs": 2})
    assert upgraded == FreezeUnfreeze(frozen_epochs=2, lowest_block_multiplier=0.1)
    assert upgraded.fine_tune_learning_rate == pytest.approx(1e-4)
    # The arguments Freeze does not use are dropped, not refused, for an old config.
    assert Freeze.from_config(V0_1_CONFIG) == Freeze(learning_rate=0.01, warmup=0.1)
    assert NoFreeze.from_config({**V0_1_CONFIG, "lr_mult": 4.0}).lowest_block_multiplier == 0.25


def test_block_multipliers_fall_geometrically_to_the_lowest_block_multiplier():
    multipliers = Schedule(lowest_block_multiplier=0.01).block_multipliers(4)
    assert multipliers[-1] == pytest.approx(0.01)
    assert multipliers == sorted(multipliers, reverse=True)
    ratios = [a / b for a, b in zip(multipliers, multipliers[1:], strict=False)]
    assert ratios == pytest.approx([ratios[0]] * 3)
    assert Schedule(lowest_block_multiplier=1).block_multipliers(3) == [1.0, 1.0, 1.0]


def test_learning_rate_schedule_warms_up_then_decays():
    phase = Phase("frozen", 0, 2, 0, 1e-3)
    lr = Schedule(warmup=0.25).learning_rate_schedule(phase, steps_per_epoch=10)
    values = [float(lr(step)) for step in range(20)]
    peak = values.index(max(values))
    assert peak == 5 and max(values) == pytest.approx(1e-3, rel=1e-3)
    assert values[0] < values[peak] and values[-1] < values[peak] / 10


@pytest.mark.parametrize(
    "schedule",
    [
        NoFreeze(),
        Freeze(learning_rate=3e-3),
        FreezeUnfreeze(frozen_epochs=2, lowest_block_multiplier=0.02),
        GradualUnfreeze(unfreeze_at=[1, 3], max_blocks=4, unit="layers", train_bn=True),
    ],
)
def test_serialization_round_trip(schedule):
    config = keras.saving.serialize_keras_object(schedule)
    assert keras.saving.deserialize_keras_object(config) == schedule
    assert schedules.get(config) == schedule
    # Hashable, and equal schedules hash alike (usable as dict keys and in sets).
    assert hash(schedules.get(config)) == hash(schedule)
    assert len({schedule, schedules.get(config)}) == 1


def test_each_schedule_takes_only_the_arguments_it_uses():
    assert list(Freeze().get_config()) == ["learning_rate", "warmup"]
    assert "learning_rate" not in NoFreeze().get_config()
    assert not hasattr(NoFreeze(), "learning_rate")
    assert not hasattr(Freeze(), "fine_tune_learning_rate")
    # Options of one schedule are declared on it; the others have the class's own.
    assert GradualUnfreeze(unit="layers").unit == "layers"
    assert FreezeUnfreeze().unit == "blocks" and Freeze.train_bn is False
    with pytest.raises(ValueError, match=r"Freeze does not take \['fine_tune_learning_rate'\]"):
        Freeze(fine_tune_learning_rate=1e-3)
    with pytest.raises(ValueError, match=r"Freeze does not take \['lowest_block_multiplier', "):
        Freeze(lowest_block_multiplier=0.5, train_bn=True)
    with pytest.raises(ValueError, match=r"NoFreeze does not take \['learning_rate'\]: it never "):
        NoFreeze(learning_rate=1e-2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'lr_mult'"):
        FreezeUnfreeze(lr_mult=10)


def test_a_custom_schedule_keeps_its_own_and_the_base_arguments():
    class Custom(Schedule):
        def __init__(self, top=2, **kwargs):
            super().__init__(**kwargs)
            self.top = top

        def phases(self, epochs):
            return [Phase("top", 0, epochs, self.top, self.fine_tune_learning_rate)]

    config = Custom(top=3, warmup=0.2).get_config()
    assert config["top"] == 3 and config["warmup"] == 0.2
    assert set(config) == {"top", *Schedule().get_config()}
    assert Custom.from_config(config) == Custom(top=3, warmup=0.2)


def test_aliases():
    assert isinstance(schedules.get("freeze_unfreeze"), FreezeUnfreeze)
    assert isinstance(schedules.get("linear-probe"), Freeze)
    assert isinstance(schedules.get("gradual_unfreeze"), GradualUnfreeze)
    with pytest.raises(ValueError, match="Unknown schedule 'warp'"):
        schedules.get("warp")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: FreezeUnfreeze(frozen_epochs=-1), "frozen_epochs=-1"),
        (lambda: GradualUnfreeze(blocks_per_step=0), "blocks_per_step=0"),
        (lambda: GradualUnfreeze(unfreeze_at=[3, 2]), "strictly increasing"),
        (lambda: GradualUnfreeze(unit="channels"), "unit='channels'"),
        (lambda: Schedule(learning_rate=-1), "learning_rate=-1"),
        (lambda: Schedule(lowest_block_multiplier=2), "lowest_block_multiplier=2"),
        (lambda: Schedule(lowest_block_multiplier=0), "must be in \\(0, 1\\]"),
        (lambda: Schedule(warmup=1.0), "warmup=1.0"),
        (lambda: FreezeUnfreeze().plan(0), "epochs=0"),
        (lambda: FreezeUnfreeze().plan(-3), "epochs=-3"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_custom_schedule_needs_only_phases():
    class HeadThenTop2(Schedule):
        def phases(self, epochs):
            return [Phase("frozen", 0, 1, 0, 1e-3), Phase("top 2", 1, epochs, 2, 1e-4)]

    assert spans(HeadThenTop2().plan(3)) == [("frozen", 0, 1, 0), ("top 2", 1, 3, 2)]

    class Gappy(Schedule):
        def phases(self, epochs):
            return [Phase("frozen", 0, 1, 0, 1e-3), Phase("late", 2, epochs, None, 1e-4)]

    with pytest.raises(ValueError, match="gap or overlap at epoch 1"):
        Gappy().plan(4)


@keras.saving.register_keras_serializable(package="transferkit_tests")
class LongerWarmUp(FreezeUnfreeze):
    """A subclass of a built-in schedule: its own argument and all of its parent's."""

    def __init__(self, patience=2, **kwargs):
        super().__init__(**kwargs)
        self.patience = patience


@keras.saving.register_keras_serializable(package="transferkit_tests")
class SlowProbe(Freeze):
    def __init__(self, extra=1, **kwargs):
        super().__init__(**kwargs)
        self.extra = extra


class InheritsAll(LongerWarmUp):
    pass


def test_subclasses_of_built_in_schedules_keep_every_argument():
    schedule = LongerWarmUp(patience=3, frozen_epochs=4, unfreeze_blocks=2)
    config = schedule.get_config()
    assert config["patience"] == 3 and config["frozen_epochs"] == 4
    assert config["unfreeze_blocks"] == 2 and "lowest_block_multiplier" in config
    assert schedule != LongerWarmUp(patience=3, frozen_epochs=1, unfreeze_blocks=2)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert restored == schedule and hash(restored) == hash(schedule)
    assert set(InheritsAll().get_config()) == set(config)
    assert SlowProbe(extra=2, learning_rate=0.2).get_config() == {
        "extra": 2,
        "learning_rate": 0.2,
        "warmup": 0.1,
    }
    with pytest.raises(ValueError, match=r"SlowProbe does not take \['train_bn'\]: it never"):
        SlowProbe(train_bn=True)
    with pytest.raises(ValueError, match=r"\['learning_rte'\]: unknown argument"):
        Freeze(learning_rte=0.1)

"""Trials near the default recipe: the default (and it at a larger size) first, then draws
that change a few hyperparameters and keep the rest at their defaults."""

import keras_tuner
import numpy as np
import pytest

from transferkit.tuning import FineTunerHyperModel
from transferkit.tuning.budget import default_first
from transferkit.tuning.near_default import NearDefault, near_default


@pytest.fixture(scope="module")
def space():
    """The default search space (MobileNet at 128 px: the image size varies too)."""
    hypermodel = FineTunerHyperModel(["cat", "dog"], "mobilenet", weights=None, input_shape=128)
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    return hp


def oracle(space, change_rate=None, seed=7):
    made = keras_tuner.oracles.RandomSearchOracle(
        objective="val_accuracy", max_trials=100, seed=seed, hyperparameters=space.copy()
    )
    if change_rate is not None:
        near_default(made, change_rate)
    return made


def changes(values, space):
    defaults = {hp.name: hp.default for hp in space.space}
    return {name for name, value in values.items() if value != defaults[name]}


def test_a_draw_changes_a_few_hyperparameters_and_keeps_the_others(space):
    near = oracle(space, 0.25)
    draws = [near._random_values() for _ in range(300)]
    changed = [changes(values, space) for values in draws]
    counts = np.array([len(names) for names in changed])
    varying = sum(
        1 for hp in space.space if hp.name not in ("backbone", "head_units", "frozen_epochs")
    )
    # Each of the ~11 varying hyperparameters is redrawn with probability 0.25 (a redraw
    # may land on the default), so about 2 changes a draw; plain random search changes ~9.
    assert varying >= 10
    assert 1.2 < counts.mean() < 3.5, counts.mean()
    plain = [changes(oracle(space, seed=seed)._random_values(), space) for seed in range(60)]
    assert np.mean([len(names) for names in plain]) > 6
    # Every hyperparameter that varies is changed in some draw, never the fixed backbone.
    assert set().union(*changed) >= {"image_size", "unfreeze", "fine_tune_learning_rate"}
    assert "backbone" not in set().union(*changed)
    # A draw is a valid trial: conditional values only where their branch is active.
    for values in draws:
        assert ("head_units" in values) == (values["head_depth"] > 0)
        assert ("frozen_epochs" in values) == values["unfreeze"]


def test_a_change_rate_of_one_is_plain_random_search(space):
    near, plain = oracle(space, 1.0), oracle(space)
    assert isinstance(near, NearDefault)
    for _ in range(5):
        assert near._random_values() == plain._random_values()


def test_draws_are_seeded_and_skip_what_was_tried(space):
    first = [oracle(space, 0.25, seed=3)._random_values() for _ in range(2)]
    assert first[0] == first[1]
    near = oracle(space, 0.25, seed=3)
    defaults = {hp.name: hp.default for hp in space.space if space.is_active(hp)}
    near._tried_so_far.add(near._compute_values_hash(defaults))
    draws = [near._random_values() for _ in range(50)]
    assert all(values != defaults for values in draws)


def test_different_seeds_draw_different_trials(space):
    """Neighbouring seeds must not run the same trials (KerasTuner's seeds are a counter)."""
    searches = []
    for seed in (4, 5, 6):
        near = oracle(space, 0.25, seed=seed)
        searches.append([near._random_values() for _ in range(5)])
    for one, other in [(0, 1), (1, 2), (0, 2)]:
        shared = [values for values in searches[one] if values in searches[other]]
        assert len(shared) <= 1, shared


def test_a_worker_oracle_is_left_alone():
    client = object()
    near_default(client, 0.25)
    assert not isinstance(client, NearDefault)


def _draw(made, count):
    drawn = []
    for _ in range(count):
        trial = made.create_trial("tuner0")
        drawn.append(dict(trial.hyperparameters.values))
        trial.status = "COMPLETED"
        made.update_trial(trial.trial_id, {"val_accuracy": 0.5})
        made.end_trial(trial)
        made.save()  # as a tuner does after each trial
    return drawn


def test_the_default_recipe_then_its_larger_image_size_come_before_any_draw(space, tmp_path):
    """Trial one is the default recipe, trial two the same recipe at the larger image size."""
    near = oracle(space, 0.25)
    near._set_project_dir(str(tmp_path), "search")  # where the oracle writes its trials
    default_first(near)
    defaults = {hp.name: hp.default for hp in space.space if space.is_active(hp)}
    assert defaults["image_size"] == 128
    drawn = _draw(near, 4)
    assert drawn[0] == defaults
    assert drawn[1] == dict(defaults, image_size=160)
    # Then draws near the default, none repeating the two above.
    assert all(values not in drawn[:2] for values in drawn[2:])
    assert len({tuple(sorted(values.items())) for values in drawn}) == 4


def test_a_fixed_image_size_adds_no_trial_before_the_draws():
    hypermodel = FineTunerHyperModel(["cat", "dog"], "mobilenet", weights=None, input_shape=32)
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    near = oracle(hp, 0.25)
    default_first(near)
    defaults = {item.name: item.default for item in hp.space if hp.is_active(item)}
    assert near.anchor_values() == [defaults]


def _space_with_sizes(sizes, default):
    hp = keras_tuner.HyperParameters()
    hp.Choice("image_size", sizes, default=default)
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    return hp


def test_several_larger_sizes_come_smallest_first_and_hyperband_brackets_follow(tmp_path):
    made = keras_tuner.oracles.HyperbandOracle(
        objective="val_accuracy",
        max_epochs=3,
        seed=1,
        hyperparameters=_space_with_sizes([128, 192, 160], default=128),
    )
    made._set_project_dir(str(tmp_path), "search")
    default_first(made)
    drawn = _draw(made, 4)
    assert [values["image_size"] for values in drawn[:3]] == [128, 160, 192]
    assert all(values["learning_rate"] == 1e-3 for values in drawn[:3])
    # The anchors train every epoch (no bracket); Hyperband's brackets start after them.
    assert not any(name.startswith("tuner/") for values in drawn[:3] for name in values)
    assert "tuner/epochs" in drawn[3]


def test_a_resumed_search_goes_on_with_the_next_anchor(tmp_path):
    first = oracle(_space_with_sizes([128, 160], default=128), 0.25)
    first._set_project_dir(str(tmp_path), "search")
    default_first(first)
    assert _draw(first, 1)[0]["image_size"] == 128
    resumed = oracle(_space_with_sizes([128, 160], default=128), 0.25)
    resumed._set_project_dir(str(tmp_path), "search")
    resumed.reload()
    default_first(resumed)
    assert _draw(resumed, 1)[0] == {"image_size": 160, "learning_rate": 1e-3}

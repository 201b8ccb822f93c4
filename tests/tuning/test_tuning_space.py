"""The search space: names, defaults, conditions, overrides and bad input (no training)."""

import keras
import keras_tuner
import pytest
from keras_tuner.engine import hyperparameters as hp_types

import transferkit as tk
from transferkit.tuning import FineTunerHyperModel, tune
from transferkit.tuning.space import image_sizes, larger_size

MOBILENET_BLOCKS = 14
MOBILENETV2_BLOCKS = 18


def hypermodel(backbones="mobilenet", **kwargs):
    kwargs.setdefault("epochs", 3)
    return FineTunerHyperModel(["cat", "dog"], backbones, weights=None, input_shape=32, **kwargs)


def declared(model, values=None):
    """A fresh HyperParameters with the space declared (and `values` set first)."""
    hp = keras_tuner.HyperParameters()
    hp.values.update(values or {})
    model.declare_hyperparameters(hp)
    return hp


def test_every_hyperparameter_has_the_default_finetuners_value():
    model = hypermodel()
    hp = keras_tuner.HyperParameters()
    built = model.build(hp)
    assert isinstance(built, keras.Model)
    assert hp.values == {
        "backbone": "mobilenet",
        "image_size": 32,
        "head_depth": 0,
        "dropout": 0.2,
        "learning_rate": 1e-2,
        "augmentation_strength": 0.0,
        "label_smoothing": 0.0,
        "unfreeze": True,
        "frozen_epochs": 1,
        "fine_tune_learning_rate": 1e-4,
        "lowest_block_multiplier": 0.1,
        "mobilenet/unfreeze_blocks": MOBILENET_BLOCKS,
    }
    assert [p.name for p in hp.space] == [
        "backbone",
        "image_size",
        "head_depth",
        "head_units",
        "dropout",
        "learning_rate",
        "augmentation_strength",
        "label_smoothing",
        "unfreeze",
        "frozen_epochs",
        "fine_tune_learning_rate",
        "lowest_block_multiplier",
        "mobilenet/unfreeze_blocks",
    ]
    # The default trial is the default recipe: same head, same phases.
    finetuner = model.make_finetuner(hp)
    default = tk.FineTuner("mobilenet", weights=None)

    def head(finetuner):
        return {k: v for k, v in finetuner.head.get_config().items() if k != "name"}

    assert head(finetuner) == head(default)
    assert finetuner.schedule.plan(3) == tk.schedules.get(default.schedule).plan(3)
    assert finetuner.seed == 0 and finetuner.cache_features is True


def test_one_epoch_leaves_nothing_to_unfreeze_in():
    hp = declared(hypermodel(epochs=1))
    assert hp.values["unfreeze"] is False
    assert "frozen_epochs" not in hp.values
    assert "mobilenet/unfreeze_blocks" not in hp.values


def test_conditional_hyperparameters_are_active_only_in_their_branch():
    model = hypermodel(["mobilenet", "mobilenetv2"])
    hp = declared(model)
    assert hp.is_active("mobilenet/unfreeze_blocks")
    assert not hp.is_active("mobilenetv2/unfreeze_blocks")
    assert not hp.is_active("head_units")  # a linear head has no width
    ranges = {p.name: (p.min_value, p.max_value) for p in hp.space if "unfreeze_blocks" in p.name}
    assert ranges == {
        "mobilenet/unfreeze_blocks": (1, MOBILENET_BLOCKS),
        "mobilenetv2/unfreeze_blocks": (1, MOBILENETV2_BLOCKS),
    }

    hp = declared(model, {"backbone": "mobilenetv2", "head_depth": 2})
    assert hp.values["mobilenetv2/unfreeze_blocks"] == MOBILENETV2_BLOCKS
    assert "mobilenet/unfreeze_blocks" not in hp.values
    assert hp.values["head_units"] == 256

    hp = declared(model, {"unfreeze": False})
    assert not any(
        hp.is_active(name)
        for name in ("frozen_epochs", "fine_tune_learning_rate", "mobilenet/unfreeze_blocks")
    )
    assert isinstance(model.make_finetuner(hp).schedule, tk.Freeze)


def test_sampled_trials_only_carry_the_values_they_use():
    # What a KerasTuner oracle does: walk the space in order, sampling the active ones.
    space = declared(hypermodel(["mobilenet", "mobilenetv2"])).space
    for seed in range(40):
        hp = keras_tuner.HyperParameters()
        for index, parameter in enumerate(space):
            hp.merge([parameter])
            if hp.is_active(parameter):
                hp.values[parameter.name] = parameter.random_sample(seed * 100 + index)
        values = hp.values
        assert ("head_units" in values) == (values["head_depth"] > 0)
        for backbone in ("mobilenet", "mobilenetv2"):
            expected = values["unfreeze"] and values["backbone"] == backbone
            assert (f"{backbone}/unfreeze_blocks" in values) == expected, values
        assert ("frozen_epochs" in values) == values["unfreeze"]


def test_search_space_overrides_each_kind():
    model = hypermodel(
        search_space={
            "dropout": 0.5,
            "head_depth": [1, 2],
            "head_units": [32, 64],
            "learning_rate": {"min_value": 1e-3, "max_value": 1e-1},
            "fine_tune_learning_rate": hp_types.Float("anything", 1e-5, 1e-4, default=2e-5),
            "unfreeze_blocks": [2, 3],
        }
    )
    hp = declared(model)
    assert hp.values == {
        "backbone": "mobilenet",
        "image_size": 32,
        "head_depth": 1,
        "head_units": 32,
        "dropout": 0.5,
        "learning_rate": 1e-2,  # the default, inside the new range
        "augmentation_strength": 0.0,
        "label_smoothing": 0.0,
        "unfreeze": True,
        "frozen_epochs": 1,
        "fine_tune_learning_rate": 2e-5,
        "lowest_block_multiplier": 0.1,
        "mobilenet/unfreeze_blocks": 2,
    }
    space = {p.name: p for p in hp.space}
    assert isinstance(space["dropout"], hp_types.Fixed)
    assert space["learning_rate"].max_value == 1e-1 and space["learning_rate"].sampling == "log"
    assert space["mobilenet/unfreeze_blocks"].values == [2, 3]
    finetuner = model.make_finetuner(hp)
    assert finetuner.head.hidden_units == [32]
    assert finetuner.head.dropout == 0.5
    assert finetuner.schedule.unfreeze_blocks == 2
    assert finetuner.schedule.fine_tune_learning_rate == 2e-5


def test_a_backbone_specific_override_wins_over_the_general_one():
    model = hypermodel(
        ["mobilenet", "mobilenetv2"],
        search_space={"unfreeze_blocks": [1, 2], "mobilenetv2/unfreeze_blocks": [5, 6]},
    )
    space = {p.name: p for p in declared(model).space}
    assert space["mobilenet/unfreeze_blocks"].values == [1, 2]
    assert space["mobilenetv2/unfreeze_blocks"].values == [5, 6]


def test_a_head_only_search_declares_no_unfreezing_hyperparameters():
    hp = declared(hypermodel(search_space={"unfreeze": False}))
    assert [p.name for p in hp.space] == [
        "backbone",
        "image_size",
        "head_depth",
        "head_units",
        "dropout",
        "learning_rate",
        "augmentation_strength",
        "label_smoothing",
        "unfreeze",
    ]


@pytest.mark.parametrize(
    "search_space, message",
    [
        ({"dropuot": 0.3}, r"Unknown hyperparameter\(s\) \['dropuot'\].*'dropout'"),
        ({"dropout": []}, r"search_space\['dropout'\] is an empty list"),
        ({"dropout": 1.5}, r"'dropout' must be a number in \[0, 1\)"),
        ({"unfreeze_blocks": [3, 20]}, r"from 1 to 14 \(the number of blocks of mobilenet\)"),
        ({"frozen_epochs": 7}, r"'frozen_epochs' must be an integer from 1 to epochs=3"),
        ({"learning_rate": {"sampling": "sideways"}}, r"does not fit the default Float"),
        ({"backbone": "resnet50"}, r"tune\(backbones=\[...\]\)"),
        ({"dropout": object()}, r"must be a value \(fixes it\), a list"),
    ],
)
def test_bad_search_spaces_say_what_is_wrong(search_space, message):
    with pytest.raises(ValueError, match=message):
        hypermodel(search_space=search_space)


def test_a_given_input_size_is_searched_with_one_about_a_quarter_larger():
    model = FineTunerHyperModel(["cat", "dog"], "mobilenet", weights=None, input_shape=128)
    size = {p.name: p for p in declared(model).space}["image_size"]
    assert isinstance(size, hp_types.Choice)
    assert size.values == [128, 160] and size.default == 128
    # The default trial keeps the given size; the larger one builds a larger model.
    assert model.make_finetuner(declared(model)).input_shape == (128, 128, 3)
    assert model.make_finetuner(declared(model, {"image_size": 160})).input_shape == (
        160,
        160,
        3,
    )
    assert [larger_size(side) for side in (64, 160, 224)] == [96, 192, 288]
    # Where the larger size rounds back to the given one, the size is fixed.
    assert isinstance(image_sizes(32), hp_types.Fixed)
    # A size the user lists replaces the default pair.
    listed = hypermodel(search_space={"image_size": [32, 64]})
    assert {p.name: p for p in declared(listed).space}["image_size"].values == [32, 64]


def test_a_space_where_nothing_varies_is_empty():
    fixed = {
        "head_depth": 0,
        "dropout": 0.2,
        "learning_rate": 1e-3,
        "augmentation_strength": 0.0,
        "label_smoothing": 0.0,
        "unfreeze": False,
    }
    with pytest.raises(ValueError, match="The search space is empty: every hyperparameter"):
        hypermodel(search_space=fixed)
    with pytest.raises(ValueError, match="`backbones` is empty"):
        hypermodel([])


def test_a_weights_file_needs_a_dict_for_several_backbones(tmp_path):
    with pytest.raises(ValueError, match="A weights file fits one backbone"):
        FineTunerHyperModel(
            ["cat", "dog"], ["mobilenet", "mobilenetv2"], weights=str(tmp_path / "w.weights.h5")
        )
    model = FineTunerHyperModel(
        ["cat", "dog"],
        ["mobilenet", "mobilenetv2"],
        weights={"mobilenet": None, "mobilenetv2": "imagenet"},
        input_shape=32,
    )
    assert model.weights == {"mobilenet": None, "mobilenetv2": "imagenet"}


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"max_trials": 0}, ValueError, r"`max_trials` must be an integer >= 1.*max_trials=0"),
        ({"max_trials": 2.5}, ValueError, r"max_trials=2.5"),
        ({"tuner": "annealing"}, ValueError, r"Unknown tuner 'annealing'.*'hyperband'"),
        ({"tuner": keras.Model}, ValueError, r"Unknown tuner"),
        ({"batch_size": 0}, ValueError, r"`batch_size` must be an integer >= 1"),
        ({"change_rate": 0}, ValueError, r"`change_rate` must be a fraction in \(0, 1\]"),
        ({"change_rate": 1.5}, ValueError, r"change_rate=1.5"),
        ({"validation_split": 0}, ValueError, r"A search compares trials on validation data"),
        (
            {"objective": "val_auc"},
            ValueError,
            r"one of \['val_accuracy', 'val_loss'.*objective='val_auc'",
        ),
    ],
)
def test_bad_tune_arguments_fail_before_any_training(image_folder, kwargs, error, message):
    with pytest.raises(error, match=message):
        tune(image_folder(), backbones="mobilenet", weights=None, input_shape=32, **kwargs)


def test_a_half_configured_distributed_search_says_which_variable_is_missing(
    image_folder, monkeypatch
):
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.delenv("KERASTUNER_ORACLE_PORT", raising=False)
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "worker0")
    with pytest.raises(ValueError, match="KERASTUNER_ORACLE_PORT is not set"):
        tune(image_folder(), backbones="mobilenet", weights=None, input_shape=32)
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    with pytest.raises(ValueError, match="seed=None would draw a different validation split"):
        tune(image_folder(), backbones="mobilenet", weights=None, input_shape=32, seed=None)

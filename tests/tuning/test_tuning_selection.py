"""tk.tune's selection: the default recipe first, finalists on a confirmation split, the time
budget, refit on every image, and bad input. Tiny models (MobileNet, no weights, 32 px)."""

import contextlib
import dataclasses
import logging
import types

import keras_tuner
import numpy as np
import pytest
from keras_tuner.engine.trial import Trial

import transferkit as tk
from transferkit import defaults
from transferkit.tuning import selection, tune
from transferkit.tuning.budget import budgeted
from transferkit.tuning.selection import Finalist, choose

TINY = {"backbones": "mobilenet", "weights": None, "input_shape": 32, "batch_size": 8}


@contextlib.contextmanager
def log_messages():
    """The transferkit log's messages (it does not propagate to pytest's caplog)."""
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("transferkit")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, write_class_folder):
    return write_class_folder(tmp_path_factory.mktemp("images"), per_class=10)


@pytest.fixture(scope="module")
def search(folder, tmp_path_factory):
    """A 3-trial search over the default space (the default recipe unfreezes)."""
    return tune(
        folder,
        epochs=2,
        max_trials=3,
        directory=tmp_path_factory.mktemp("search"),
        verbose=0,
        **TINY,
    )


def test_the_default_recipe_is_trial_one(search):
    first = search.trials[0]
    assert first.trial_id == search.default_trial.trial_id
    values = first.hyperparameters.values
    assert values["learning_rate"] == defaults.LEARNING_RATE
    assert values["fine_tune_learning_rate"] == defaults.FINE_TUNE_LEARNING_RATE
    assert values["lowest_block_multiplier"] == defaults.LOWEST_BLOCK_MULTIPLIER
    assert values["dropout"] == defaults.DROPOUT
    assert values["frozen_epochs"] == defaults.FROZEN_EPOCHS
    assert values["augmentation_strength"] == 0.0 and values["label_smoothing"] == 0.0
    assert values["image_size"] == 32
    # ...and it builds exactly what FineTuner does when left alone.
    finetuner = search.hypermodel.make_finetuner(first.hyperparameters.copy())
    default = tk.FineTuner("mobilenet", weights=None, input_shape=32)
    assert finetuner.augmentation == default.augmentation
    assert finetuner.schedule.get_config() == tk.schedules.get(default.schedule).get_config()
    assert finetuner.head.get_config()["dropout"] == default.head.get_config()["dropout"]


def test_finalists_are_measured_on_images_the_search_never_used(search):
    confirmation = search._confirmation
    used = set(search._train.paths) | set(search._validation.paths)
    assert confirmation is not None and not used & set(confirmation.paths)
    finalists = search.finalists
    assert list(finalists.columns) == [
        "trial_id",
        "default",
        "anchor",
        "val_accuracy",
        "confirmation_accuracy",
        "validation_gain",
        "confirmation_gain",
        "chosen",
        "reason",
    ]
    assert len(finalists) == 3 and finalists["default"].sum() == 1
    assert finalists.iloc[0]["default"] and finalists.iloc[0]["confirmation_gain"] == 0
    assert finalists["chosen"].sum() == 1
    chosen = finalists.loc[finalists["chosen"], "trial_id"].item()
    assert search.best_trial.trial_id == chosen
    # How much of the validation gain survived is reported (None: nothing to survive).
    gain = search.validation_gain
    assert gain == pytest.approx(finalists["validation_gain"].max())
    assert search.gain_survived is None if gain <= 0 else search.gain_survived is not None


def test_the_default_keeps_its_place_unless_a_challenger_is_clearly_better():
    truth = np.ones(200, dtype=bool)
    default = Finalist("0", True, 0.80, 0.80, truth.copy())
    # Three more right, two more wrong: a difference of noise.
    noisy = truth.copy()
    noisy[:2] = False
    default.correct[2:5] = False
    challenger = Finalist("1", False, 0.90, 0.805, noisy)
    assert choose([default, challenger], multi_label=False) is default
    # Twenty more right than wrong on the disagreements: clear.
    clear = truth.copy()
    default.correct[:25] = False
    clear[:5] = False
    assert choose(
        [default, Finalist("2", False, 0.85, 0.9, clear)], multi_label=False
    ).trial_id == ("2")


def test_reasons_say_why_a_better_looking_trial_was_not_chosen():
    default_right = np.ones(100, dtype=bool)
    default_right[[0, 1, 2]] = False
    challenger_right = np.ones(100, dtype=bool)
    challenger_right[[3, 4]] = False  # 3 wins and 2 losses on the 5 disagreeing images
    default = Finalist("00", True, 0.594, 0.97, default_right)
    # Better than the default on validation and on confirmation, yet within its noise.
    challenger = Finalist("03", False, 0.7188, 0.98, challenger_right)
    runner_up = Finalist("04", False, 0.70, 0.97, default_right.copy())
    finalists = [default, challenger, runner_up]
    assert choose(finalists, multi_label=False) is default
    why = selection.reasons(finalists, multi_label=False)
    assert why["00"] == "the default recipe, kept: no finalist beat it"
    assert why["03"] == (
        "not clearly better than trial 00: right on 3 of the 5 confirmation images where "
        "they disagree (4 needed)"
    )
    assert why["04"].startswith("measured only: the search's own pick, trial 03")
    # The bar: z = 1.28 standard deviations of the count under "equally good".
    assert [selection.wins_needed(n) for n in (1, 3, 5, 10, 24)] == [None, 3, 4, 8, 16]


def test_reasons_name_what_replaced_the_default_recipe():
    default = Finalist("00", True, 0.80, 0.80, np.ones(200, dtype=bool))
    default.correct[:16] = False
    leader = np.ones(200, dtype=bool)
    leader[16:24] = False  # 16 wins, 8 losses: clearly better
    finalists = [default, Finalist("02", False, 0.86, 0.84, leader)]
    why = selection.reasons(finalists, multi_label=False)
    assert why["02"] == (
        "clearly better than trial 00: right on 16 of the 24 confirmation images where "
        "they disagree (16 needed)"
    )
    assert why["00"] == "the default recipe; replaced by trial 02"
    # A larger size that is right on more images, then kept against a weak pick.
    larger = Finalist("01", False, 0.85, 0.82, np.ones(200, dtype=bool), anchor=True)
    weak = Finalist("03", False, 0.90, 0.80, default.correct.copy())
    finalists = [default, larger, weak]
    why = selection.reasons(finalists, False, validation_images=100, confirmation_images=200)
    assert choose(finalists, False, 100, 200) is larger
    # (0.05 * 100 + 0.02 * 200) / 300 of 300 images: 9 more right.
    assert why["01"] == (
        "the default recipe at a larger size, right on 9 more of the 300 validation and "
        "confirmation images than the default recipe"
    )
    assert why["00"] == "the default recipe, passed over for trial 01"
    assert why["03"] == (
        "not clearly better than trial 01: right on 0 of the 16 confirmation images where "
        "they disagree (11 needed)"
    )
    # Multi-label: the gain in mean average precision and the bar.
    ml = [Finalist("00", True, 0.5, 0.60, None), Finalist("05", False, 0.7, 0.605, None)]
    assert selection.reasons(ml, multi_label=True)["05"] == (
        "not clearly better than trial 00: +0.0050 confirmation mean average precision "
        "(more than +0.01 needed)"
    )


def test_the_challenger_is_the_searchs_own_pick_not_the_best_on_confirmation():
    """One comparison fixed in advance: the trial the search ranked first, at z = 1.28."""
    default = Finalist("0", True, 0.80, 0.80, np.ones(200, dtype=bool))
    default.correct[:16] = False
    leader = np.ones(200, dtype=bool)
    leader[16:24] = False  # 16 wins, 8 losses: 8 > 1.28 * sqrt(24) = 6.3
    lucky = np.ones(200, dtype=bool)  # 16 wins, no loss
    searchs_pick = Finalist("1", False, 0.86, 0.84, leader)
    runner_up = Finalist("2", False, 0.85, 0.88, lucky)
    assert choose([default, searchs_pick, runner_up], multi_label=False) is searchs_pick
    # When the search's pick does not clear the bar, a runner-up that would is not tried.
    weak = Finalist("3", False, 0.87, 0.80, default.correct.copy())
    assert choose([default, weak, runner_up], multi_label=False) is default
    # Without the default among the finalists, the best on confirmation wins.
    assert choose([searchs_pick, runner_up], multi_label=False) is runner_up


def _right(total: int, wrong: slice) -> np.ndarray:
    correct = np.ones(total, dtype=bool)
    correct[wrong] = False
    return correct


def test_the_larger_size_wins_on_validation_and_confirmation_images_together():
    """Named before the search, it needs no bar: more right on both splits pooled."""
    default = Finalist("0", True, 0.80, 0.80, _right(200, slice(0, 40)))
    # +2 points on 100 validation images, +1.5 on 200 confirmation images (5 wins, 2 losses)...
    larger = Finalist("1", False, 0.82, 0.815, _right(200, slice(5, 42)), anchor=True)
    chosen = choose([default, larger], False, validation_images=100, confirmation_images=200)
    assert chosen is larger
    # ...where the same scores from a trial picked on validation are noise.
    picked = dataclasses.replace(larger, anchor=False)
    assert choose([default, picked], False, 100, 200) is default
    # A validation lead that the confirmation images undo is no gain.
    undone = Finalist("2", False, 0.81, 0.79, _right(200, slice(0, 42)), anchor=True)
    assert choose([default, undone], False, 100, 200) is default
    # A tie keeps the default (the larger input costs more seconds).
    tie = Finalist("3", False, 0.82, 0.79, _right(200, slice(0, 42)), anchor=True)
    assert choose([default, tie], False, 100, 200) is default
    # With several larger sizes, the one right on the most images.
    largest = Finalist("4", False, 0.85, 0.815, _right(200, slice(5, 42)), anchor=True)
    assert choose([default, larger, largest], False, 100, 200) is largest
    # Without a validation score, the confirmation images alone.
    unscored = Finalist("5", False, float("nan"), 0.815, larger.correct, anchor=True)
    assert choose([default, unscored], False, 100, 200) is unscored


def test_the_searchs_pick_must_clearly_beat_the_larger_size_once_it_won():
    default = Finalist("0", True, 0.80, 0.80, _right(200, slice(0, 40)))
    larger = Finalist("1", False, 0.84, 0.84, _right(200, slice(0, 32)), anchor=True)
    # Clearly better than the default (16 wins, 8 losses) but not than the larger size.
    pick = Finalist("2", False, 0.86, 0.84, _right(200, slice(16, 48)))
    assert choose([default, pick], False, 100, 200) is pick
    assert choose([default, larger, pick], False, 100, 200) is larger
    # Clearly better than the larger size: chosen.
    best = Finalist("3", False, 0.86, 0.88, _right(200, slice(0, 24)))
    assert choose([default, larger, best], False, 100, 200) is best


def test_multi_label_pools_mean_average_precision_by_images():
    default = Finalist("0", True, 0.70, 0.70, None)
    larger = Finalist("1", False, 0.73, 0.69, None, anchor=True)
    # +3 points on 100 validation images, -1 on 200 confirmation images: +1/3 pooled.
    assert choose([default, larger], True, 100, 200) is larger
    assert choose([default, larger], True, 100, 400) is default


def test_the_larger_size_is_measured_beside_the_finalists(folder, tmp_path, monkeypatch):
    """Trial two (the default recipe at the larger size) is compared on both splits' images."""
    calls = []
    real_choose = selection.choose

    def spy(measured, multi_label, validation_images=0, confirmation_images=0):
        calls.append((measured, validation_images, confirmation_images))
        return real_choose(measured, multi_label, validation_images, confirmation_images)

    monkeypatch.setattr(selection, "choose", spy)
    result = tune(
        folder,
        epochs=1,
        max_trials=3,
        search_space={"image_size": [32, 64]},
        finalists=2,
        directory=tmp_path,
        verbose=0,
        **TINY,
    )
    [anchor] = result.anchor_trials
    assert anchor.trial_id == result.trials[1].trial_id
    assert anchor.hyperparameters.values["image_size"] == 64
    # finalists=2 is the default recipe and the search's pick; the larger size comes beside.
    draw = result.trials[2]
    assert result.finalists["trial_id"].tolist() == [
        result.default_trial.trial_id,
        anchor.trial_id,
        draw.trial_id,
    ]
    assert result.finalists["anchor"].tolist() == [False, True, False]
    [(measured, validation_images, confirmation_images)] = calls
    assert [finalist.anchor for finalist in measured] == [False, True, False]
    assert validation_images == len(result._validation) > 0
    assert confirmation_images == len(result._confirmation) > 0


def test_refit_trains_on_every_image_and_the_model_keeps_its_settings(search, tmp_path):
    with log_messages() as messages:
        finetuner = search.best_finetuner(refit=True)
    every = len(search._train) + len(search._validation) + len(search._confirmation)
    assert every == 20
    assert any(f"on {every} images" in message for message in messages)
    history = finetuner.history
    assert "val_accuracy" not in history or history["val_accuracy"].isna().all()
    finetuner.save(tmp_path / "best.keras")
    loaded = tk.load(tmp_path / "best.keras")
    trial_finetuner = search.hypermodel.make_finetuner(search.best_trial.hyperparameters.copy())
    assert (
        loaded.get_config()["schedule"]
        == tk.FineTuner(schedule=trial_finetuner.schedule).get_config()["schedule"]
    )
    assert loaded.get_config()["input_shape"] == [32, 32, 3]
    with pytest.raises(ValueError, match="not both"):
        search.best_finetuner(refit=True, retrain=True)


def test_a_time_budget_too_small_for_one_trial_is_an_error(folder, tmp_path):
    with log_messages() as messages:
        with pytest.raises(RuntimeError, match=r"time_budget=0.01s is too small for one trial"):
            tune(folder, epochs=2, max_trials=3, time_budget=0.01, directory=tmp_path, **TINY)
    assert any("the search stopped after 1 trial" in message for message in messages)


class _Tuner:
    """Just what TimeBudget reads from a KerasTuner tuner."""

    def __init__(self, seconds, sizes=None, next_anchor=None):
        self.hypermodel = types.SimpleNamespace()
        trials = {}
        for index, value in enumerate(seconds):
            hp = keras_tuner.HyperParameters()
            if sizes:
                hp.values["image_size"] = sizes[index]
            trial = Trial(hp, str(index), status="COMPLETED")
            trial.metrics.register("seconds", "min")
            trial.metrics.update("seconds", value)
            trials[str(index)] = trial
        self.oracle = types.SimpleNamespace(trials=trials, max_trials=20)
        if next_anchor is not None:
            self.oracle.next_anchor = lambda: next_anchor

    def on_search_begin(self):
        pass

    def pre_create_trial(self):
        pass


def test_a_time_budget_starts_no_trial_it_cannot_pay_for():
    tuner = budgeted(_Tuner)([30.0, 50.0])  # 40 s a trial on average
    tuner.time_budget = 100.0
    tuner.on_search_begin()
    assert tuner.hypermodel.deadline == tuner.search_started + 100.0
    tuner.search_started -= 50  # 50 s spent: 40 more fit in the budget
    tuner.pre_create_trial()
    assert not tuner.stopped_by_budget and tuner.oracle.max_trials == 20
    tuner.search_started -= 20  # 70 s spent: another 40 would end at 110
    tuner.pre_create_trial()
    assert tuner.stopped_by_budget and tuner.oracle.max_trials == 2


def test_a_time_budget_prices_the_larger_size_trial_by_its_pixels():
    # Trial one took 40 s at 128 px; trial two is the default recipe at 160 px: 62.5 s.
    tuner = budgeted(_Tuner)([40.0], sizes=[128], next_anchor={"image_size": 160})
    assert tuner.next_trial_seconds() == pytest.approx(40.0 * (160 / 128) ** 2)
    tuner.time_budget = 100.0
    tuner.on_search_begin()
    tuner.search_started -= 45  # 45 s spent: 40 more would fit, 62.5 would not
    tuner.pre_create_trial()
    assert tuner.stopped_by_budget and tuner.oracle.max_trials == 1
    # A random draw's size is unknown in advance: the plain mean.
    plain = budgeted(_Tuner)([40.0, 60.0], sizes=[128, 160], next_anchor=None)
    assert plain.next_trial_seconds() == pytest.approx(50.0)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"time_budget": 0}, "time_budget"),
        ({"time_budget": "1h"}, "time_budget"),
        ({"finalists": 0}, "finalists"),
        ({"confirmation_split": 1.5}, "confirmation_split"),
        ({"backbones": ["mobilenet", "no_such_net"]}, "no_such_net"),
    ],
)
def test_bad_input_is_refused_before_any_trial(folder, tmp_path, arguments, message):
    settings = {**TINY, **arguments}
    with pytest.raises(ValueError, match=message):
        tune(folder, epochs=2, max_trials=2, directory=tmp_path, **settings)

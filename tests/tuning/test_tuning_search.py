"""tk.tune on a tiny model: results, the shared feature cache, best_finetuner, resume, failures.

Trials search the head alone (`unfreeze=False`) where the test allows, since a
frozen backbone trains on cached features in a second or two per trial.
"""

import gc
import logging
import os
import weakref

import keras
import numpy as np
import pandas as pd
import pytest

import transferkit as tk
from transferkit.data import as_image_source, stratified_split
from transferkit.features import FeatureCache
from transferkit.tuning import FineTunerHyperModel, TuneResult, tune

EPOCHS = 2
TRIALS = 3
TINY = {"backbones": "mobilenet", "weights": None, "input_shape": 32, "batch_size": 8}
# A head search; augmentation fixed, since each strength caches augmented views of its own.
HEAD_ONLY = {"unfreeze": False, "augmentation_strength": 0.0}


class LogCounter(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


class HeadWeightsRecorder(keras.callbacks.Callback):
    """Keeps the head's weights after every epoch of every trial (class-level: KerasTuner
    deep-copies callbacks per trial)."""

    runs = []

    def on_train_begin(self, logs=None):
        HeadWeightsRecorder.runs.append({})

    def on_epoch_end(self, epoch, logs=None):
        HeadWeightsRecorder.runs[-1][epoch + 1] = [w.copy() for w in self.model.get_weights()]


@pytest.fixture(scope="module")
def folder(tmp_path_factory, write_class_folder):
    return write_class_folder(tmp_path_factory.mktemp("images"), per_class=10)


@pytest.fixture(scope="module")
def head_search(folder, tmp_path_factory):
    """A 3-trial head search, with its feature cache, log lines and the models it built."""
    cache = FeatureCache()
    counter = LogCounter()
    built = []
    original_build = FineTunerHyperModel.build

    def build(self, hp):
        model = original_build(self, hp)
        built.append(weakref.ref(model))
        return model

    logger = logging.getLogger("transferkit")
    logger.addHandler(counter)
    HeadWeightsRecorder.runs = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FineTunerHyperModel, "build", build)
        result = tune(
            folder,
            epochs=EPOCHS,
            max_trials=TRIALS,
            search_space=HEAD_ONLY,
            cache_features=cache,
            callbacks=[HeadWeightsRecorder()],
            confirmation_split=0,  # these tests compare trials on validation alone
            directory=tmp_path_factory.mktemp("search"),
            verbose=0,
            **TINY,
        )
    logger.removeHandler(counter)
    gc.collect()
    return {
        "result": result,
        "cache": cache,
        "messages": counter.messages,
        "built": built,
        "weights": list(HeadWeightsRecorder.runs),
    }


def test_results_have_one_row_per_trial_with_hyperparameters_and_metrics(head_search):
    result = head_search["result"]
    assert isinstance(result, TuneResult)
    results = result.results
    assert len(results) == TRIALS
    assert results["trial_id"].is_unique
    assert (results["status"] == "COMPLETED").all()
    columns = list(results.columns)
    assert columns[:2] == ["trial_id", "status"]
    assert columns[-2:] == ["best_epoch", "seconds"]
    expected = ["backbone", "head_depth", "dropout", "learning_rate", "unfreeze", "val_accuracy"]
    assert set(expected) <= set(columns)
    assert columns.index("learning_rate") < columns.index("val_accuracy")
    assert "frozen_epochs" not in columns  # a head-only search never unfreezes
    assert results["best_epoch"].between(1, EPOCHS).all()
    assert (results["seconds"] > 0).all()
    assert results["val_accuracy"].between(0, 1).all()
    # Trials differ in what was searched (near the default: a few values each), not in
    # what was fixed.
    searched = ["head_depth", "head_units", "dropout", "learning_rate", "label_smoothing"]
    assert not results.reindex(columns=searched).astype(str).duplicated().any()
    assert (results["unfreeze"] == False).all()  # noqa: E712
    best = results.loc[results["val_accuracy"].idxmax()]
    assert result.best_trial.trial_id == best["trial_id"]
    assert result.best_hyperparameters["learning_rate"] == best["learning_rate"]


def test_trials_that_share_a_backbone_compute_its_features_once(head_search):
    computed = [m for m in head_search["messages"] if m.startswith("computed")]
    # Once for the training images (2 views), once for the validation images.
    assert len(computed) == 2, computed
    assert "(2 view(s) of 16 images)" in computed[0]
    assert "(1 view(s) of 4 images)" in computed[1]
    cache = head_search["cache"]
    assert (cache.misses, cache.hits) == (2, 2 * (TRIALS - 1))


def test_no_trial_model_outlives_its_trial(head_search):
    # Space exploration builds models too; every one of them must be collectable.
    assert len(head_search["built"]) >= TRIALS
    assert all(ref() is None for ref in head_search["built"])


def test_best_finetuner_has_the_best_epochs_weights_and_predicts(head_search, folder, tmp_path):
    result = head_search["result"]
    finetuner = result.best_finetuner()
    assert isinstance(finetuner, tk.FineTuner)
    trial_index = [t.trial_id for t in result.trials].index(result.best_trial.trial_id)
    best_epoch = int(result.results.loc[trial_index, "best_epoch"])
    recorded = head_search["weights"][trial_index]
    assert len(recorded) == EPOCHS
    # Keras trained the head alone, whose weights are the head's but for its temperature.
    trained = [w.numpy() for w in finetuner.model.head.weights if w.name != "temperature"]
    for loaded, expected in zip(trained, recorded[best_epoch], strict=True):
        np.testing.assert_array_equal(loaded, expected)
    assert finetuner.history["epoch"].tolist() == list(range(1, EPOCHS + 1))
    # KerasTuner's own loading finds the same whole-model checkpoint.
    (from_keras_tuner,) = result.tuner.get_best_models(1)
    theirs = {weight.path: weight.numpy() for weight in from_keras_tuner.weights}
    ours = {weight.path: weight.numpy() for weight in finetuner.model.weights}
    assert set(theirs) == set(ours)
    for path, value in ours.items():
        np.testing.assert_array_equal(theirs[path], value, err_msg=path)

    predictions = finetuner.predict(sorted(str(p) for p in (folder / "cat").iterdir())[:3])
    assert list(predictions.columns) == ["path", "label", "probability", "prob_cat", "prob_dog"]
    np.testing.assert_allclose(predictions[["prob_cat", "prob_dog"]].sum(axis=1), 1, rtol=1e-5)
    finetuner.save(tmp_path / "best.keras")
    again = tk.load(tmp_path / "best.keras")
    pd.testing.assert_frame_equal(again.predict(predictions["path"].tolist()), predictions)


def test_plot_draws_the_search(head_search, tmp_path):
    figure = head_search["result"].plot(tmp_path / "search.png")
    assert (tmp_path / "search.png").stat().st_size > 0
    assert "3 trials" in figure.axes[0].get_title()


def test_class_weight_by_class_name_reaches_every_trial(folder, tmp_path):
    # Zero weight for both classes makes every training loss exactly zero.
    result = tune(
        folder,
        epochs=1,
        max_trials=2,
        search_space=HEAD_ONLY,
        class_weight={"cat": 0.0, "dog": 0.0},
        confirmation_split=0,  # the subject is training; confirmation is tested elsewhere
        cache_features=FeatureCache(),
        directory=tmp_path,
        verbose=0,
        **TINY,
    )
    assert (result.results["status"] == "COMPLETED").all()
    assert (result.results["loss"] == 0).all()
    assert (result.results["val_loss"] > 0).all()


def test_every_trial_trains_and_validates_on_the_same_split(folder, tmp_path):
    seen = []
    original_fit = FineTunerHyperModel.fit

    def fit(self, hp, model, data, *args, **kwargs):
        seen.append((data, kwargs["validation_data"]))
        return original_fit(self, hp, model, data, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FineTunerHyperModel, "fit", fit)
        result = tune(
            folder,
            epochs=1,
            max_trials=2,
            validation_split=0.3,
            confirmation_split=0,
            seed=3,
            search_space=HEAD_ONLY,
            cache_features=FeatureCache(),
            directory=tmp_path,
            verbose=0,
            **TINY,
        )
    train, validation = stratified_split(as_image_source(folder), 0.3, seed=3)
    assert len(seen) == 2
    for data, validation_data in seen:
        assert data.paths == train.paths
        assert validation_data.paths == validation.paths
    assert len(validation.paths) == 6  # 30% of each class of 10
    report = result.best_finetuner().evaluate(validation)
    assert report["accuracy"] == pytest.approx(result.results["val_accuracy"].max())

    # Without its saved weights, the best trial can be trained again on the same split.
    folder_of_best = tmp_path / "search" / f"trial_{result.best_trial.trial_id}"
    (folder_of_best / "checkpoint.weights.h5").unlink()
    with pytest.raises(FileNotFoundError, match=r"best_finetuner\(retrain=True\)"):
        result.best_finetuner()
    retrained = result.best_finetuner(retrain=True)
    assert retrained.history["epoch"].tolist() == [1]
    assert retrained.evaluate(validation)["num_images"] == 6


def test_an_interrupted_search_resumes_without_redoing_finished_trials(folder, tmp_path):
    calls = []
    original_fit = FineTunerHyperModel.fit

    def fit(self, hp, model, *args, **kwargs):
        calls.append(hp.values["learning_rate"])
        if len(calls) == 3:
            raise KeyboardInterrupt  # the machine went down in the third trial
        return original_fit(self, hp, model, *args, **kwargs)

    settings = dict(
        epochs=1,
        max_trials=3,
        search_space=HEAD_ONLY,
        confirmation_split=0,  # the subject is resuming; confirmation is tested elsewhere
        cache_features=FeatureCache(),
        directory=tmp_path,
        verbose=0,
        **TINY,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FineTunerHyperModel, "fit", fit)
        with pytest.raises(KeyboardInterrupt):
            tune(folder, **settings)
        result = tune(folder, **settings)
    assert len(calls) == 4  # two finished, one interrupted, then only that one again
    assert calls[3] == calls[2]
    assert len(result.results) == 3
    assert (result.results["status"] == "COMPLETED").all()
    assert result.results["learning_rate"].tolist() == calls[:3]

    # A finished search run again does nothing more.
    calls.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FineTunerHyperModel, "fit", fit)
        again = tune(folder, **settings)
    assert calls == []
    pd.testing.assert_frame_equal(again.results, result.results)

    # A different search in the same folder is refused, not silently continued.
    with pytest.raises(ValueError, match=r"holds a different search.*\['search_space'\]"):
        tune(folder, **{**settings, "search_space": {"unfreeze": False, "dropout": 0.3}})


class Exploding(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        raise OSError("No space left on device")


@pytest.mark.parametrize(
    "max_trials, message",
    [
        # KerasTuner itself only prints each failed trial and ends the search normally...
        (2, "The search ended with no successful trial"),
        # ...unless 3 fail in a row, when it raises the last one's traceback alone.
        (3, "The search stopped: trials failed one after another"),
    ],
)
def test_a_search_with_no_successful_trial_raises_the_trials_error(
    folder, tmp_path, max_trials, message
):
    with pytest.raises(RuntimeError, match=message) as error:
        tune(
            folder,
            epochs=1,
            max_trials=max_trials,
            search_space=HEAD_ONLY,
            callbacks=[Exploding()],
            cache_features=FeatureCache(),
            directory=tmp_path,
            verbose=0,
            **TINY,
        )
    assert "OSError: No space left on device" in str(error.value)
    assert "Traceback" in str(error.value)


def test_hyperband_continues_trials_from_their_checkpoint(folder, tmp_path):
    result = tune(
        folder,
        epochs=3,
        max_trials=5,
        tuner="hyperband",
        tuner_options={"factor": 3},
        search_space=HEAD_ONLY,
        confirmation_split=0,  # the subject is Hyperband's brackets
        cache_features=FeatureCache(),
        directory=tmp_path,
        verbose=0,
        **TINY,
    )
    results = result.results
    assert len(results) == 5  # max_trials caps Hyperband's brackets
    assert (results["status"] == "COMPLETED").all()
    # Trial one, the default recipe, runs every epoch before the brackets start.
    assert results.loc[0, "trial_id"] == result.default_trial.trial_id
    assert pd.isna(results.loc[0, "tuner/epochs"])
    continued = results[results["tuner/initial_epoch"] > 0]
    assert len(continued) == 1
    row = continued.iloc[0]
    history = pd.read_csv(
        os.path.join(tmp_path, "search", f"trial_{row['trial_id']}", "history.csv")
    )
    assert history["epoch"].tolist() == list(range(int(row["tuner/initial_epoch"]) + 1, 4))
    assert 2 <= row["best_epoch"] <= 3

import re

import keras
import numpy as np
import pandas as pd
import pytest

import transferkit as tk
from transferkit.heads import ClassificationHead


def tiny_backbone(size=16):
    """A two-block convolutional backbone with BatchNorm, fast enough for unit tests.

    Always initialised alike: comparisons between two FineTuners need the same backbone.
    """
    keras.utils.set_random_seed(1234)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255, name="rescaling")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="block1_conv")(x)
    x = keras.layers.BatchNormalization(name="block1_bn")(x)
    x = keras.layers.ReLU(name="block1_relu")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="block2_conv")(x)
    x = keras.layers.BatchNormalization(name="block2_bn")(x)
    x = keras.layers.ReLU(name="block2_relu")(x)
    return keras.Model(inputs, x, name="tiny")


def tiny_finetuner(**kwargs):
    kwargs.setdefault("seed", 1)
    kwargs.setdefault("head", ClassificationHead(dropout=0.0))
    return tk.FineTuner(tiny_backbone(), weights=None, **kwargs)


HISTORY_COLUMNS = [
    "epoch",
    "phase",
    "learning_rate",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "seconds",
]


def test_three_line_fine_tune_on_a_folder(image_folder):
    root = image_folder()
    ft = tiny_finetuner(
        schedule=tk.FreezeUnfreeze(
            frozen_epochs=2, learning_rate=0.1, fine_tune_learning_rate=1e-2
        )
    )
    history = ft.fit(root, epochs=3, batch_size=8, verbose=0)
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["phase"].tolist() == ["frozen", "frozen", "unfrozen"]
    assert (history["learning_rate"] > 0).all() and (history["seconds"] >= 0).all()
    predictions = ft.predict(sorted(str(p) for p in (root / "dog").iterdir())[:3])
    assert list(predictions.columns) == ["path", "label", "probability", "prob_cat", "prob_dog"]
    np.testing.assert_allclose(predictions[["prob_cat", "prob_dog"]].sum(axis=1), 1.0, rtol=1e-5)
    assert predictions["label"].isin(["cat", "dog"]).all()


def test_it_learns_red_cats_from_blue_dogs(image_folder):
    root = image_folder()
    ft = tiny_finetuner(schedule=tk.Freeze(learning_rate=0.1))
    history = ft.fit(root, epochs=15, batch_size=8, verbose=0)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert (ft.predict(root / "dog")["label"] == "dog").all()
    assert (ft.predict(root / "cat")["label"] == "cat").all()


def test_the_log_says_when_each_phase_starts_and_that_it_recompiled(image_folder, capfd):
    ft = tiny_finetuner(schedule=tk.FreezeUnfreeze(frozen_epochs=1))
    ft.fit(image_folder(), epochs=2, batch_size=8, verbose=0)
    err = capfd.readouterr().err
    assert "epoch 1-1: phase 'frozen': backbone tiny frozen" in err
    assert "epoch 2-2: phase 'unfrozen'" in err and "recompiled" in err
    assert "BatchNorm kept in inference mode" in err


class TrainableSpy(keras.callbacks.Callback):
    """Records, at the start of each epoch, which backbone layers are trainable."""

    def __init__(self, finetuner):
        super().__init__()
        self.finetuner = finetuner
        self.seen = {}

    def on_epoch_begin(self, epoch, logs=None):
        backbone = self.finetuner.model.backbone
        self.seen[epoch] = {
            layer.name for layer in backbone.layers if layer.trainable and layer.weights
        }


@pytest.mark.parametrize(
    "schedule, expected",
    [
        (tk.Freeze(), [set(), set(), set()]),
        (tk.NoFreeze(), [{"block1_conv", "block2_conv"}] * 3),
        (
            tk.FreezeUnfreeze(frozen_epochs=1),
            [set(), {"block1_conv", "block2_conv"}, {"block1_conv", "block2_conv"}],
        ),
        (tk.GradualUnfreeze(), [set(), {"block2_conv"}, {"block1_conv", "block2_conv"}]),
        (
            tk.NoFreeze(train_bn=True),
            [{"block1_conv", "block1_bn", "block2_conv", "block2_bn"}] * 3,
        ),
    ],
)
def test_trainable_layers_at_each_epoch(image_folder, schedule, expected):
    ft = tiny_finetuner(schedule=schedule)
    ft.build(["cat", "dog"])
    spy = TrainableSpy(ft)
    ft.fit(image_folder(), epochs=3, batch_size=8, callbacks=[spy], verbose=0)
    assert [spy.seen[epoch] for epoch in range(3)] == expected


def test_batchnorm_statistics_unchanged_while_backbone_partly_frozen(image_folder):
    ft = tk.FineTuner(
        "mobilenet",
        weights=None,
        input_shape=(32, 32, 3),
        seed=0,
        schedule=tk.GradualUnfreeze(max_blocks=3),
    )
    ft.build(["cat", "dog"])
    statistics = {
        w.path: w.numpy().copy() for w in ft.model.backbone.weights if "moving" in w.path
    }
    ft.fit(image_folder(), epochs=3, batch_size=8, verbose=0)
    after = {w.path: w.numpy() for w in ft.model.backbone.weights if "moving" in w.path}
    assert len(statistics) == 2 * 27  # every BatchNorm layer of MobileNet
    assert all(np.array_equal(after[p], statistics[p]) for p in statistics)
    # ...although the top blocks' convolutions were trainable by then.
    assert ft.model.backbone.get_layer("conv_pw_13").trainable
    assert not ft.model.backbone.get_layer("conv_pw_13_bn").trainable


def test_unfrozen_blocks_train_and_frozen_ones_do_not(image_folder):
    ft = tiny_finetuner(schedule=tk.GradualUnfreeze(max_blocks=1))
    ft.build(["cat", "dog"])
    before = {w.path: w.numpy().copy() for w in ft.model.backbone.weights}
    ft.fit(image_folder(), epochs=2, batch_size=8, verbose=0)
    changed = {
        w.path for w in ft.model.backbone.weights if not np.array_equal(w.numpy(), before[w.path])
    }
    assert changed == {"block2_conv/kernel", "block2_conv/bias"}


def test_train_bn_opts_into_updating_statistics(image_folder):
    ft = tiny_finetuner(schedule=tk.NoFreeze(train_bn=True))
    ft.build(["cat", "dog"])
    before = ft.model.backbone.get_layer("block2_bn").moving_mean.numpy().copy()
    ft.fit(image_folder(), epochs=1, batch_size=8, verbose=0)
    assert not np.array_equal(ft.model.backbone.get_layer("block2_bn").moving_mean.numpy(), before)


def test_learning_rate_each_group_receives(image_folder):
    ft = tiny_finetuner(schedule=tk.NoFreeze(lowest_block_multiplier=0.01))
    ft.fit(image_folder(), epochs=1, batch_size=8, verbose=0)
    optimizer = ft.model.optimizer
    assert optimizer.multiplier_for("block1_conv/kernel") == pytest.approx(0.01)
    assert optimizer.multiplier_for("block2_conv/kernel") == pytest.approx(0.1)
    assert optimizer.multiplier_for("head/predictions/kernel") == 1.0


def test_cached_head_training_matches_end_to_end(image_folder):
    root = image_folder()
    results = []
    for cache in (True, False):
        ft = tiny_finetuner(
            schedule="freeze", augmentation=None, cache_features=cache, validation_split=0
        )
        ft.fit(root, epochs=3, batch_size=8, shuffle=False, verbose=0)
        results.append([w.numpy() for w in ft.model.head.weights])
    for cached, end_to_end in zip(*results, strict=True):
        np.testing.assert_allclose(cached, end_to_end, rtol=1e-4, atol=1e-5)


def test_a_second_fit_reuses_cached_features(image_folder):
    from transferkit.features import FeatureCache

    root = image_folder()
    cache = FeatureCache()
    ft = tiny_finetuner(schedule="freeze", cache_features=cache)
    ft.fit(root, epochs=1, batch_size=8, verbose=0)
    # Training and validation images: two entries computed, none found.
    assert (cache.misses, cache.hits) == (2, 0)
    ft.fit(root, epochs=1, batch_size=8, verbose=0)
    assert (cache.misses, cache.hits) == (2, 2)


@pytest.mark.parametrize(
    "schedule, cached_views, views",
    [
        # A warm-up before unfreezing takes the plain images only: half the cost.
        (tk.FreezeUnfreeze(frozen_epochs=1), None, 1),
        # A head-only run: the cached views are all the augmentation the head gets.
        (tk.Freeze(), None, 2),
        (tk.FreezeUnfreeze(frozen_epochs=1), 3, 3),  # an explicit count wins
    ],
)
def test_cached_views_follow_the_frozen_phases_role(
    image_folder, capfd, schedule, cached_views, views
):
    ft = tiny_finetuner(schedule=schedule, cached_views=cached_views)
    ft.fit(image_folder(), epochs=2, batch_size=8, verbose=0)
    # The training images first, then the validation images (always plain).
    counts = re.findall(
        r"computed (\d+) feature vectors \((\d+) view\(s\) of (\d+) images", capfd.readouterr().err
    )
    (vectors, got_views, images), validation = counts[0], counts[1]
    assert int(got_views) == views and int(vectors) == views * int(images)
    assert validation[1] == "1"


def test_save_and_load_give_identical_predictions(image_folder, tmp_path):
    root = image_folder()
    ft = tiny_finetuner()
    ft.fit(root, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "model.keras"
    ft.save(path)
    loaded = tk.load(path)
    assert loaded.class_names == ["cat", "dog"]
    pd.testing.assert_frame_equal(ft.predict(root / "cat"), loaded.predict(root / "cat"))
    plain = keras.saving.load_model(path)  # no custom_objects needed
    images = np.random.default_rng(0).uniform(0, 255, (3, 40, 30, 3)).astype("float32")
    np.testing.assert_allclose(
        plain.predict(images, verbose=0), ft.model.predict(images, verbose=0), rtol=1e-5, atol=1e-6
    )
    # A loaded FineTuner trains on.
    assert len(loaded.fit(root, epochs=1, batch_size=8, verbose=0)) == 1


def test_save_never_overwrites_unless_asked_and_is_atomic(image_folder, tmp_path, monkeypatch):
    ft = tiny_finetuner()
    ft.build(["cat", "dog"])
    path = tmp_path / "model.keras"
    path.write_bytes(b"the user's precious file")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ft.save(path)
    assert path.read_bytes() == b"the user's precious file"

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ft.model, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        ft.save(path, overwrite=True)
    assert path.read_bytes() == b"the user's precious file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
    monkeypatch.undo()
    ft.save(path, overwrite=True)
    assert tk.load(path).class_names == ["cat", "dog"]


def test_every_input_form_gives_the_same_predictions(image_folder):
    from PIL import Image

    root = image_folder()
    ft = tiny_finetuner()
    ft.fit(root, epochs=1, batch_size=8, verbose=0)
    paths = sorted(str(p) for p in root.rglob("*.png"))
    arrays = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    by_list = ft.predict(paths)
    by_frame = ft.predict(pd.DataFrame({"path": paths}))
    by_array = ft.predict(arrays)
    for other in (by_frame, by_array):
        np.testing.assert_allclose(other["prob_dog"], by_list["prob_dog"], rtol=1e-5, atol=1e-6)
    assert "path" not in by_array.columns


def test_evaluate_report(image_folder):
    root = image_folder()
    ft = tiny_finetuner(schedule=tk.Freeze(learning_rate=0.1))
    ft.fit(root, epochs=3, batch_size=8, verbose=0)
    report = ft.evaluate(root)
    assert set(report.metrics) >= {"loss", "accuracy", "macro_precision", "macro_recall"}
    assert report["num_images"] == 24
    assert list(report.per_class.columns) == ["precision", "recall", "f1", "support"]
    assert report.confusion_matrix.to_numpy().sum() == 24
    assert list(report.confusion_matrix.index) == ["cat", "dog"]
    accuracy = np.trace(report.confusion_matrix.to_numpy()) / 24
    assert report["accuracy"] == pytest.approx(accuracy)


def test_evaluate_rejects_a_label_training_never_saw(image_folder, tmp_path):
    ft = tiny_finetuner()
    ft.fit(image_folder(), epochs=1, batch_size=8, verbose=0)
    other = image_folder(classes=("cat", "bird"), per_class=2, root=tmp_path / "other")
    with pytest.raises(ValueError, match="bird"):
        ft.evaluate(other)


def test_fit_says_when_the_validation_data_holds_training_images(image_folder, capfd):
    root = image_folder(per_class=4)
    ft = tiny_finetuner(schedule=tk.Freeze())
    ft.fit(root, validation_data=root, epochs=1, batch_size=8, verbose=0)
    assert "8 of 8 validation images are also in the training data" in capfd.readouterr().err


def test_num_classes_must_agree_with_the_data(image_folder):
    ft = tiny_finetuner(num_classes=3)
    with pytest.raises(ValueError, match=r"num_classes=3.*2 classes"):
        ft.fit(image_folder(), epochs=1, verbose=0)


def test_fit_on_arrays_and_seeded_repeatability():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (20, 16, 16, 3)).astype("float32")
    labels = np.array([0, 1] * 10)
    histories = []
    for _ in range(2):
        histories.append(
            tiny_finetuner(seed=7).fit(images, labels, epochs=2, batch_size=4, verbose=0)
        )
    np.testing.assert_allclose(histories[0]["loss"], histories[1]["loss"], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 1}, "num_classes=1"),
        ({"backbone": "resnet5O"}, "resnet5O"),
        ({"schedule": "sometimes"}, "Unknown schedule"),
        ({"optimizer": "lion"}, "Unknown optimizer"),
        ({"augmentation": "mixup"}, "augmentation='mixup'"),
        ({"validation_split": 1.5}, "validation_split=1.5"),
        ({"input_shape": (32, 32)}, "input_shape"),
        ({"cached_views": 0}, "cached_views=0"),
        ({"backbone": 42}, "backbone=42"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tk.FineTuner(**{"weights": None, **kwargs})


def test_unbuilt_finetuner_says_what_to_do():
    ft = tk.FineTuner("mobilenet", weights=None)
    with pytest.raises(ValueError, match="call fit"):
        ft.predict(np.zeros((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="number of classes"):
        ft.build()


def test_gradual_unfreeze_past_the_backbone_depth(image_folder):
    ft = tiny_finetuner(schedule=tk.GradualUnfreeze(unfreeze_at=[1], blocks_per_step=5))
    with pytest.raises(
        ValueError, match="Unfreezing 5 blocks of backbone 'tiny', which has only 2"
    ):
        ft.fit(image_folder(), epochs=2, batch_size=8, verbose=0)


def test_find_lr_suggests_a_rate_and_leaves_the_model_unchanged(image_folder):
    root = image_folder()
    ft = tiny_finetuner()
    ft.build(["cat", "dog"])
    before = [w.numpy().copy() for w in ft.model.weights]
    result = ft.find_lr(root, steps=60, end_learning_rate=1e4, batch_size=8)
    assert list(result.frame.columns) == ["learning_rate", "loss", "smoothed_loss"]
    rates = result.frame["learning_rate"].to_numpy()
    assert rates[0] == pytest.approx(1e-7) and (np.diff(rates) > 0).all()
    assert rates[0] < result.suggestion < rates[-1]
    assert all(np.array_equal(w.numpy(), b) for w, b in zip(ft.model.weights, before, strict=True))
    figure = result.plot()
    assert figure.axes[0].get_xscale() == "log"
    with pytest.raises(ValueError, match="start_learning_rate < end_learning_rate"):
        ft.find_lr(root, start_learning_rate=1.0, end_learning_rate=0.1)


def test_a_fine_tune_that_makes_things_worse_is_rolled_back(image_folder, capfd):
    root = image_folder()
    schedule = tk.FreezeUnfreeze(frozen_epochs=3, learning_rate=0.1, fine_tune_learning_rate=50.0)
    ft = tiny_finetuner(schedule=schedule)
    history = ft.fit(root, epochs=5, batch_size=8, verbose=0)
    best = int(history["val_loss"].idxmin())
    assert history["val_loss"].iloc[-1] > history["val_loss"].iloc[best]  # it did get worse
    assert f"restored the weights of epoch {best + 1}" in capfd.readouterr().err
    # The model now holds the best epoch's weights: its validation loss is the best one.
    validation = ft.evaluate(root)["loss"]
    assert validation < history["val_loss"].iloc[-1]

    kept = tiny_finetuner(schedule=schedule)
    last = kept.fit(root, epochs=5, batch_size=8, restore_best_weights=False, verbose=0)
    assert "restored" not in capfd.readouterr().err
    assert kept.evaluate(root)["loss"] > validation and len(last) == 5


def test_find_lr_without_the_cache_leaves_the_shared_cache_alone(image_folder):
    from transferkit.features import default_cache

    shared = default_cache()
    before = (shared.hits, shared.misses, shared.memory_bytes)
    ft = tiny_finetuner(cache_features=False)
    ft.find_lr(image_folder(), steps=10, batch_size=8)
    assert (shared.hits, shared.misses, shared.memory_bytes) == before


def test_fit_is_the_public_steps_in_sequence(image_folder):
    """split, then fit_phase for each phase of the plan: what `fit` runs, callable alone."""
    root = image_folder()
    schedule = tk.FreezeUnfreeze(frozen_epochs=1, learning_rate=0.05, fine_tune_learning_rate=1e-3)
    whole = tiny_finetuner(schedule=schedule)
    history = whole.fit(root, epochs=2, batch_size=8, restore_best_weights=False, verbose=0)

    by_hand = tiny_finetuner(schedule=schedule)
    train, validation = by_hand.split(root)
    assert by_hand.built and (len(train), len(validation)) == (20, 4)
    recorded = []
    recorder = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: recorded.append(logs["val_loss"])
    )
    plan = schedule.plan(2)
    for phase in plan:
        by_hand.fit_phase(
            phase,
            train,
            validation,
            batch_size=8,
            callbacks=[recorder],
            verbose=0,
            last=phase is plan[-1],
        )
    np.testing.assert_allclose(recorded, history["val_loss"], rtol=1e-5)
    for ours, theirs in zip(whole.model.weights, by_hand.model.weights, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_freeze_and_unfreeze_say_what_trains():
    ft = tiny_finetuner()
    ft.build(["cat", "dog"])
    frozen = ft.freeze()
    assert frozen.frozen and not ft.model.backbone.trainable
    top = ft.unfreeze(1, lowest_block_multiplier=0.5)
    assert (top.units, top.total_units, top.unit) == (1, 2, "blocks")
    assert top.lr_multipliers == {"block2_conv/": 0.5}
    assert not ft.model.backbone.get_layer("block2_bn").trainable  # BatchNorm stays frozen
    everything = ft.unfreeze(unit="layers", train_bn=True)
    assert everything.units == everything.total_units == 4
    assert ft.model.backbone.get_layer("block1_bn").trainable
    with pytest.raises(ValueError, match="unit='rows'"):
        ft.unfreeze(unit="rows")


def test_unfreeze_recompiles_and_a_phase_trains_what_it_returned(image_folder, capfd):
    ft = tiny_finetuner(schedule=tk.NoFreeze())
    train, validation = ft.split(image_folder())
    top = ft.unfreeze(1, lowest_block_multiplier=0.5)
    assert "top 1/2 blocks of tiny trainable at 0.5x-0.5x" in capfd.readouterr().err
    # Keras's own fit would train what unfreeze says: the model was recompiled.
    assert ft.model.optimizer.lr_multipliers == {"block2_conv/": 0.5}
    before = ft.model.backbone.get_layer("block1_conv").get_weights()
    # A phase that would unfreeze everything trains only what `unfreeze` returned.
    phase = tk.schedules.Phase("unfrozen", 0, 1, None, 1e-2)
    ft.fit_phase(phase, train, validation, batch_size=8, verbose=0, trainable=top)
    after = ft.model.backbone.get_layer("block1_conv").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert ft.model.optimizer.lr_multipliers == {"block2_conv/": 0.5}

"""A FineTuner's settings survive `get_config`/`from_config` and a `.keras` file."""

import inspect
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

# The same tiny backbone (always initialised alike) as the FineTuner's other tests.
from test_finetuner import tiny_backbone  # tests/finetuner is on the path

import transferkit as tk
from transferkit.features import FeatureCache
from transferkit.heads import ClassificationHead

FIXTURES = Path(__file__).parent / "fixtures"


@keras.saving.register_keras_serializable(package="transferkit_tests")
class TopBlockOnly(tk.Schedule):
    """A custom schedule, registered: it must travel in the file like a built-in one."""

    def __init__(self, blocks=1, **kwargs):
        super().__init__(**kwargs)
        self.blocks = blocks

    def phases(self, epochs):
        return [tk.schedules.Phase("top", 0, epochs, self.blocks, self.fine_tune_learning_rate)]


class Unregistered(tk.Schedule):
    def phases(self, epochs):
        return [tk.schedules.Phase("frozen", 0, epochs, 0, self.learning_rate)]


def _weights_file(tmp_path):
    path = tmp_path / "tiny.weights.h5"
    tiny_backbone().save_weights(path)
    return str(path)


# Every constructor argument with a value other than its default (several for some).
NON_DEFAULTS = [
    ("backbone", lambda tmp: tiny_backbone()),
    ("num_classes", lambda tmp: 2),
    ("weights", _weights_file),
    (
        "head",
        lambda tmp: ClassificationHead(
            pooling="max", hidden_units=[8], dropout=0.3, batch_norm=True, activation="gelu"
        ),
    ),
    ("input_shape", lambda tmp: (16, 16, 3)),
    ("schedule", lambda tmp: tk.Freeze(learning_rate=3e-3)),
    ("schedule", lambda tmp: "gradual_unfreeze"),
    (
        "schedule",
        lambda tmp: tk.GradualUnfreeze(
            unfreeze_at=[1, 3], unit="layers", lowest_block_multiplier=0.02, train_bn=True
        ),
    ),
    ("schedule", lambda tmp: TopBlockOnly(blocks=2, warmup=0.2)),
    ("optimizer", lambda tmp: "sgd"),
    ("augmentation", lambda tmp: None),
    ("augmentation", lambda tmp: keras.layers.RandomRotation(0.1, seed=3)),
    (
        "augmentation",
        lambda tmp: [keras.layers.RandomFlip("vertical"), keras.layers.RandomZoom(0.2)],
    ),
    ("cached_views", lambda tmp: 3),
    ("cache_features", lambda tmp: False),
    (
        "cache_features",
        lambda tmp: FeatureCache(tmp / "features", max_memory_bytes=0, persist=True),
    ),
    ("jit_compile", lambda tmp: True),
    ("precision", lambda tmp: "mixed_bfloat16"),
    ("precision", lambda tmp: "auto"),
    ("validation_split", lambda tmp: 0.25),
    ("path_column", lambda tmp: "file"),
    ("label_column", lambda tmp: "animal"),
    ("label_column", lambda tmp: ["cat", "dog"]),
    ("multi_label", lambda tmp: True),
    ("label_delimiter", lambda tmp: "|"),
    ("seed", lambda tmp: 7),
    ("distribute", lambda tmp: "auto"),
    # A strategy is not serializable: its kind is saved.
    ("distribute", lambda tmp: tf.distribute.MirroredStrategy(["/cpu:0"])),
]


def test_every_constructor_argument_is_covered():
    arguments = set(inspect.signature(tk.FineTuner).parameters)
    assert {name for name, _ in NON_DEFAULTS} == arguments
    assert set(tk.FineTuner(weights=None).get_config()) == arguments


@pytest.mark.parametrize(
    "name, make", NON_DEFAULTS, ids=[f"{name}-{i}" for i, (name, _) in enumerate(NON_DEFAULTS)]
)
def test_every_setting_round_trips_through_config_and_file(tmp_path, name, make):
    kwargs = {"backbone": tiny_backbone(), "weights": None, name: make(tmp_path)}
    ft = tk.FineTuner(**kwargs)
    default = inspect.signature(tk.FineTuner).parameters[name].default
    assert ft.get_config()[name] != tk.FineTuner(**{**kwargs, name: default}).get_config()[name]

    config = ft.get_config()
    assert tk.FineTuner.from_config(config).get_config() == config

    ft.build(["cat", "dog"])
    # (Your own backbone is the model's: building froze it, and its config says so.)
    config = ft.get_config()
    ft.save(tmp_path / "model.keras")
    loaded = tk.load(tmp_path / "model.keras")
    assert loaded.get_config() == config
    assert loaded.class_names == ["cat", "dog"]
    # Plain Keras gives back the same class, its settings inside.
    plain = keras.saving.load_model(tmp_path / "model.keras")
    assert type(plain) is tk.ImageClassifier
    assert plain.finetuner_config == config


def test_a_fitted_finetuner_comes_back_with_its_recipe(tmp_path, write_class_folder):
    root = write_class_folder(tmp_path / "images")
    frame = pd.DataFrame({"path": [str(p) for p in sorted(root.rglob("*.png"))]}).assign(
        animal=lambda f: [Path(p).parent.name for p in f["path"]]
    )
    ft = tk.FineTuner(
        tiny_backbone(),
        weights=None,
        schedule=tk.Freeze(learning_rate=3e-3),
        optimizer="sgd",
        augmentation=None,
        seed=7,
        validation_split=0.25,
        label_column="animal",
    )
    ft.fit(frame, epochs=1, batch_size=8, verbose=0)
    ft.save(tmp_path / "model.keras")
    loaded = tk.load(tmp_path / "model.keras")
    assert loaded.schedule == tk.Freeze(learning_rate=3e-3)
    assert (loaded.optimizer, loaded.augmentation, loaded.seed) == ("sgd", None, 7)
    assert (loaded.validation_split, loaded.label_column) == (0.25, "animal")
    assert loaded.backbone_name == "tiny"
    # It fits on with the same recipe: a DataFrame with the `animal` column, one phase.
    history = loaded.fit(frame, epochs=1, batch_size=8, verbose=0)
    assert history["phase"].tolist() == ["frozen"]
    assert history["learning_rate"].iloc[0] <= 3e-3


def test_fit_save_load_fit_equals_fit_fit(tmp_path, write_class_folder):
    root = write_class_folder(tmp_path / "images")
    schedule = tk.FreezeUnfreeze(frozen_epochs=1, learning_rate=0.05, fine_tune_learning_rate=1e-3)

    def finetuner():
        # The default head has dropout: its random state must be reproduced too.
        return tk.FineTuner(
            tiny_backbone(), weights=None, schedule=schedule, seed=3, cache_features=FeatureCache()
        )

    straight = finetuner()
    straight.fit(root, epochs=2, batch_size=8, verbose=0)
    second = straight.fit(root, epochs=2, batch_size=8, verbose=0)

    first = finetuner()
    first.fit(root, epochs=2, batch_size=8, verbose=0)
    first.save(tmp_path / "model.keras")
    resumed = tk.load(tmp_path / "model.keras")
    resumed.cache_features = FeatureCache()  # a fresh cache, as in a new process
    again = resumed.fit(root, epochs=2, batch_size=8, verbose=0)

    columns = ["phase", "loss", "accuracy", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(second[columns], again[columns], rtol=1e-5)
    for ours, theirs in zip(straight.model.weights, resumed.model.weights, strict=True):
        assert ours.path == theirs.path
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_a_model_saved_by_transferkit_0_1_still_loads(tmp_path, write_class_folder):
    ft = tk.load(FIXTURES / "classifier_v0_1_0.keras")
    assert isinstance(ft.model, tk.ImageClassifier)
    assert ft.class_names == ["cat", "dog"] and ft.image_size == (16, 16)
    assert ft.backbone_name == "tiny"
    probe = np.load(FIXTURES / "classifier_v0_1_0_probe.npy")
    expected = np.load(FIXTURES / "classifier_v0_1_0_expected.npy")
    predicted = ft.predict(probe)[["prob_cat", "prob_dog"]].to_numpy()
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)
    # Saved again, it is today's format, and it trains on.
    ft.save(tmp_path / "upgraded.keras")
    assert type(keras.saving.load_model(tmp_path / "upgraded.keras")) is tk.ImageClassifier
    root = write_class_folder(tmp_path / "images")
    assert len(ft.fit(root, epochs=1, batch_size=8, verbose=0)) == 1


# === Bad input ===
def _plain_keras_file(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs), name="plain")
    path = tmp_path / "plain.keras"
    model.save(path)
    return path


LAMBDA_MARKER = Path("/tmp/transferkit_test_lambda_ran")


def _lambda_file(tmp_path):
    # No closure: the code itself would write the marker, were it ever run.
    code = lambda x: (__import__("pathlib").Path(str(LAMBDA_MARKER)).write_text("ran"), x)[1]  # noqa: E731
    inputs = keras.Input((4,))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, keras.layers.Lambda(code)(inputs)).save(path)
    LAMBDA_MARKER.unlink(missing_ok=True)
    return path


def _truncated_file(tmp_path):
    ft = tk.FineTuner(tiny_backbone(), weights=None)
    ft.build(["cat", "dog"])
    ft.save(tmp_path / "whole.keras")
    data = (tmp_path / "whole.keras").read_bytes()
    path = tmp_path / "truncated.keras"
    path.write_bytes(data[: len(data) // 2])
    return path


def _text_file(tmp_path):
    path = tmp_path / "notes.keras"
    path.write_text("not a model")
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (_plain_keras_file, r"holds a Keras Functional named 'plain', not a transferkit"),
        (_lambda_file, r"Lambda layer, whose code safe mode never runs"),
        (_truncated_file, r"not a \.keras file|damaged|not a complete"),
        (_text_file, r"is not a \.keras file \(a zip archive written by Keras\)"),
    ],
)
def test_load_refuses_files_transferkit_did_not_write(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(ValueError, match=message) as raised:
        tk.load(path)
    assert "\n" not in str(raised.value)
    assert "expects a .keras file written by FineTuner.save" in str(raised.value)
    assert not LAMBDA_MARKER.exists()  # nothing in the file ran


def test_load_of_a_missing_file():
    with pytest.raises(FileNotFoundError, match="No saved model at 'nowhere.keras'"):
        tk.load("nowhere.keras")


def test_a_config_with_an_unknown_key_is_refused():
    config = {**tk.FineTuner(weights=None).get_config(), "learning_rate": 1e-3}
    with pytest.raises(ValueError, match=r"Unknown FineTuner setting\(s\) \['learning_rate'\]"):
        tk.FineTuner.from_config(config)


def test_an_unregistered_schedule_is_named(tmp_path):
    ft = tk.FineTuner(tiny_backbone(), weights=None, schedule=Unregistered())
    ft.build(["cat", "dog"])
    with pytest.raises(ValueError, match="The schedule Unregistered is not registered"):
        ft.save(tmp_path / "model.keras")
    assert not (tmp_path / "model.keras").exists()

    config = tk.FineTuner(weights=None, schedule=TopBlockOnly()).get_config()
    config["schedule"] = {
        **config["schedule"],
        "class_name": "Missing",
        "registered_name": "elsewhere>Missing",
        "module": None,
    }
    with pytest.raises(ValueError, match="schedule 'Missing' cannot be rebuilt"):
        tk.FineTuner.from_config(config)


def test_a_0_1_model_of_a_registry_backbone_keeps_its_registry_name():
    # transferkit 0.1's layout: an anonymous functional model named after the backbone.
    inputs = keras.Input((None, None, 3), name="image")
    x = tk.layers.BackbonePreprocessing((16, 16), mode="tf", name="preprocessing")(inputs)
    x = tiny_backbone()(x)
    head = ClassificationHead(num_classes=2, class_names=["cat", "dog"], name="head")
    legacy = keras.Model(inputs, head(x), name="transferkit_mobilenet")
    ft = tk.FineTuner.from_model(legacy)
    assert ft.backbone == "mobilenet" and ft.backbone_name == "mobilenet"
    assert ft.get_config()["backbone"] == "mobilenet"
    assert isinstance(ft.model, tk.ImageClassifier) and ft.class_names == ["cat", "dog"]

import keras
import numpy as np
import pytest

from transferkit.heads import ClassificationHead


def test_output_layer_follows_the_problem():
    binary = ClassificationHead(num_classes=2)
    multi = ClassificationHead(num_classes=4)
    multi_label = ClassificationHead(num_classes=4, multi_label=True)
    x = np.random.rand(3, 2, 2, 5).astype("float32")
    assert binary(x).shape == (3, 1) and binary.default_loss() == "binary_crossentropy"
    assert multi(x).shape == (3, 4)
    assert multi.default_loss() == "sparse_categorical_crossentropy"
    np.testing.assert_allclose(np.asarray(multi(x)).sum(axis=1), 1.0, rtol=1e-5)
    assert multi_label(x).shape == (3, 4) and multi_label.default_loss() == "binary_crossentropy"


def test_binary_probabilities_have_one_column_per_class():
    head = ClassificationHead(num_classes=2)
    probabilities = head.probabilities(np.array([[0.2], [0.9]]))
    np.testing.assert_allclose(probabilities, [[0.8, 0.2], [0.1, 0.9]], rtol=1e-6)


def test_dense_blocks_are_built_as_configured():
    head = ClassificationHead(
        num_classes=3, pooling="max", hidden_units=[8, 4], batch_norm=True, dropout=0.5
    )
    head.build((None, 2, 2, 5))
    kernels = [w for w in head.weights if w.path.endswith("kernel")]
    assert [tuple(k.shape) for k in kernels] == [(5, 8), (8, 4), (4, 3)]
    assert sum("moving_mean" in w.path for w in head.weights) == 2


def test_pool_then_classify_equals_call():
    head = ClassificationHead(num_classes=3, hidden_units=[6], dropout=0.0)
    x = np.random.rand(2, 3, 3, 4).astype("float32")
    np.testing.assert_allclose(head(x), head.classify(head.pool(x)), rtol=1e-6)


def test_config_round_trip_and_keras_file(tmp_path):
    head = ClassificationHead(
        num_classes=3, hidden_units=[8], batch_norm=True, class_names=["a", "b", "c"]
    )
    assert ClassificationHead.from_config(head.get_config()).get_config() == head.get_config()
    inputs = keras.Input((4, 4, 8))
    model = keras.Model(inputs, head(inputs))
    model.save(tmp_path / "head.keras")
    loaded = keras.saving.load_model(tmp_path / "head.keras")
    x = np.random.rand(2, 4, 4, 8).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert loaded.layers[-1].class_names == ["a", "b", "c"]


def test_with_classes_keeps_settings():
    head = ClassificationHead(hidden_units=[16], dropout=0.3)
    filled = head.with_classes(2, ["cat", "dog"])
    assert filled.hidden_units == [16] and filled.dropout == 0.3
    assert filled.labels == ["cat", "dog"] and filled.output_units == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pooling": "mean"}, "pooling='mean'"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"hidden_units": [0]}, "hidden_units"),
        ({"num_classes": 1}, "at least 2 classes"),
        ({"num_classes": 3, "class_names": ["a", "b"]}, "has 2 names but num_classes=3"),
        ({"class_names": ["a", "a"]}, "duplicates"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassificationHead(**kwargs)


def test_building_without_classes_says_how_to_fix():
    with pytest.raises(ValueError, match="no `num_classes`"):
        ClassificationHead()(np.zeros((1, 2, 2, 3)))

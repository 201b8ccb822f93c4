import keras
import numpy as np
import pytest

import transferkit as tk
from transferkit.layers import BackbonePreprocessing


def tiny_backbone(size=16):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, x, name="tiny")


def make_classifier(**kwargs):
    head = tk.ClassificationHead(num_classes=3, class_names=["a", "b", "c"], dropout=0.0)
    return tk.ImageClassifier(
        tiny_backbone(), head, BackbonePreprocessing((16, 16), mode="tf"), **kwargs
    )


def test_parts_are_attributes_and_config_is_the_constructors_arguments():
    classifier = make_classifier(finetuner_config={"seed": 3})
    assert isinstance(classifier.backbone, keras.Model)
    assert isinstance(classifier.head, tk.ClassificationHead)
    assert isinstance(classifier.preprocessor, BackbonePreprocessing)
    assert classifier.class_names == ["a", "b", "c"] and classifier.image_size == (16, 16)
    config = classifier.get_config()
    assert set(config) == {
        "backbone",
        "head",
        "preprocessor",
        "finetuner_config",
        "name",
        "trainable",
    }
    rebuilt = tk.ImageClassifier.from_config(config)
    assert rebuilt.get_config() == config


def test_raw_images_of_any_size_and_a_lossless_file(tmp_path):
    classifier = make_classifier()
    images = np.random.default_rng(0).uniform(0, 255, (4, 30, 20, 3)).astype("float32")
    probabilities = classifier.predict(images, verbose=0)
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    classifier.save(tmp_path / "classifier.keras")
    loaded = keras.saving.load_model(tmp_path / "classifier.keras")
    assert type(loaded) is tk.ImageClassifier
    assert loaded.class_names == ["a", "b", "c"]
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), probabilities)


def test_compile_defaults_suit_the_head_and_survive_saving(tmp_path):
    classifier = make_classifier()
    classifier.compile()
    assert classifier.loss == "sparse_categorical_crossentropy"
    images = np.random.default_rng(1).uniform(0, 255, (6, 16, 16, 3)).astype("float32")
    classifier.fit(images, np.array([0, 1, 2] * 2), epochs=1, verbose=0)
    classifier.save(tmp_path / "compiled.keras")
    with _no_compile_warning():
        loaded = keras.saving.load_model(tmp_path / "compiled.keras")
    assert loaded.compiled and loaded.loss == "sparse_categorical_crossentropy"
    # It trains on from the restored optimizer state.
    loaded.fit(images, np.array([0, 1, 2] * 2), epochs=1, verbose=0)


class _no_compile_warning:
    def __enter__(self):
        import warnings

        self._catcher = warnings.catch_warnings(record=True)
        self.caught = self._catcher.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._catcher.__exit__(*exc)
        assert not [w for w in self.caught if "compile()" in str(w.message)]


def test_the_feature_extractor_shares_the_classifiers_layers():
    classifier = make_classifier()
    extractor = classifier.feature_extractor()
    images = np.random.default_rng(2).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    pooled = extractor.predict(images, verbose=0)
    expected = classifier.head.pool(classifier.backbone(classifier.preprocessor(images)))
    np.testing.assert_allclose(pooled, np.asarray(expected), rtol=1e-5, atol=1e-6)
    assert {id(v) for v in extractor.weights} <= {id(v) for v in classifier.weights}


def test_without_a_preprocessor_it_resizes_to_the_backbones_size():
    head = tk.ClassificationHead(num_classes=2)
    classifier = tk.ImageClassifier(tiny_backbone(), head)
    assert classifier.image_size == (16, 16) and classifier.preprocessor.mode == "none"


def _dense_backbone():
    inputs = keras.Input((16, 16, 3))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs), name="pooled")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: tk.ImageClassifier("resnet50", tk.ClassificationHead(2)), "backbone='resnet50'"),
        (lambda: tk.ImageClassifier(tiny_backbone(), keras.layers.Dense(2)), "ClassificationHead"),
        (lambda: tk.ImageClassifier(tiny_backbone(), tk.ClassificationHead()), "no `num_classes`"),
        (
            lambda: tk.ImageClassifier(_dense_backbone(), tk.ClassificationHead(2)),
            r"must output a feature map.*\(None, 3\)",
        ),
        (
            lambda: tk.ImageClassifier(
                keras.applications.MobileNet(include_top=False, weights=None),
                tk.ClassificationHead(2),
            ),
            "pass a preprocessor with the image_size",
        ),
    ],
)
def test_bad_parts(make, message):
    with pytest.raises(ValueError, match=message):
        make()

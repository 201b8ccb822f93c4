"""Grad-CAM through the nested backbone: every registered backbone, loaded and custom models."""

import gc

import keras
import numpy as np
import pytest

import transferkit as tk
from transferkit.backbones import BACKBONES
from transferkit.interpret import find_feature_map


def _images(count=2, size=64, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (count, size, size, 3)).astype("float32")
    images[:, : size // 2, : size // 2, 0] = 255  # some layout for the map to follow
    return images


def _classifier(backbone, num_classes=3, size=None, hidden_units=()):
    head = tk.ClassificationHead(num_classes=num_classes, dropout=0.0, hidden_units=hidden_units)
    preprocessor = None
    if size is not None:
        preprocessor = tk.layers.BackbonePreprocessing(image_size=(size, size), mode="none")
    return tk.ImageClassifier(backbone, head.with_classes(num_classes, name="head"), preprocessor)


def _small_conv_backbone(size=8, name="small"):
    inputs = keras.Input((size, size, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", name="features")(inputs)
    return keras.Model(inputs, features, name=name)


# The smallest sizes that every architecture accepts; at these, InceptionV3 and
# InceptionResNetV2 output a single cell, so their map comes from inside the backbone.
# Random weights with BatchNorm in inference mode can shrink the features to ~1e-19
# (MobileNet), so the probabilities tie at 0.5 and "the predicted class" is arbitrary:
# both classes are explained, on one image. With one sigmoid logit their maps are the
# positive and the negative part of the same map: one of them has a layout.
@pytest.mark.slow
@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_registered_backbone_gives_a_heat_map(name):
    size = max(64, BACKBONES[name].min_size)
    ft = tk.FineTuner(name, num_classes=2, weights=None, input_shape=size, seed=0)
    ft.build(["cat", "dog"])
    explanation = ft.explain(_images(1, size).repeat(2, axis=0), class_name=["cat", "dog"])
    maps = explanation.heatmaps
    assert maps.shape == (2, size, size) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    spread = maps.max(axis=(1, 2)) - maps.min(axis=(1, 2))
    assert spread.max() > 0, "both maps are constant"
    assert np.isclose(maps.max(axis=(1, 2))[spread.argmax()], 1.0)
    assert explanation.layer in [layer.name for layer in ft.model.backbone.layers]
    del ft, explanation
    keras.utils.clear_session()
    gc.collect()


def test_the_map_is_read_at_the_backbone_output_when_it_has_a_layout():
    backbone, _ = tk.build_backbone("mobilenet", weights=None, input_shape=(64, 64, 3))
    found = find_feature_map(backbone)
    assert found.layer == backbone.layers[-1].name == "conv_pw_13_relu"
    assert found.shape == (None, 2, 2, 1024) and found.tail is None


def test_a_single_cell_output_falls_back_to_the_last_map_every_path_passes():
    inputs = keras.Input((16, 16, 3))
    stem = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    left = keras.layers.Conv2D(4, 3, padding="same", name="left")(stem)
    right = keras.layers.Conv2D(4, 3, padding="same", name="right")(stem)
    joined = keras.layers.Concatenate(name="joined")([left, right])
    padded = keras.layers.ZeroPadding2D(1, name="padded")(joined)
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pooled")(padded)
    backbone = keras.Model(inputs, pooled, name="pooling_inside")
    # Not `right` (last in order, but one branch), nor the padding's borders of zeros.
    assert find_feature_map(backbone).layer == "joined"
    ft = tk.FineTuner.from_model(_classifier(backbone, size=16))
    explanation = ft.explain(_images(2, 16))
    assert explanation.layer == "joined" and explanation.heatmaps.shape == (2, 16, 16)
    with pytest.raises(ValueError, match="on one branch"):
        ft.explain(_images(1, 16), layer="right")
    with pytest.raises(ValueError, match="has no layer 'nope'"):
        ft.explain(_images(1, 16), layer="nope")


def test_a_dense_backbone_says_it_has_no_spatial_map():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(8, name="dense")(x)
    backbone = keras.Model(inputs, keras.layers.Reshape((1, 1, 8))(x), name="dense_backbone")
    ft = tk.FineTuner.from_model(_classifier(backbone, size=16))
    with pytest.raises(ValueError, match="'dense_backbone' has no spatial feature map"):
        ft.explain(_images(1, 16))


def test_the_map_is_the_class_activation_map_of_a_linear_head():
    # With average pooling and one dense layer, Grad-CAM equals CAM (Zhou et al.):
    # relu(sum_k w_kc A_k), so it can be computed by hand.
    backbone = _small_conv_backbone(8)
    classifier = _classifier(backbone, num_classes=3)
    ft = tk.FineTuner.from_model(classifier)
    images = _images(3, 8, seed=1)
    features = np.asarray(backbone(images / 1.0))
    kernel = np.asarray(classifier.head.output_layer.kernel)
    logits = features.mean(axis=(1, 2)) @ kernel + np.asarray(classifier.head.output_layer.bias)

    def expected(class_index):
        cam = np.maximum(features @ kernel[:, class_index], 0)
        peaks = cam.reshape(len(cam), -1).max(axis=1)
        return cam / np.where(peaks > 0, peaks, 1)[:, None, None]

    explanation = ft.explain(images)
    predicted = logits.argmax(axis=1)
    for row, index in enumerate(predicted):
        np.testing.assert_allclose(explanation.heatmaps[row], expected(index)[row], atol=1e-5)
    assert list(explanation.predictions["explained"]) == [str(i) for i in predicted]
    explained = ft.explain(images, class_name=["2", "0", "1"])
    for row, index in enumerate([2, 0, 1]):
        np.testing.assert_allclose(explained.heatmaps[row], expected(index)[row], atol=1e-5)


def test_two_classes_share_one_logit_and_get_opposite_maps():
    backbone = _small_conv_backbone(8)
    ft = tk.FineTuner.from_model(_classifier(backbone, num_classes=2))
    images = _images(2, 8)
    features = np.asarray(backbone(images))
    kernel = np.asarray(ft.model.head.output_layer.kernel)[:, 0]
    raw = features @ kernel
    for name, sign in (("1", 1.0), ("0", -1.0)):
        maps = ft.explain(images, class_name=name).heatmaps
        cam = np.maximum(sign * raw, 0)
        cam = cam / cam.reshape(2, -1).max(axis=1)[:, None, None]
        np.testing.assert_allclose(maps, cam, atol=1e-5)


def test_a_loaded_model_and_a_head_with_hidden_units(tmp_path):
    backbone, _ = tk.build_backbone("mobilenet", weights=None, input_shape=(64, 64, 3))
    ft = tk.FineTuner.from_model(_classifier(backbone, 2, size=64, hidden_units=[8]))
    ft.save(tmp_path / "model.keras")
    loaded = tk.load(tmp_path / "model.keras")
    images = _images(3, 80)  # resized to 64 by the model, as it predicts
    before, after = ft.explain(images), loaded.explain(images)
    np.testing.assert_allclose(before.heatmaps, after.heatmaps, atol=1e-5)
    assert before.heatmaps.shape == (3, 64, 64) and before.images.shape == (3, 64, 64, 3)
    assert after.layer == "conv_pw_13_relu"
    # Probabilities are those predict gives.
    predictions = loaded.predict(images)
    np.testing.assert_allclose(
        after.predictions["prob_1"], predictions["prob_1"], rtol=1e-5, atol=1e-6
    )


def test_your_own_keras_model_as_backbone(image_folder):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv")(x)
    backbone = keras.Model(inputs, keras.layers.Conv2D(8, 3, name="top")(x), name="mine")
    ft = tk.FineTuner(backbone, weights=None, schedule="freeze", seed=0)
    ft.fit(image_folder(per_class=6), epochs=1, batch_size=8, verbose=0)
    explanation = ft.explain(image_folder(per_class=6) / "cat")
    assert explanation.layer == "top" and explanation.heatmaps.shape == (6, 32, 32)
    assert explanation.predictions["path"].str.endswith(".png").all()


def test_explain_reads_the_top_losses_of_an_evaluation(image_folder):
    root = image_folder(per_class=6)
    ft = tk.FineTuner.from_model(_classifier(_small_conv_backbone(16), 2, size=16))
    ft.model.head.class_names = ["cat", "dog"]
    report = ft.evaluate(root)
    top = report.top_losses(4)
    explanation = ft.explain(top)
    assert list(explanation.predictions["path"]) == list(top["path"])
    np.testing.assert_allclose(explanation.predictions["probability"], top["probability"], 1e-5)
    figure = tk.plots.plot_top_losses(top, explanation)
    assert len(figure.axes) == 4
    with pytest.raises(ValueError, match="holds 2 images but `top_losses` has 4 rows"):
        tk.plots.plot_top_losses(top, ft.explain(top.head(2)))


def test_bad_class_names_say_which_classes_exist():
    ft = tk.FineTuner.from_model(_classifier(_small_conv_backbone(8), 3))
    with pytest.raises(ValueError, match=r"Unknown class 'cat': the model's classes are \['0'"):
        ft.explain(_images(2, 8), class_name="cat")
    with pytest.raises(ValueError, match="has 3 names but there are more or fewer images"):
        ft.explain(_images(2, 8), class_name=["0", "1", "2"])


def test_a_batched_dataset_of_images_is_explained_too():
    import tensorflow as tf

    ft = tk.FineTuner.from_model(_classifier(_small_conv_backbone(8), 3))
    images = _images(5, 8)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(2)
    np.testing.assert_allclose(
        ft.explain(dataset, class_name="1").heatmaps,
        ft.explain(images, class_name="1").heatmaps,
        atol=1e-6,
    )


def test_plot_gradcam_overlays_each_map(tmp_path):
    ft = tk.FineTuner.from_model(_classifier(_small_conv_backbone(8), 3))
    explanation = ft.explain(_images(5, 8))
    figure = explanation.plot(tmp_path / "gradcam.png", max_images=4, columns=2)
    assert len(figure.axes) == 4 and (tmp_path / "gradcam.png").stat().st_size > 0
    assert "Grad-CAM of 4 of 5 images at features" in figure.texts[0].get_text()
    overlaid = tk.plots.gradcam.overlay(np.zeros((8, 8, 3)), np.ones((2, 2)), alpha=1.0)
    assert overlaid.shape == (8, 8, 3) and overlaid.dtype == np.uint8
    with pytest.raises(TypeError, match="what FineTuner.explain returns"):
        tk.plots.plot_gradcam(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="alpha"):
        tk.plots.plot_gradcam(explanation, alpha=2)

"""KerasHub presets as backbones: building, preprocessing, the recipe, saving and bad input.

Every family runs on a tiny preset written by `hub_presets.write_tiny_preset`
(random weights with a fixed seed, the family's real normalization), so nothing is
downloaded.
"""

import os
import shutil
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

from hub_presets import FAMILIES, write_tiny_preset  # noqa: E402

import transferkit as tk  # noqa: E402
from transferkit.backbones import build_backbone, get_backbone_spec, hub  # noqa: E402
from transferkit.schedules import backbone_blocks  # noqa: E402
from transferkit.training.freezing import set_trainable  # noqa: E402

TRANSFORMERS = ("vit", "deit", "dinov2", "dinov3", "swin")
DEFAULT_POOLING = {
    "vit": "token",
    "deit": "token",
    "dinov2": "token_and_avg",
    "dinov3": "token_and_avg",
    "swin": "avg",
    "efficientnet": "avg",
    "mobilenetv3": "avg",
    "resnet": "avg",
}


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    written = {}

    def folder(family):
        if family not in written:
            written[family] = write_tiny_preset(family, root / family) or root / family
        return f"hub:{written[family]}"

    return folder


@pytest.fixture(autouse=True)
def _fresh_caches():
    # Where remote presets were found is kept per process; these tests change the caches.
    hub._remote_folder.cache_clear()
    yield
    hub._remote_folder.cache_clear()


def _images(size, count=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, size, size, 3)).astype("uint8")


def _backbone_outputs(backbone, x):
    if isinstance(backbone.input, dict):
        (name,) = backbone.input
        x = {name: x}
    return keras.ops.convert_to_numpy(backbone(x, training=False))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_fine_tunes_saves_and_reloads(family, presets, tmp_path):
    images = _images(40, count=12)  # not the model's size: it resizes them itself
    labels = np.array([0, 1] * 6)
    ft = tk.FineTuner(presets(family), num_classes=2, input_shape=(32, 32, 3))
    history = ft.fit(images, labels, epochs=2, batch_size=6)
    assert len(history) == 2
    head = ft.model.head
    assert head.pooling == DEFAULT_POOLING[family]
    expected_prefix = FAMILIES[family].prefix_tokens if family in TRANSFORMERS else None
    assert head.prefix_tokens == expected_prefix
    path = tmp_path / "model.keras"
    ft.save(path)
    loaded = tk.load(path)
    np.testing.assert_array_equal(
        loaded.model.predict(images, verbose=0), ft.model.predict(images, verbose=0)
    )
    assert loaded.model.head.pooling == head.pooling
    # Plain Keras loads it too, in safe mode, after `import transferkit`.
    plain = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        plain.predict(images, verbose=0), ft.model.predict(images, verbose=0), atol=1e-6
    )


def test_a_saved_model_loads_in_a_fresh_process_with_tk_load(presets, tmp_path):
    ft = tk.FineTuner(presets("deit"), num_classes=3)
    ft.build(["a", "b", "c"])
    ft.save(tmp_path / "model.keras")
    images = _images(32, count=2)
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "expected.npy", ft.model.predict(images, verbose=0))
    code = (
        "import sys, numpy as np, transferkit as tk\n"
        "assert 'keras_hub' not in sys.modules\n"
        f"model = tk.load({str(tmp_path / 'model.keras')!r}).model\n"
        f"images = np.load({str(tmp_path / 'images.npy')!r})\n"
        f"expected = np.load({str(tmp_path / 'expected.npy')!r})\n"
        "np.testing.assert_array_equal(model.predict(images, verbose=0), expected)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_preprocessing_inside_the_model_is_the_presets_converter(family, presets):
    handle = presets(family)
    folder = hub.resolve_preset(handle)
    converter = keras_hub.layers.ImageConverter.from_preset(str(folder))
    spec = get_backbone_spec(handle)
    layer = tk.layers.BackbonePreprocessing(
        image_size=(32, 32),
        mode=spec.preprocessing,
        scale=spec.scale,
        offset=spec.offset,
        interpolation=spec.interpolation,
        antialias=spec.antialias,
    )
    images = _images(32).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(images)),
        keras.ops.convert_to_numpy(converter(images)),
        atol=1e-5,
    )
    assert spec.interpolation == converter.interpolation
    assert spec.source == "keras_hub" and spec.default_size == 32


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_backbone_is_keras_hubs_own_with_the_presets_weights(family, presets):
    handle = presets(family)
    ours, _ = build_backbone(handle)
    theirs = keras_hub.models.Backbone.from_preset(str(hub.resolve_preset(handle)))
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(_backbone_outputs(ours, x), _backbone_outputs(theirs, x))
    random, _ = build_backbone(handle, weights=None)
    assert not np.allclose(_backbone_outputs(random, x), _backbone_outputs(theirs, x))


@pytest.mark.parametrize("family", ["vit", "deit", "dinov2"])
def test_a_transformer_at_another_size_keeps_its_weights(family, presets):
    handle = presets(family)
    backbone, _ = build_backbone(handle, input_shape=(48, 48, 3))
    patches = (48 // FAMILIES[family].patch_size) ** 2
    assert backbone.output_shape[1] == FAMILIES[family].prefix_tokens + patches
    folder = str(hub.resolve_preset(handle))
    source = keras_hub.models.Backbone.from_preset(folder)
    # Every weight but the position grid is the preset's (DINOv2 keeps two: the stored
    # grid and the interpolated one it trains).
    same = [
        np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
        for a, b in zip(backbone.weights, source.weights, strict=True)
        if tuple(a.shape) == tuple(b.shape)
    ]
    assert all(same) and len(same) >= len(source.weights) - (2 if family == "dinov2" else 1)
    if family == "dinov2":  # KerasHub interpolates DINOv2 itself: the same outputs
        theirs = keras_hub.models.Backbone.from_preset(folder, image_shape=(48, 48, 3))
        x = np.random.default_rng(3).normal(size=(2, 48, 48, 3)).astype("float32")
        np.testing.assert_array_equal(_backbone_outputs(backbone, x), _backbone_outputs(theirs, x))


@pytest.mark.parametrize("size", [32, 48])
def test_dinov2s_trained_position_embeddings_survive_saving(size, presets, tmp_path):
    # KerasHub saves DINOv2's trained position embeddings only when their summed change is
    # positive, and re-interpolates them on loading: transferkit keeps one grid, synced.
    ft = tk.FineTuner(presets("dinov2"), num_classes=2, input_shape=(size, size, 3))
    ft.build(["a", "b"])
    embeddings = ft.model.backbone.embeddings
    trained = embeddings.interpolated_position_embeddings
    assert tuple(embeddings.position_embeddings.shape) == tuple(trained.shape)
    noise = np.random.default_rng(0).normal(0, 0.5, trained.shape).astype("float32")
    trained.assign(trained.numpy() - np.abs(noise))  # a negative summed change
    images = _images(size, count=4, seed=1)
    ft.save(tmp_path / "model.keras")
    np.testing.assert_array_equal(
        tk.load(tmp_path / "model.keras").model.predict(images, verbose=0),
        ft.model.predict(images, verbose=0),
    )


def test_copy_weights_at_the_same_size_is_the_identity(presets):
    folder = str(hub.resolve_preset(presets("vit")))
    source = keras_hub.models.Backbone.from_preset(folder)
    target = keras_hub.models.Backbone.from_preset(folder, load_weights=False)
    hub.copy_weights(source, target, patch_size=8)
    x = np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(_backbone_outputs(target, x), _backbone_outputs(source, x))


def test_position_grid_is_resized_bicubically_with_prefix_tokens_kept():
    grid = np.arange(4 * 4 * 2, dtype="float32").reshape(16, 2)
    table = np.concatenate([np.full((1, 2), -7.0, "float32"), grid])
    resized = hub._resized_positions(table, [4, 4], [2, 2], (5, 2))
    assert resized.shape == (5, 2)
    np.testing.assert_array_equal(resized[0], [-7.0, -7.0])
    # Downsizing a linear ramp keeps its mean.
    np.testing.assert_allclose(resized[1:].mean(axis=0), grid.mean(axis=0), atol=0.5)


@pytest.mark.parametrize("family", TRANSFORMERS)
def test_schedules_see_the_transformer_blocks_inside_the_encoder(family, presets):
    backbone, _ = build_backbone(presets(family))
    blocks = backbone_blocks(backbone)
    # The stem (embeddings), then one unit per transformer block.
    assert len(blocks) == 1 + FAMILIES[family].num_blocks
    trainable = set_trainable(backbone, 1, multipliers=[0.5])
    top = blocks[-1]
    assert all(layer.trainable for layer in top if layer.weights)
    assert not any(layer.trainable for block in blocks[:-1] for layer in block)
    paths = [variable.path for variable in backbone.trainable_variables]
    assert paths and all(
        any(path.startswith(prefix) for prefix in trainable.lr_multipliers) for path in paths
    )
    frozen = {variable.path for variable in backbone.non_trainable_variables}
    assert not frozen & set(paths)


def test_batch_norm_nested_in_hub_blocks_stays_frozen(presets):
    backbone, _ = build_backbone(presets("mobilenetv3"))
    set_trainable(backbone, None)
    nested = [
        layer
        for layer in backbone._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert nested and not any(layer.trainable for layer in nested)
    set_trainable(backbone, None, train_bn=True)
    assert all(layer.trainable for layer in nested)


def test_gradcam_folds_patch_tokens_onto_their_grid(presets):
    ft = tk.FineTuner(presets("vit"), num_classes=2)
    ft.fit(_images(32), np.array([0, 1] * 4), epochs=1, batch_size=4)
    explanation = ft.explain(_images(32, count=2, seed=3))
    heatmaps = np.asarray(explanation.heatmaps)
    assert heatmaps.shape[0] == 2 and np.isfinite(heatmaps).all()
    assert heatmaps.reshape(2, -1).std(axis=1).min() > 0


@pytest.fixture(scope="module")
def trained(presets):
    models = {}

    def model(family):
        if family not in models:
            ft = tk.FineTuner(presets(family), num_classes=2, seed=0)
            ft.fit(_images(32, count=8), np.array([0, 1] * 4), epochs=1, batch_size=4)
            models[family] = ft
        return models[family]

    return model


@pytest.mark.parametrize("family", ["vit", "dinov2"])
@pytest.mark.parametrize(
    ("format", "name"), [("saved_model", "model"), ("litert", "m.tflite"), ("onnx", "m.onnx")]
)
def test_exports_agree_with_the_model(family, format, name, trained, tmp_path):
    pytest.importorskip("onnxruntime")
    ft = trained(family)
    table = ft.export(tmp_path / name, format=format, check=_images(40, count=6, seed=5))
    row = table.loc[format]
    assert bool(row.within_tolerance) and row.agreement == 1.0, table.to_string()
    if format == "litert":
        from transferkit.export.runtimes import litert_interpreter

        shape = litert_interpreter(tmp_path / name).get_input_details()[0]["shape_signature"]
        # DINOv2's converter resizes bicubically, which LiteRT cannot: its file takes
        # images of the model's own size; ViT's (bilinear) takes any size.
        expected = [-1, 32, 32, 3] if family == "dinov2" else [-1, -1, -1, 3]
        assert list(shape) == expected


def test_a_search_tries_only_sizes_the_transformer_takes(presets):
    from transferkit.tuning import SearchSpace
    from transferkit.tuning.space import larger_size

    space = SearchSpace([presets("swin")], epochs=2, input_shape=(32, 32, 3))
    sizes = space.hyperparameters["image_size"].values
    assert sizes == [32, 40] and all(size % 8 == 0 for size in sizes)
    assert larger_size(112, 14) == 140  # DINOv2's patch of 14
    assert space.num_blocks[presets("swin")] == 1 + FAMILIES["swin"].num_blocks


def test_token_pooling_modes():
    tokens = np.arange(2 * 5 * 3, dtype="float32").reshape(2, 5, 3)
    pooled = {}
    for pooling in ("token", "avg", "max", "token_and_avg"):
        head = tk.ClassificationHead(num_classes=3, pooling=pooling, prefix_tokens=1)
        pooled[pooling] = keras.ops.convert_to_numpy(head.pool(tokens))
    np.testing.assert_array_equal(pooled["token"], tokens[:, 0])
    np.testing.assert_array_equal(pooled["avg"], tokens[:, 1:].mean(axis=1))
    np.testing.assert_array_equal(pooled["max"], tokens[:, 1:].max(axis=1))
    np.testing.assert_array_equal(
        pooled["token_and_avg"], np.concatenate([tokens[:, 0], tokens[:, 1:].mean(axis=1)], -1)
    )
    head = tk.ClassificationHead(num_classes=3, pooling="token_and_avg", prefix_tokens=1)
    assert tk.ClassificationHead.from_config(head.get_config()).get_config() == head.get_config()
    with pytest.raises(ValueError, match="hold none"):
        tk.ClassificationHead(num_classes=3, pooling="token", prefix_tokens=0).pool(tokens)
    with pytest.raises(ValueError, match="feature map"):
        tk.ClassificationHead(num_classes=3, pooling="token").pool(np.zeros((1, 2, 2, 3)))


def test_list_backbones_counts_parameters_once_with_both_sources(monkeypatch):
    from transferkit.backbones import registry

    monkeypatch.setattr(registry, "BACKBONES", {"vgg16": registry.BACKBONES["vgg16"]})
    table = tk.list_backbones(with_parameters=True)
    assert list(table.columns).count("parameters") == 1
    counts = table.set_index("name")["parameters"]
    assert counts["vgg16"] == 14_714_688 and counts["hub:vit_base_patch16_224_imagenet"] > 0


def test_list_backbones_lists_both_sources():
    table = tk.list_backbones()
    assert {"keras.applications", "keras_hub"} <= set(table.source)
    hub_rows = table[table.source == "keras_hub"].set_index("name")
    row = hub_rows.loc["hub:vit_base_patch16_224_imagenet"]
    assert (row.family, row.input_size) == ("vit", 224)
    assert row.parameters > 80_000_000 and row.weights.startswith("kaggle://")
    assert "hub:bert_base_en" not in hub_rows.index  # a text model
    assert len(tk.list_backbones(source="keras.applications")) == len(tk.backbones.BACKBONES)


# === Bad input: each a one-line error, at once ===


def _one_line(error):
    message = str(error.value)
    assert "\n" not in message, message
    return message


def test_unknown_preset_names_the_closest():
    with pytest.raises(ValueError) as error:
        tk.FineTuner("hub:vit_base_patch16_244_imagenet")
    assert "Did you mean 'hub:vit_base_patch16_224_imagenet'" in _one_line(error)


def test_a_text_preset_is_not_an_image_backbone():
    with pytest.raises(ValueError) as error:
        tk.FineTuner("hub:bert_base_en")
    assert "not an image backbone" in _one_line(error)


def test_an_unreachable_preset_fails_at_once(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kaggle"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for handle in ("hub:vit_base_patch16_224_imagenet", "hf://keras/vit_base_patch16_224"):
        start = time.perf_counter()
        with pytest.raises(ValueError) as error:
            tk.FineTuner(handle)
        assert time.perf_counter() - start < 5
        message = _one_line(error)
        assert "unreachable" in message and "HF_HUB_OFFLINE" in message
        assert "hub:/path/to/preset" in message


def test_hf_offline_with_nothing_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ValueError) as error:
        tk.FineTuner("hf://someone/not_cached")
    assert "not in the Hugging Face cache" in _one_line(error)
    with pytest.raises(ValueError, match="not a Hugging Face handle"):
        tk.FineTuner("hf://a/b/c")


def test_hf_handle_reads_the_hugging_face_cache_offline(presets, monkeypatch, tmp_path):
    # The layout huggingface_hub writes: models--owner--name/{refs/main, snapshots/<rev>}.
    revision = "0" * 40
    repo = tmp_path / "models--someone--tiny_vit"
    shutil.copytree(hub.resolve_preset(presets("vit")), repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    code = (
        "import numpy as np, transferkit as tk\n"
        "ft = tk.FineTuner('hf://someone/tiny_vit', num_classes=2)\n"
        "ft.build(['a', 'b'])\n"
        "print(ft.model.predict(np.zeros((1, 32, 32, 3)), verbose=0).shape)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("(1, 1)")


@pytest.mark.parametrize(
    ("family", "size", "hint"),
    [
        ("vit", 30, "multiples of 8 pixels, at least 8.*Try 24 or 32"),
        ("swin", 36, "multiples of 8 pixels, at least 32.*Try 32 or 40"),
        ("swin", 24, "at least 32x32 pixels"),
    ],
)
def test_an_image_size_a_transformer_cannot_take(family, size, hint, presets):
    with pytest.raises(ValueError, match=hint) as error:
        build_backbone(presets(family), input_shape=(size, size, 3))
    _one_line(error)


def test_a_truncated_preset_folder(presets, tmp_path):
    folder = tmp_path / "truncated"
    shutil.copytree(hub.resolve_preset(presets("resnet")), folder)
    weights = folder / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError) as error:
        build_backbone(f"hub:{folder}")
    assert "missing or truncated" in _one_line(error)
    build_backbone(f"hub:{folder}", weights=None)  # random weights need no weights file
    (folder / "config.json").unlink()
    with pytest.raises(ValueError, match="has no config.json"):
        tk.FineTuner(f"hub:{folder}")
    with pytest.raises(ValueError, match="does not exist"):
        tk.FineTuner(f"hub:{tmp_path / 'nowhere'}")


def test_without_keras_hub_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)
    with pytest.raises(ImportError, match=r"transferkit\[hub\]"):
        tk.FineTuner("hub:vit_base_patch16_224_imagenet")


def test_the_command_line_takes_a_preset(presets, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, colour in (("cat", (220, 40, 40)), ("dog", (40, 40, 220))):
        (tmp_path / "data" / label).mkdir(parents=True)
        for index in range(6):
            pixels = np.clip(rng.normal(colour, 20, (36, 36, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(tmp_path / "data" / label / f"{index}.png")

    def fit(backbone, out):
        command = ["fit", str(tmp_path / "data"), "--out", str(tmp_path / out)]
        command += ["--backbone", backbone, "--epochs", "1", "--batch-size", "4"]
        return subprocess.run(
            [sys.executable, "-m", "transferkit", *command],
            capture_output=True,
            text=True,
            timeout=600,
        )

    result = fit(presets("dinov2"), "run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "run" / "model.keras").is_file()
    bad = fit("hub:bert_base_en", "run2")
    assert bad.returncode != 0 and "not an image backbone" in bad.stderr
    assert not (tmp_path / "run2").exists()

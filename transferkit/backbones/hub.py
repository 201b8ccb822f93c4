"""KerasHub presets as backbones: `"hub:<preset>"`, `"hf://..."`, `"kaggle://..."` or a folder.

A KerasHub preset is a folder (local, or downloaded once into the Hugging Face or
Kaggle cache) holding `config.json` (the backbone's Keras config), `model.weights.h5`
and `image_converter.json` (the image size, scale and offset the weights were
trained with). transferkit reads the converter into a `BackboneSpec`, so the
model's own `BackbonePreprocessing` scales raw 0-255 pixels exactly as the preset
does, and builds the backbone with `keras_hub.models.Backbone.from_preset`.

Spellings never collide with `keras.applications` names: a built-in KerasHub
preset is `"hub:<name>"`; `"hf://owner/name"` and `"kaggle://..."` are handles; a
folder is `"hub:<path>"` or a path holding a `config.json`.

Vision transformers take other image sizes than their preset's: DINOv2, DINOv3 and
Swin build at the new size themselves (KerasHub interpolates DINO's position
embeddings), and ViT and DeiT are built at the new size with the preset's weights
copied over, their position embeddings interpolated bicubically onto the new grid.

keras_hub (the `hub` extra) is imported only when such a backbone is asked for.
"""

import difflib
import functools
import json
import os
import re
import socket
from pathlib import Path

import numpy as np

from transferkit.backbones.registry import BackboneSpec
from transferkit.layers.image_preprocessing import per_channel

HUB_PREFIX = "hub:"
HANDLE_SCHEMES = ("hf://", "kaggle://")
INSTALL_HINT = 'pip install "transferkit[hub]"'
# Network probes give up after this many seconds, so an offline machine gets its
# error at once rather than after keras_hub's and huggingface_hub's retries.
NETWORK_TIMEOUT = 3.0

# KerasHub backbone class -> (family, default head pooling). Token models pool their
# class token (ViT, DeiT), class token and mean patch token side by side (the DINOv2
# linear-probe convention), or the mean token (Swin, which has no class token).
FAMILIES = {
    "ViTBackbone": ("vit", "token"),
    "DeiTBackbone": ("deit", "token"),
    "DINOV2Backbone": ("dinov2", "token_and_avg"),
    "DINOV3Backbone": ("dinov3", "token_and_avg"),
    "SwinTransformerBackbone": ("swin", "avg"),
}
_TOKEN_SIZE_RULES = {"vit", "deit", "dinov2", "dinov3", "swin"}


class HubPresetError(ValueError):
    """A KerasHub preset that cannot be used: unknown, unreachable, truncated, or not images."""


def is_hub_backbone(backbone) -> bool:
    """Whether `backbone` names a KerasHub preset rather than a Keras Applications model."""
    if not isinstance(backbone, (str, os.PathLike)):
        return False
    text = os.fspath(backbone)
    if text.startswith(HUB_PREFIX) or text.startswith(HANDLE_SCHEMES):
        return True
    # No registry name holds a path separator: a folder with a config.json is a preset.
    return os.sep in text and os.path.isfile(os.path.join(text, "config.json"))


def require_keras_hub():
    """Imports keras_hub, or says which extra to install."""
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError(
            f"KerasHub backbones need the keras-hub package: {INSTALL_HINT}."
        ) from error
    return keras_hub


def _preset_text(handle):
    text = os.fspath(handle)
    return text[len(HUB_PREFIX) :] if text.startswith(HUB_PREFIX) else text


def image_presets() -> list[str]:
    """The built-in KerasHub presets that hold an image converter (image backbones)."""
    keras_hub = require_keras_hub()
    return sorted(keras_hub.layers.ImageConverter.presets)


def resolve_preset(handle: str, need_weights: bool = True) -> Path:
    """The local folder of a preset, downloading it (once) where it is remote.

    Raises:
        HubPresetError: one line, before any training, for an unknown or
            non-image preset, a truncated folder, or a remote preset that cannot
            be reached (naming the offline routes).
    """
    text = _preset_text(handle)
    if text.startswith(HANDLE_SCHEMES):
        folder = _remote_folder(text)
    elif os.path.isdir(text):
        folder = Path(text)
    elif os.sep in text or text.startswith("."):
        raise HubPresetError(f"No KerasHub preset folder at {text!r} (it does not exist).")
    else:
        folder = _remote_folder(text)
    _check_folder(folder, text, need_weights)
    return folder


@functools.lru_cache(maxsize=64)
def _remote_folder(text):
    # Where a remote preset was found or downloaded to, once per process.
    if text.startswith("hf://"):
        return _hugging_face_folder(text)
    if text.startswith("kaggle://"):
        return _kaggle_folder(text[len("kaggle://") :], text)
    return _builtin_folder(text)


def _builtin_folder(name):
    keras_hub = require_keras_hub()
    from keras_hub.src.utils import preset_utils

    images = image_presets()
    if name not in preset_utils.BUILTIN_PRESETS:
        close = difflib.get_close_matches(name, images, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(f'hub:{c}') for c in close)}?" if close else ""
        raise HubPresetError(
            f"Unknown KerasHub preset {name!r}.{hint} transferkit.list_backbones(source="
            f"'keras_hub') lists the {len(images)} image presets of keras-hub "
            f"{keras_hub.__version__}."
        )
    if name not in images:
        raise HubPresetError(
            f"KerasHub preset {name!r} is not an image backbone (it has no image converter: "
            "a text or audio model?). Pick one of transferkit.list_backbones(source='keras_hub')."
        )
    kaggle = preset_utils.BUILTIN_PRESETS[name]["kaggle_handle"]
    return _kaggle_folder(kaggle[len("kaggle://") :], f"hub:{name}")


def _offline_message(text, host):
    return (
        f"Cannot download KerasHub preset {text!r}: {host} is unreachable (offline?). "
        "Without network, pass a local preset folder (backbone='hub:/path/to/preset', "
        "written by keras_hub's save_to_preset), or set HF_HUB_OFFLINE=1 to read an "
        "hf:// preset downloaded before from the Hugging Face cache."
    )


def _reachable(host):
    try:
        with socket.create_connection((host, 443), timeout=NETWORK_TIMEOUT):
            return True
    except OSError:
        return False


def _hugging_face_folder(text):
    try:
        import huggingface_hub
        from huggingface_hub.utils import validate_repo_id
    except ImportError as error:
        raise ImportError(f"hf:// presets need huggingface_hub: {INSTALL_HINT}.") from error
    repo_id = text[len("hf://") :]
    try:
        validate_repo_id(repo_id)
    except Exception as error:
        raise HubPresetError(
            f"{text!r} is not a Hugging Face handle: write 'hf://owner/name' ({error})."
        ) from error
    try:  # The cache first: nothing is downloaded twice.
        return Path(huggingface_hub.snapshot_download(repo_id, local_files_only=True))
    except Exception:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise HubPresetError(
            f"KerasHub preset {text!r} is not in the Hugging Face cache and HF_HUB_OFFLINE "
            "is set. Download it once with network, or pass a local preset folder "
            "(backbone='hub:/path/to/preset')."
        )
    if not _reachable("huggingface.co"):
        raise HubPresetError(_offline_message(text, "huggingface.co"))
    return Path(huggingface_hub.snapshot_download(repo_id))


def _kaggle_folder(handle, text):
    try:
        import kagglehub
    except ImportError as error:
        raise ImportError(
            f"Built-in and kaggle:// presets need kagglehub: {INSTALL_HINT}."
        ) from error
    parts = handle.strip("/").split("/")
    if len(parts) not in (4, 5):
        raise HubPresetError(
            f"{text!r} is not a Kaggle handle: write 'kaggle://owner/model/keras/variant"
            "[/version]'."
        )
    cache = (
        Path(os.environ.get("KAGGLEHUB_CACHE", Path.home() / ".cache" / "kagglehub"))
        / "models"
        / "/".join(parts[:4])
    )
    versions = [parts[4]] if len(parts) == 5 else None
    if cache.is_dir():
        found = sorted(
            (p for p in cache.iterdir() if p.name.isdigit() and (p / "config.json").exists()),
            key=lambda p: int(p.name),
        )
        if versions:
            found = [p for p in found if p.name == versions[0]]
        if found:
            return found[-1]
    if not _reachable("www.kaggle.com"):
        raise HubPresetError(_offline_message(text, "www.kaggle.com"))
    return Path(kagglehub.model_download(handle))


def _check_folder(folder, text, need_weights):
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise HubPresetError(
            f"KerasHub preset {text!r} has no config.json in {str(folder)!r}: not a preset "
            "folder, or a truncated one. Write it again with keras_hub's save_to_preset."
        )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise HubPresetError(
            f"KerasHub preset {text!r}: its config.json is damaged ({error}). Write the "
            "preset again with keras_hub's save_to_preset."
        ) from error
    if "registered_name" not in config:
        raise HubPresetError(
            f"KerasHub preset {text!r} is not in KerasHub's own format (its config.json is a "
            "Transformers or timm one): load it once with keras_hub.models.Backbone."
            "from_preset and save it with save_to_preset, then pass that folder."
        )
    if not (folder / "image_converter.json").is_file():
        raise HubPresetError(
            f"KerasHub preset {text!r} is not an image backbone: it has no "
            "image_converter.json (a text or audio model?)."
        )
    if need_weights:
        weights = folder / "model.weights.h5"
        sharded = folder / "model.weights.json"
        if not sharded.is_file() and not _readable_h5(weights):
            raise HubPresetError(
                f"KerasHub preset {text!r}: model.weights.h5 in {str(folder)!r} is missing "
                "or truncated. Download or save the preset again, or pass weights=None "
                "for random weights."
            )


def _readable_h5(path):
    import h5py

    try:
        with h5py.File(path, "r"):
            return True
    except OSError:  # missing, truncated or not HDF5
        return False


def _read_json(folder, name):
    return json.loads((folder / name).read_text())


def get_hub_spec(handle: str) -> BackboneSpec:
    """The `BackboneSpec` of a KerasHub preset, read from its config and image converter.

    Args:
        handle: str. `"hub:<preset>"`, `"hf://..."`, `"kaggle://..."` or a folder.

    Returns:
        A `BackboneSpec` with `source="keras_hub"` and `preprocessing="scale"`.
    """
    folder = resolve_preset(handle, need_weights=False)
    config = _read_json(folder, "config.json")
    converter = _read_json(folder, "image_converter.json").get("config", {})
    class_name = config.get("class_name", "")
    backbone_config = config.get("config", {})
    family, pooling = FAMILIES.get(class_name, (_family_of(class_name), "avg"))
    image_shape = backbone_config.get("image_shape") or (None, None, 3)
    size = converter.get("image_size") or image_shape[:2]
    default_size = int(size[0]) if size and size[0] else 224
    patch = backbone_config.get("patch_size")
    patch = int(patch[0] if isinstance(patch, (list, tuple)) else patch) if patch else None
    step = patch
    min_size = patch or 32
    if family == "swin":
        # Each stage after the first merges 2x2 patches, and the last grid holds a window.
        step = patch * 2 ** (len(backbone_config.get("depths", [])) - 1)
        min_size = step * int(backbone_config.get("window_size", 1))
        min_size = min(min_size, default_size)
    # A converter without scale or offset leaves pixels as they are.
    scale = per_channel(_or(converter.get("scale"), 1.0), "scale")
    offset = per_channel(_or(converter.get("offset"), 0.0), "offset")
    return BackboneSpec(
        name=os.fspath(handle),
        application=class_name,
        preprocessing="scale",
        default_size=default_size,
        min_size=min_size,
        family=family,
        source="keras_hub",
        patch_size=patch,
        size_step=step if family in _TOKEN_SIZE_RULES else None,
        pooling=pooling,
        scale=scale,
        offset=offset,
        interpolation=converter.get("interpolation", "bilinear"),
        antialias=bool(converter.get("antialias", False)),
    )


def _or(value, default):
    return default if value is None else value


def _family_of(class_name):
    return class_name.removesuffix("Backbone").lower() or "custom"


def check_image_shape(spec: BackboneSpec, input_shape) -> tuple[int, int, int]:
    """`input_shape` as a tuple, or a one-line error naming the nearest sizes it could take."""
    height, width = int(input_shape[0]), int(input_shape[1])
    step = spec.size_step or 1
    for side in (height, width):
        if side >= spec.min_size and side % step == 0:
            continue
        upper = max(spec.min_size, -(-side // step) * step)
        lower = (side // step) * step
        sizes = f"{lower} or {upper}" if spec.min_size <= lower < upper else f"{upper}"
        rule = f"multiples of {step} pixels, " if step > 1 else ""
        raise ValueError(
            f"KerasHub backbone {spec.name!r} ({spec.family}) takes image sides that are "
            f"{rule}at least {spec.min_size}. Received: input_shape={tuple(input_shape)}. "
            f"Try {sizes} (images are resized to it)."
        )
    return (height, width, 3)


def build_hub_backbone(handle, weights="imagenet", input_shape=None, spec=None):
    """Builds a KerasHub backbone from a preset, with its weights or random ones.

    Args:
        handle: str. A KerasHub preset spelling (see `is_hub_backbone`).
        weights: `"imagenet"` (or `"preset"`) for the preset's weights, `None`
            for random ones, or the path of a `.weights.h5` file saved from the
            same backbone. Defaults to `"imagenet"`.
        input_shape: tuple or None. `(height, width, 3)`; the preset's size by
            default.
        spec: `BackboneSpec` or None. The preset's, when the caller has read it
            already (`get_hub_spec`). Defaults to `None`: read here.

    Returns:
        `(backbone, spec)`.
    """
    keras_hub = require_keras_hub()
    load = weights in ("imagenet", "preset")
    folder = resolve_preset(os.fspath(handle), need_weights=load)
    spec = spec or get_hub_spec(os.fspath(handle))
    config = _read_json(folder, "config.json").get("config", {})
    preset_shape = tuple(config.get("image_shape") or (None, None, 3))
    if input_shape is None:
        input_shape = (spec.default_size, spec.default_size, 3)
    input_shape = check_image_shape(spec, input_shape)
    kwargs = {}
    if preset_shape[0] is not None and tuple(preset_shape) != input_shape:
        kwargs["image_shape"] = input_shape
    backbone_cls = keras_hub.models.Backbone
    if not load or not kwargs or spec.family in ("dinov2", "dinov3", "swin"):
        backbone = backbone_cls.from_preset(str(folder), load_weights=load, **kwargs)
    else:
        # ViT and DeiT store position embeddings for one grid: build at the new size and
        # copy the preset's weights, interpolating them onto the new grid.
        source = backbone_cls.from_preset(str(folder), load_weights=True)
        backbone = backbone_cls.from_preset(str(folder), load_weights=False, **kwargs)
        copy_weights(source, backbone, spec.patch_size)
        del source
    if spec.family == "dinov2":
        backbone = _own_position_grid(backbone)
    if weights is not None and not load:
        from transferkit.backbones.weights import weights_file_path

        backbone.load_weights(weights_file_path(weights))
    return backbone, spec


def _own_position_grid(backbone):
    """DINOv2 at its own grid: the same outputs, and a save and load that lose nothing.

    KerasHub's DINOv2 keeps its position embeddings at the grid they were trained at
    (518 px for the real checkpoints) and trains a copy interpolated to the image
    size; saving interpolates the trained copy back, and loading forward again, so a
    fine-tuned model reloads with other outputs. Rebuilt with the position grid at
    the image size, the two are one grid and both interpolations are the identity.
    """
    config = backbone.get_config()
    image_shape = tuple(config["image_shape"])
    grid = tuple(config.get("position_embedding_shape") or image_shape)
    if grid[:2] == image_shape[:2]:
        return backbone
    config["position_embedding_shape"] = image_shape
    target = type(backbone).from_config(config)
    embeddings = backbone.embeddings
    for mine, theirs in zip(target.weights, backbone.weights, strict=True):
        if theirs is embeddings.position_embeddings:
            theirs = embeddings.interpolated_position_embeddings
        mine.assign(theirs)
    return target


def sync_position_grids(model) -> None:
    """Copies trained DINOv2 position embeddings to the grid KerasHub saves.

    KerasHub's DINOv2 saves `position_embeddings` and, on loading, recomputes the
    embeddings it trains (`interpolated_position_embeddings`) from them; it copies
    the trained ones back only when their summed difference is positive, so a
    fine-tuned model could reload with its original embeddings. At the grid
    `build_hub_backbone` gives it (the image size), the two have one shape: this
    copies one onto the other before every save. Other layers are left alone.
    """
    for layer in model._flatten_layers(include_self=True):
        trained = getattr(layer, "interpolated_position_embeddings", None)
        stored = getattr(layer, "position_embeddings", None)
        if trained is None or stored is None or not hasattr(stored, "assign"):
            continue
        if tuple(trained.shape) == tuple(stored.shape):
            stored.assign(trained)


def copy_weights(source, target, patch_size: int) -> None:
    """Copies `source`'s weights onto `target`, resizing position embeddings to its grid.

    Both are the same architecture built at two image sizes. A variable whose
    shape differs holds one embedding per prefix token (class, distillation)
    and one per patch of the source's grid; the patch part is resized
    bicubically to the target's grid and the prefix tokens are kept.
    """
    import keras

    source_grid = [s // patch_size for s in source.input_shape[1:3]]
    target_grid = [s // patch_size for s in target.input_shape[1:3]]
    for mine, theirs in zip(target.weights, source.weights, strict=True):
        value = keras.ops.convert_to_numpy(theirs.value)
        if tuple(mine.shape) != value.shape:
            value = _resized_positions(value, source_grid, target_grid, tuple(mine.shape))
        mine.assign(value)


def _resized_positions(value, source_grid, target_grid, shape):
    import keras

    squeeze = value.ndim == 3
    table = value[0] if squeeze else value
    patches = source_grid[0] * source_grid[1]
    prefix = table.shape[0] - patches
    if prefix < 0 or table.ndim != 2:
        raise ValueError(
            f"Cannot resize a weight of shape {value.shape} onto shape {shape}: it is not a "
            "position embedding of the preset's patch grid."
        )
    grid = table[prefix:].reshape(*source_grid, table.shape[1])
    resized = keras.ops.convert_to_numpy(
        keras.ops.image.resize(grid[None], target_grid, interpolation="bicubic")
    )[0].reshape(-1, table.shape[1])
    table = np.concatenate([table[:prefix], resized], axis=0).astype(value.dtype)
    return table[None] if squeeze else table


def _size_in_name(name):
    # Most presets name their resolution ("vit_base_patch16_224_imagenet"); the others
    # say it in their image_converter.json, read once the preset is downloaded.
    match = re.search(r"_(\d{3,4})(?:_|$)", name)
    return int(match.group(1)) if match else None


def hub_backbone_table():
    """Rows for `list_backbones`: KerasHub's built-in image presets."""
    require_keras_hub()
    from keras_hub.src.utils import preset_utils

    rows = []
    for name in image_presets():
        info = preset_utils.BUILTIN_PRESETS.get(name, {})
        metadata = info.get("metadata", {})
        rows.append(
            {
                "name": f"{HUB_PREFIX}{name}",
                "application": metadata.get("path", ""),
                "family": metadata.get("path", ""),
                "input_size": _size_in_name(name),
                "parameters": metadata.get("params"),
                "source": "keras_hub",
                "weights": info.get("kaggle_handle", ""),
                "description": metadata.get("description", ""),
            }
        )
    return rows

"""Mixed precision: which dtype policy a backbone trains in, and moving a model between them.

A `FineTuner(precision=...)` trains in `"float32"`, `"mixed_bfloat16"` or
`"mixed_float16"` (Keras's dtype policies: variables stay float32, layers
compute in the lower precision), or lets `"auto"` choose by the hardware and
the backbone. Whatever it trains in, the model the FineTuner holds between
runs, saves and exports computes in float32, the head's output is float32 and
the feature cache keeps float32 features. Keras's global dtype policy is set
only while a model is being built in another precision, and always restored.
"""

import contextlib
import copy
import dataclasses
import functools

import keras

from transferkit import defaults
from transferkit.layers.batch_normalization import BFloat16BatchNormalization

__all__ = [
    "PRECISIONS",
    "CPU_BFLOAT16_SPEEDUP",
    "Hardware",
    "detect_hardware",
    "resolve_precision",
    "with_precision",
    "model_precision",
    "dtype_policy_scope",
]

PRECISIONS = defaults.PRECISIONS
POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")

# Unfrozen-epoch speed of `mixed_bfloat16` over `float32` on a CPU that computes
# bfloat16 natively (AVX512-BF16/AMX), per backbone family, measured with
# `python -m bench.precision --backbones resnet50 mobilenet` (2 cores, batch 32, 160 px,
# frozen BatchNorm as `BFloat16BatchNormalization`, best of 8 alternating rounds; feature
# extraction: 1.59x and 1.08x), and for KerasHub's transformers with
# `python -m bench.backbones` (batch 16, best of 2 rounds; DeiT-S at 160 px, DINOv2
# ViT-S/14 at 168 px, Swin-T at 224 px). "auto" picks bfloat16 on such a CPU only for a
# family listed here as faster: depthwise convolutions (MobileNet) trained slower in
# bfloat16, and an unmeasured family stays in float32 rather than risk the same.
CPU_BFLOAT16_SPEEDUP = {
    "resnet": 1.59,
    "mobilenet": 0.87,
    "deit": 1.29,
    "dinov2": 1.41,
    "swin": 1.66,
}
# The least speed-up for which "auto" leaves float32 on a CPU.
MIN_SPEEDUP = 1.1

# CPU flags (as Linux's /proc/cpuinfo spells them) of native bfloat16 arithmetic.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclasses.dataclass(frozen=True)
class Hardware:
    """What "auto" precision looks at: the CPU's flags and the GPUs' compute capabilities.

    Args:
        cpu_flags: frozenset of str. The CPU's feature flags, lower case
            (`"avx512_bf16"`, `"amx_bf16"`, ...).
        gpus: tuple of (int, int). The compute capability `(major, minor)` of
            each visible GPU; empty on a machine without one.
    """

    cpu_flags: frozenset = frozenset()
    gpus: tuple = ()


@functools.cache
def detect_hardware() -> Hardware:
    """The hardware of this machine, as `Hardware` (read once per process)."""
    import tensorflow as tf

    flags = set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass  # not Linux: no flags known, so no CPU bfloat16 claimed
    gpus = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        gpus.append(tuple(details.get("compute_capability") or (0, 0)))
    return Hardware(frozenset(flag.lower() for flag in flags), tuple(gpus))


def check_precision(precision) -> str:
    """Returns `precision` if it is one of `PRECISIONS`, else raises a ValueError saying so."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"`precision` must be one of {list(PRECISIONS)}. Received: precision={precision!r}"
        )
    return precision


def resolve_precision(
    precision: str, family: str | None, hardware: Hardware | None = None
) -> tuple[str, str]:
    """The dtype policy a backbone trains in, and why.

    `"auto"` picks, in order: on GPUs, `"mixed_bfloat16"` where all compute
    bfloat16 natively (compute capability 8.0 and up), `"mixed_float16"` where
    all have float16 tensor cores (7.0 and up), else `"float32"`; on a CPU
    with native bfloat16 (`avx512_bf16` or `amx_bf16`), `"mixed_bfloat16"`
    for a backbone family measured faster in it (`CPU_BFLOAT16_SPEEDUP`),
    else `"float32"`.

    Args:
        precision: str. One of `PRECISIONS`.
        family: str or None. The backbone's family (`BackboneSpec.family`);
            `None` for a backbone of your own.
        hardware: `Hardware` or None. Defaults to this machine's
            (`detect_hardware()`).

    Returns:
        `(policy, reason)`: one of `POLICIES`, and a sentence for the log.
    """
    check_precision(precision)
    if precision != "auto":
        return precision, "as asked"
    hardware = detect_hardware() if hardware is None else hardware
    if hardware.gpus:
        lowest = min(hardware.gpus)
        if lowest >= (8, 0):
            return "mixed_bfloat16", f"GPUs of compute capability {lowest} compute bfloat16"
        if lowest >= (7, 0):
            return "mixed_float16", f"GPUs of compute capability {lowest} lack bfloat16"
        return "float32", f"GPUs of compute capability {lowest} have no fast float16"
    if not hardware.cpu_flags & set(BFLOAT16_CPU_FLAGS):
        return "float32", "the CPU has no native bfloat16"
    speedup = CPU_BFLOAT16_SPEEDUP.get(family)
    if speedup is None:
        return "float32", f"bfloat16 is not measured for the {family or 'custom'} family here"
    if speedup < MIN_SPEEDUP:
        return "float32", f"the {family} family trains {speedup:.2f}x as fast in bfloat16"
    return "mixed_bfloat16", f"the {family} family trains {speedup:.2f}x faster in bfloat16"


@contextlib.contextmanager
def dtype_policy_scope(policy: str):
    """Sets Keras's global dtype policy for the block, and restores the previous one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def model_precision(model: keras.Model) -> str:
    """The dtype policy a classifier's backbone computes in (`"float32"`, `"mixed_..."`)."""
    backbone = getattr(model, "backbone", model)
    return backbone.dtype_policy.name


# How Keras serializes the class of a layer: swapping these keys swaps the class.
_CLASS_KEYS = ("module", "class_name", "registered_name")


def _class_of(layer_class):
    return {key: keras.saving.serialize_keras_object(layer_class())[key] for key in _CLASS_KEYS}


_KERAS_BATCH_NORM = _class_of(keras.layers.BatchNormalization)
_BFLOAT16_BATCH_NORM = _class_of(BFloat16BatchNormalization)


def _with_policy(config, policy, batch_norm):
    """`config` with every float dtype policy in it replaced by `policy`, and its
    BatchNormalization layers of class `batch_norm[0]` made of class `batch_norm[1]`."""
    if isinstance(config, list):
        return [_with_policy(value, policy, batch_norm) for value in config]
    if not isinstance(config, dict):
        return config
    if (
        config.get("class_name") == "DTypePolicy"
        and config.get("config", {}).get("name") in POLICIES
    ):
        return {**config, "config": {**config["config"], "name": policy}}
    old, new = batch_norm
    if "config" in config and all(config.get(key) == old[key] for key in _CLASS_KEYS):
        config = {**config, **new}
    # A classifier's `finetuner_config` holds settings (maybe a serialized backbone
    # as given), not this model's layers: it stays as it is.
    return {
        key: value if key == "finetuner_config" else _with_policy(value, policy, batch_norm)
        for key, value in config.items()
    }


def with_precision(
    model: keras.Model, policy: str, *, bfloat16_batch_norm: bool = True
) -> keras.Model:
    """A copy of `model` computing in the dtype policy `policy`, with the same weights.

    Layers whose dtype is fixed by their code (the head's float32 output layer,
    the float32 preprocessing) keep it; the rest follow `policy`. Under
    `"mixed_bfloat16"` BatchNormalization layers become
    `BFloat16BatchNormalization` (the same weights; no float32 round trip when
    they only apply their statistics), and Keras's own again under any other
    policy. Trainable flags travel with the layers' configs. The global dtype
    policy is restored.

    Args:
        model: `keras.Model`. A serializable model (such as an `ImageClassifier`).
        policy: str. One of `POLICIES`.
        bfloat16_batch_norm: bool. Whether `"mixed_bfloat16"` swaps in
            `BFloat16BatchNormalization`; `False` keeps Keras's layer (to
            measure the difference). Defaults to `True`.

    Returns:
        A new model; `model` is unchanged.
    """
    if policy not in POLICIES:
        raise ValueError(f"`policy` must be one of {list(POLICIES)}. Received: {policy!r}")
    config = copy.deepcopy(keras.saving.serialize_keras_object(model))
    batch_norm = (
        (_KERAS_BATCH_NORM, _BFLOAT16_BATCH_NORM)
        if policy == "mixed_bfloat16" and bfloat16_batch_norm
        else (_BFLOAT16_BATCH_NORM, _KERAS_BATCH_NORM)
    )
    config = _with_policy(config, policy, batch_norm)
    with dtype_policy_scope(policy):
        clone = keras.saving.deserialize_keras_object(config)
    clone.set_weights(model.get_weights())
    return clone


def copy_state(source: keras.Model, target: keras.Model) -> None:
    """Copies weights and trainable flags between two copies of one model (any precisions)."""
    target.set_weights(source.get_weights())
    target.trainable = source.trainable
    for mine, theirs in zip(_layers(source), _layers(target), strict=True):
        theirs.trainable = mine.trainable


def _layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _layers(layer)

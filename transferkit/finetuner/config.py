"""A FineTuner's settings as plain data: what `get_config` writes and `from_config` reads.

Every constructor argument has a JSON form, so the settings travel inside the
`.keras` file (`ImageClassifier.finetuner_config`) and `transferkit.load` gives
back a FineTuner that fits on with the same recipe. Keras objects (a backbone
model, the head, layers of augmentation, a schedule) are written with
`keras.saving.serialize_keras_object` and read back in safe mode.
"""

import copy
import inspect
import json
import os

import keras

from transferkit import schedules
from transferkit.features import FeatureCache
from transferkit.training.distribution import distribute_config


def _serialize_schedule(schedule):
    if isinstance(schedule, str):
        return schedule
    cls = type(schedule)
    registered = keras.saving.get_registered_name(cls)
    if keras.saving.get_registered_object(registered) is not cls:
        raise ValueError(
            f"The schedule {cls.__name__} is not registered with Keras, so a saved "
            "FineTuner could not be loaded with it. Decorate the class with "
            '@keras.saving.register_keras_serializable(package="your_package").'
        )
    return keras.saving.serialize_keras_object(schedule)


def _serialize_augmentation(augmentation):
    if augmentation is None or isinstance(augmentation, str):
        return augmentation
    if isinstance(augmentation, keras.layers.Layer):
        return keras.saving.serialize_keras_object(augmentation)
    return [keras.saving.serialize_keras_object(layer) for layer in augmentation]


def _serialize_cache(cache_features):
    if isinstance(cache_features, FeatureCache):
        return {"feature_cache": cache_features.get_config()}
    return bool(cache_features)


def finetuner_config(finetuner) -> dict:
    """The FineTuner's constructor arguments in JSON form.

    Raises:
        ValueError: for a custom schedule that is not registered with Keras.
    """
    backbone = finetuner.backbone
    weights = finetuner.weights
    config = {
        "backbone": backbone
        if isinstance(backbone, str)
        else keras.saving.serialize_keras_object(backbone),
        "num_classes": finetuner.num_classes,
        "weights": os.fspath(weights) if isinstance(weights, os.PathLike) else weights,
        "head": keras.saving.serialize_keras_object(finetuner.head),
        "input_shape": None if finetuner.input_shape is None else list(finetuner.input_shape),
        "schedule": _serialize_schedule(finetuner.schedule),
        "optimizer": finetuner.optimizer,
        "augmentation": _serialize_augmentation(finetuner.augmentation),
        "cached_views": finetuner.cached_views,
        "cache_features": _serialize_cache(finetuner.cache_features),
        "jit_compile": finetuner.jit_compile,
        "precision": finetuner.precision,
        "validation_split": finetuner.validation_split,
        "path_column": finetuner.path_column,
        "label_column": finetuner.label_column,
        "multi_label": finetuner.multi_label,
        "label_delimiter": finetuner.label_delimiter,
        "seed": finetuner.seed,
        # A strategy object is not serializable: its kind is kept ("mirrored", ...).
        "distribute": distribute_config(finetuner.distribute),
    }
    # Exactly what a `.keras` file gives back (tuples become lists there).
    return json.loads(json.dumps(config))


def finetuner_kwargs(finetuner_class, config: dict) -> dict:
    """The constructor arguments that `config` (from `finetuner_config`) describes.

    Raises:
        ValueError: for a key the FineTuner does not take, or a Keras object
            that cannot be deserialized (such as an unregistered schedule).
    """
    accepted = [name for name in inspect.signature(finetuner_class).parameters if name != "self"]
    unknown = sorted(set(config) - set(accepted))
    if unknown:
        raise ValueError(
            f"Unknown FineTuner setting(s) {unknown} in the config. A FineTuner takes {accepted}."
        )
    # Keras's deserialization consumes the dicts it reads: work on a copy.
    kwargs = copy.deepcopy(config)
    deserialize = keras.saving.deserialize_keras_object
    if isinstance(kwargs.get("backbone"), dict):
        kwargs["backbone"] = deserialize(kwargs["backbone"])
    if isinstance(kwargs.get("head"), dict):
        kwargs["head"] = deserialize(kwargs["head"])
    if kwargs.get("input_shape") is not None:
        kwargs["input_shape"] = tuple(kwargs["input_shape"])
    if isinstance(kwargs.get("schedule"), dict):
        try:
            kwargs["schedule"] = schedules.get(kwargs["schedule"])
        except (TypeError, ValueError) as error:
            name = kwargs["schedule"].get("class_name")
            raise ValueError(
                f"The config's schedule {name!r} cannot be rebuilt: {error}. A custom "
                "schedule must be registered with @keras.saving.register_keras_serializable "
                "and imported before loading."
            ) from error
    augmentation = kwargs.get("augmentation")
    if isinstance(augmentation, dict):
        kwargs["augmentation"] = deserialize(augmentation)
    elif isinstance(augmentation, list):
        kwargs["augmentation"] = [deserialize(layer) for layer in augmentation]
    cache = kwargs.get("cache_features")
    if isinstance(cache, dict):
        kwargs["cache_features"] = FeatureCache(**cache["feature_cache"])
    return kwargs

"""A search's folder: what it was run with, so a different search never continues it."""

import json
import os

from transferkit.data import ImageSource
from transferkit.features import source_fingerprint
from transferkit.utils.log import logger

SETTINGS_FILE = "transferkit_search.json"


def _fingerprint(source: ImageSource) -> str | None:
    try:
        return source_fingerprint(source)
    except ValueError:  # a tf.data.Dataset
        return None


def search_settings(hypermodel, train, validation, tuner_class, batch_size, class_weight) -> dict:
    """Everything a search's results depend on, to refuse continuing a different search."""
    return {
        "search_space": hypermodel.space.get_config(),
        "class_names": hypermodel.class_names,
        "epochs": hypermodel.epochs,
        "objective": hypermodel.objective.name,
        "weights": {name: str(value) for name, value in hypermodel.weights.items()},
        "input_shape": hypermodel.input_shape,
        "optimizer": hypermodel.optimizer,
        "augmentation": repr(hypermodel.augmentation),
        "cached_views": hypermodel.cached_views,
        "seed": hypermodel.seed,
        "tuner": tuner_class.__name__,
        "batch_size": batch_size,
        "class_weight": class_weight,
        "train_images": _fingerprint(train),
        "validation_images": _fingerprint(validation),
    }


def check_same_search(project_dir: str, settings: dict) -> None:
    path = os.path.join(project_dir, SETTINGS_FILE)
    if not os.path.exists(path):
        return
    with open(path) as file:
        previous = json.load(file)
    # Through JSON, so tuples and lists compare equal.
    current = json.loads(json.dumps(settings, default=str))
    differ = sorted(
        key for key in set(previous) | set(current) if previous.get(key) != current.get(key)
    )
    if differ:
        raise ValueError(
            f"{project_dir} holds a different search (it differs in {differ}), and "
            "overwrite=False would continue it with the old settings. Pass overwrite=True to "
            "start afresh, or another directory or project_name."
        )
    logger.info(f"continuing the search in {project_dir}")


def write_settings(project_dir: str, settings: dict) -> None:
    """Records the settings of the search in its folder."""
    with open(os.path.join(project_dir, SETTINGS_FILE), "w") as file:
        json.dump(settings, file, indent=1, default=str)

"""The random augmentation of training batches, kept outside the saved model."""

import keras

AUGMENTATIONS = ("flip", "none")


def augmentation_layer(augmentation, seed: int | None):
    """Builds a fresh augmentation layer from the FineTuner's `augmentation` argument.

    Fresh each time, from its config, so that its random state starts from `seed` in
    every phase: whether the feature cache was hit (and skipped drawing augmented
    views) must not change what the next phase sees.

    Raises:
        ValueError: for anything but `"flip"`, `"none"`/None, a layer or a list of layers.
    """
    if augmentation is None or augmentation == "none":
        return None
    if augmentation == "flip":
        return keras.layers.RandomFlip("horizontal", seed=seed)
    if isinstance(augmentation, keras.layers.Layer):
        return augmentation.__class__.from_config(augmentation.get_config())
    if isinstance(augmentation, (list, tuple)) and all(
        isinstance(layer, keras.layers.Layer) for layer in augmentation
    ):
        return keras.Sequential(
            [layer.__class__.from_config(layer.get_config()) for layer in augmentation]
        )
    raise ValueError(
        f"`augmentation` must be one of {list(AUGMENTATIONS)}, None, a keras Layer or a list of "
        f"keras Layers. Received: augmentation={augmentation!r}"
    )


def augmentation_key(augmentation: keras.layers.Layer) -> str:
    """What identifies an augmentation for the feature cache."""
    # Layer names differ between otherwise identical layers (`random_flip_1`, `_2`).
    config = {key: value for key, value in augmentation.get_config().items() if key != "name"}
    return f"{type(augmentation).__name__}{config}"

"""Loading a transferkit classifier from a `.keras` file, with errors that say what it is."""

import os
import zipfile

import keras

from transferkit.models.image_classifier import ImageClassifier
from transferkit.models.legacy import is_legacy_classifier

EXPECTED = (
    "transferkit.load expects a .keras file written by FineTuner.save or ImageClassifier.save"
)


def load_classifier(path: str | os.PathLike) -> keras.Model:
    """Loads the classifier in a `.keras` file, in safe mode.

    Returns:
        An `ImageClassifier`, or a classifier saved by transferkit 0.1 (which
        `FineTuner.from_model` upgrades).

    Raises:
        FileNotFoundError: if there is no file at `path`.
        ValueError: a one-line error for a file that is not a Keras archive, is
            truncated, needs code to be run (a Lambda layer), or holds a model
            transferkit did not write.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No saved model at {path!r}.")
    if os.path.isdir(path) or not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path!r} is not a .keras file (a zip archive written by Keras); {EXPECTED}."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(f"{path!r} is a damaged .keras file ({error}); {EXPECTED}.") from error
    if broken is not None or "config.json" not in names:
        what = f"its member {broken!r} is damaged" if broken else "it has no config.json"
        raise ValueError(f"{path!r} is not a complete .keras file: {what}; {EXPECTED}.")
    with zipfile.ZipFile(path) as archive:
        if b'"keras_hub' in archive.read("config.json"):
            # A KerasHub backbone: its classes register when keras_hub is imported.
            from transferkit.backbones.hub import require_keras_hub

            require_keras_hub()
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many kinds; the message is what matters
        reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        if "lambda" in str(error).lower() and "safe" in str(error).lower():
            reason = "it holds a Lambda layer, whose code safe mode never runs"
        raise ValueError(f"Could not load {path!r}: {reason}. {EXPECTED}.") from error
    if isinstance(model, ImageClassifier) or is_legacy_classifier(model):
        return model
    raise ValueError(
        f"{path!r} holds a Keras {type(model).__name__} named {model.name!r}, not a transferkit "
        f"classifier; {EXPECTED}. Load other models with keras.saving.load_model."
    )

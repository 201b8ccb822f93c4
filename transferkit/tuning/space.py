"""The search space of the two-phase recipe: names, defaults, ranges and overrides.

Every hyperparameter's default is what `FineTuner` does when left alone (read
from `transferkit.defaults`: a linear head with its default dropout, the default
frozen epochs at the head's rate, then the whole backbone at the fine-tuning
rate), so the default trial is the default recipe and a search can only improve
on it. Hyperparameters that only matter in one branch live in a
`conditional_scope`: the head's width only when it has dense blocks, the
unfreezing ones only when the backbone unfreezes, and the number of blocks to
unfreeze once per backbone, since backbones have different numbers of blocks.
"""

import math
import numbers
from collections.abc import Mapping, Sequence

import keras_tuner
from keras_tuner.engine import hyperparameters as hp_types

from transferkit import defaults
from transferkit.backbones import build_backbone, get_backbone_spec
from transferkit.schedules import backbone_blocks

UNFREEZE_BLOCKS = "unfreeze_blocks"

# name -> (meaning, default definition); the definition's range is Keras Tuner's.
DEFINITIONS = {
    "backbone": "Which backbone, among `backbones`.",
    "head_depth": "Dense blocks between the pooling and the output layer (0: a linear head).",
    "head_units": "Units of each dense block; only when `head_depth` > 0.",
    "dropout": "Dropout rate of the head.",
    "learning_rate": "Peak learning rate of the head while the backbone is frozen.",
    "unfreeze": "Whether the backbone unfreezes after the frozen epochs (False: head only).",
    "frozen_epochs": "Epochs of head warm-up on the frozen backbone; only when `unfreeze`.",
    "fine_tune_learning_rate": "Peak learning rate of the head once the backbone trains; "
    "only when `unfreeze`.",
    f"<backbone>/{UNFREEZE_BLOCKS}": "How many top blocks of that backbone train after the "
    "frozen epochs; only when `unfreeze` and that backbone is chosen.",
    "lowest_block_multiplier": "Layer-wise decay: the learning-rate multiplier of the lowest "
    "trainable block (the blocks above it get rates spread up to the head's); only when "
    "`unfreeze`.",
    "augmentation_strength": "Random shifts and zooms of up to this fraction of the image, "
    "added to `augmentation` (0: `augmentation` alone).",
    "label_smoothing": "Label smoothing of the training loss (0: plain labels).",
    "image_size": "Side of the square input of the backbone, in pixels; searched when "
    "`input_shape` is given (that side and one about 25 % larger) or `search_space` lists "
    "sizes.",
}

_BLOCK_COUNTS = {}
# The default image sizes: the given side and one about this much larger, rounded to a
# multiple of SIZE_STEP (the strides of the backbones' feature maps).
LARGER_SIZE = 1.25
SIZE_STEP = 32


def default_hyperparameters(epochs: int) -> dict:
    """The default definition of each backbone-independent hyperparameter."""
    unfreeze = (
        hp_types.Boolean("unfreeze", default=True)
        if epochs >= 2
        # With one epoch there is no epoch left to unfreeze in.
        else hp_types.Fixed("unfreeze", False)
    )
    return {
        "head_depth": hp_types.Int("head_depth", 0, 2, default=0),
        "head_units": hp_types.Choice("head_units", [64, 128, 256, 512], default=256),
        "dropout": hp_types.Float("dropout", 0.0, 0.5, step=0.1, default=defaults.DROPOUT),
        "learning_rate": hp_types.Float(
            "learning_rate", 1e-4, 1e-1, sampling="log", default=defaults.LEARNING_RATE
        ),
        "unfreeze": unfreeze,
        "frozen_epochs": hp_types.Int(
            "frozen_epochs", 1, max(1, epochs - 1), default=defaults.FROZEN_EPOCHS
        ),
        "fine_tune_learning_rate": hp_types.Float(
            "fine_tune_learning_rate",
            1e-6,
            1e-3,
            sampling="log",
            default=defaults.FINE_TUNE_LEARNING_RATE,
        ),
        "lowest_block_multiplier": hp_types.Float(
            "lowest_block_multiplier",
            0.01,
            1.0,
            sampling="log",
            default=defaults.LOWEST_BLOCK_MULTIPLIER,
        ),
        "augmentation_strength": hp_types.Float(
            "augmentation_strength", 0.0, 0.2, step=0.1, default=0.0
        ),
        "label_smoothing": hp_types.Float("label_smoothing", 0.0, 0.2, step=0.1, default=0.0),
    }


def larger_size(side: int, step: int = SIZE_STEP) -> int:
    """The size a search tries beside `side`: about 25 % larger, a multiple of `step`.

    `step` is 32, or the side rule of the searched vision transformers (a
    multiple of DINOv2's patch of 14, a Swin-T's 32: `BackboneSpec.size_step`).
    """
    return step * int(side * LARGER_SIZE / step + 0.5)


def size_step(specs) -> int:
    """The step of the sizes a search tries: the least multiple of every backbone's rule."""
    steps = [spec.size_step for spec in specs if spec.size_step]
    return math.lcm(*steps) if steps else SIZE_STEP


def image_sizes(side: int, step: int = SIZE_STEP):
    """The default `image_size` range: the given side and `larger_size(side)`.

    Larger inputs let a backbone see more detail (CIFAR's 32-pixel photos
    upsampled from 128 to 160 pixels: +1.6 and +1.9 points of held-out
    accuracy with MobileNet in two seeds) for about 1.6x the seconds of a
    trial. The given side stays the default: the larger one must be right on
    more of the validation and confirmation images (see
    `transferkit.tuning.selection`). Where the two coincide (small sides) the size is
    fixed.
    """
    larger = larger_size(side, step)
    if larger <= side:
        return hp_types.Fixed("image_size", side)
    return hp_types.Choice("image_size", [side, larger], default=side)


def count_blocks(backbone: str, input_shape: tuple | None) -> int:
    """How many blocks `transferkit.schedules.backbone_blocks` finds in a backbone.

    Counted once per process on a backbone without weights (the count does not
    depend on them).
    """
    key = (backbone, input_shape)
    if key not in _BLOCK_COUNTS:
        model, _ = build_backbone(backbone, weights=None, input_shape=input_shape)
        _BLOCK_COUNTS[key] = len(backbone_blocks(model))
    return _BLOCK_COUNTS[key]


def possible_values(hyperparameter) -> list | None:
    """The values a discrete hyperparameter can take; None for a continuous range."""
    if isinstance(hyperparameter, hp_types.Fixed):
        return [hyperparameter.value]
    if isinstance(hyperparameter, hp_types.Boolean):
        return [True, False]
    if isinstance(hyperparameter, hp_types.Choice):
        return list(hyperparameter.values)
    if isinstance(hyperparameter, hp_types.Int):
        step = hyperparameter.step or 1
        return list(range(hyperparameter.min_value, hyperparameter.max_value + 1, step))
    if isinstance(hyperparameter, hp_types.Float) and (
        hyperparameter.min_value == hyperparameter.max_value
    ):
        return [hyperparameter.min_value]
    return None


def _bounds(hyperparameter) -> list:
    values = possible_values(hyperparameter)
    if values is not None:
        return values
    return [hyperparameter.min_value, hyperparameter.max_value]


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_value(name: str, value, epochs: int, num_blocks: int | None) -> str | None:
    """Returns what is wrong with one value of a hyperparameter, or None."""
    if name == "head_depth" and not (_is_integer(value) and value >= 0):
        return "an integer >= 0"
    if name == "head_units" and not (_is_integer(value) and value >= 1):
        return "an integer >= 1"
    if name == "dropout" and not (_is_number(value) and 0 <= value < 1):
        return "a number in [0, 1)"
    if name in ("learning_rate", "fine_tune_learning_rate") and not (
        _is_number(value) and value > 0
    ):
        return "a number > 0"
    if name == "lowest_block_multiplier" and not (_is_number(value) and 0 < value <= 1):
        return "a number in (0, 1]"
    if name == "augmentation_strength" and not (_is_number(value) and 0 <= value < 1):
        return "a number in [0, 1)"
    if name == "label_smoothing" and not (_is_number(value) and 0 <= value < 1):
        return "a number in [0, 1)"
    if name == "image_size" and not (_is_integer(value) and value >= 32):
        return "an integer >= 32 (pixels)"
    if name == "unfreeze" and not isinstance(value, bool):
        return "True or False"
    if name == "frozen_epochs" and not (_is_integer(value) and 1 <= value <= epochs):
        return f"an integer from 1 to epochs={epochs}"
    if name.endswith(f"/{UNFREEZE_BLOCKS}") and not (
        _is_integer(value) and 1 <= value <= num_blocks
    ):
        backbone = name.rsplit("/", 1)[0]
        return f"an integer from 1 to {num_blocks} (the number of blocks of {backbone})"
    return None


def _from_override(name: str, override, default):
    """Turns one `search_space` entry into a Keras Tuner hyperparameter named `name`."""
    if isinstance(override, hp_types.HyperParameter):
        config = override.get_config()
    elif isinstance(override, Mapping):
        config = {**default.get_config(), **override}
        kind = type(default)
        try:
            return kind.from_config({**config, "name": name, "conditions": []})
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"search_space[{name!r}]={dict(override)!r} does not fit the default "
                f"{kind.__name__} hyperparameter {default.get_config()}: {error}"
            ) from error
    elif isinstance(override, (list, tuple)):
        if not override:
            raise ValueError(
                f"search_space[{name!r}] is an empty list: the search space has nothing to "
                f"choose from. Pass at least one value, e.g. search_space={{{name!r}: "
                f"[{default.default!r}]}}, or leave {name!r} out to search its default range."
            )
        if len(override) == 1:
            return hp_types.Fixed(name, override[0])
        return hp_types.Choice(name, list(override), default=override[0])
    elif isinstance(override, (str, bool, numbers.Real)):
        return hp_types.Fixed(name, override)
    else:
        raise ValueError(
            f"search_space[{name!r}] must be a value (fixes it), a list of values (a choice), "
            "a dict of arguments for the default range (e.g. {'max_value': 1e-2}) or a "
            "keras_tuner hyperparameter such as keras_tuner.engine.hyperparameters.Float. "
            f"Received: {override!r}"
        )
    config = {**config, "name": name, "conditions": []}
    return type(override).from_config(config)


class SearchSpace:
    """The hyperparameters of a search and how to declare them on a `HyperParameters`.

    Args:
        backbones: list of str. Backbone names; at least one.
        epochs: int. Epochs per trial (the frozen epochs are counted in them).
        search_space: dict or None. Overrides, by hyperparameter name: a value
            fixes it, a list is a choice, a dict changes the default range's
            arguments, a keras_tuner hyperparameter replaces it.
            `"unfreeze_blocks"` overrides `<backbone>/unfreeze_blocks` of every
            backbone.
        input_shape: tuple or None. Input shape of the backbones (their block
            counts do not depend on it, but building needs one).

    Raises:
        ValueError: for an empty backbone list, an unknown name, an empty
            choice, a value out of range, or a space where nothing varies.
    """

    def __init__(
        self,
        backbones: Sequence[str],
        epochs: int,
        search_space: Mapping | None = None,
        input_shape: tuple | None = None,
    ):
        if isinstance(backbones, str):
            backbones = [backbones]
        backbones = list(backbones)
        if not backbones:
            raise ValueError(
                "`backbones` is empty: the search space has no backbone to search. "
                "Pass at least one name, e.g. backbones=['mobilenet'] (see "
                "transferkit.list_backbones())."
            )
        for backbone in backbones:
            if not isinstance(backbone, str):
                raise ValueError(
                    "A search takes backbones by name (str), since each trial builds its "
                    f"own. Received: {backbone!r}"
                )
        names = [get_backbone_spec(backbone).name for backbone in backbones]
        if len(set(names)) != len(names):
            raise ValueError(f"`backbones` has duplicates. Received: backbones={backbones}")
        search_space = dict(search_space or {})
        if "backbone" in search_space:
            raise ValueError(
                "Choose the backbones with tune(backbones=[...]) rather than "
                f"search_space['backbone']. Received: search_space['backbone']="
                f"{search_space['backbone']!r}"
            )
        self.backbones = names
        self.epochs = epochs
        self.input_shape = input_shape
        self.num_blocks = {name: count_blocks(name, input_shape) for name in names}

        defaults = default_hyperparameters(epochs)
        if input_shape is not None and input_shape[0] == input_shape[1]:
            step = size_step([get_backbone_spec(backbone) for backbone in backbones])
            defaults = {"image_size": image_sizes(input_shape[0], step), **defaults}
        elif search_space.get("image_size") is not None:
            # No size of its own to start from: the listed sizes are the range.
            defaults = {"image_size": hp_types.Fixed("image_size", 224), **defaults}
        for name in names:
            blocks = self.num_blocks[name]
            key = f"{name}/{UNFREEZE_BLOCKS}"
            defaults[key] = hp_types.Int(key, 1, blocks, default=blocks)
        known = ["backbone", *defaults, UNFREEZE_BLOCKS]
        if "image_size" not in known:
            known.insert(1, "image_size")
        unknown = [name for name in search_space if name not in known]
        if unknown:
            raise ValueError(
                f"Unknown hyperparameter(s) {unknown} in search_space. The search space has: "
                f"{known} ('{UNFREEZE_BLOCKS}' sets it for every backbone)."
            )

        self.hyperparameters = {
            "backbone": hp_types.Choice("backbone", names, default=names[0])
            if len(names) > 1
            else hp_types.Fixed("backbone", names[0])
        }
        for name, default in defaults.items():
            override = search_space.get(name)
            if override is None and name.endswith(f"/{UNFREEZE_BLOCKS}"):
                override = search_space.get(UNFREEZE_BLOCKS)
            self.hyperparameters[name] = (
                default if override is None else _from_override(name, override, default)
            )
        self._check_values()
        self._check_something_varies()

    # === Checks ===
    def _check_values(self):
        for name, hyperparameter in self.hyperparameters.items():
            if name == "backbone":
                continue
            blocks = self.num_blocks.get(name.rsplit("/", 1)[0])
            candidates = _bounds(hyperparameter)
            if isinstance(hyperparameter, (hp_types.Int, hp_types.Float, hp_types.Choice)):
                candidates = candidates + [hyperparameter.default]
            for value in candidates:
                problem = _check_value(name, value, self.epochs, blocks)
                if problem:
                    raise ValueError(
                        f"Hyperparameter {name!r} must be {problem}. Received a search space "
                        f"with the value {value!r}: {hyperparameter.get_config()}"
                    )

    def _check_something_varies(self):
        if not any(self.varies(name) for name in self.active_names()):
            fixed = {name: self.hyperparameters[name].default for name in self.active_names()}
            fixed["backbone"] = self.backbones[0]
            raise ValueError(
                "The search space is empty: every hyperparameter has a single value "
                f"({fixed}), so there is nothing to search. Leave at least one hyperparameter "
                "free (drop it from search_space or give it a list of values), or train a "
                "transferkit.FineTuner with these settings directly."
            )

    def varies(self, name: str) -> bool:
        """Whether a hyperparameter can take more than one value."""
        values = possible_values(self.hyperparameters[name])
        return values is None or len(set(values)) > 1

    def _may(self, name: str, wanted) -> bool:
        """Whether hyperparameter `name` can take one of the values `wanted` accepts."""
        values = possible_values(self.hyperparameters[name])
        return values is None or any(wanted(value) for value in values)

    def active_names(self) -> list[str]:
        """The hyperparameters some trial can use (e.g. no width for a fixed linear head)."""
        names = ["backbone", "head_depth", "dropout", "learning_rate", "unfreeze"]
        names += [
            name
            for name in ("image_size", "augmentation_strength", "label_smoothing")
            if name in self.hyperparameters
        ]
        if self._may("head_depth", lambda depth: depth > 0):
            names.append("head_units")
        if self._may("unfreeze", bool):
            names += ["frozen_epochs", "fine_tune_learning_rate", "lowest_block_multiplier"]
            names += [f"{backbone}/{UNFREEZE_BLOCKS}" for backbone in self.backbones]
        return names

    # === Declaring ===
    def declare(self, hp: keras_tuner.HyperParameters) -> dict:
        """Declares every hyperparameter on `hp` (conditional ones in their scopes).

        Returns:
            The active values: `hp.values` restricted to this search space.
        """
        declare = self._declare
        declare(hp, "backbone")
        if "image_size" in self.hyperparameters:
            declare(hp, "image_size")
        declare(hp, "head_depth")
        # head_depth is discrete (checked), so its positive values are known.
        deep = [depth for depth in possible_values(self.hyperparameters["head_depth"]) if depth]
        if deep:
            with hp.conditional_scope("head_depth", deep):
                declare(hp, "head_units")
        declare(hp, "dropout")
        declare(hp, "learning_rate")
        declare(hp, "augmentation_strength")
        declare(hp, "label_smoothing")
        declare(hp, "unfreeze")
        if self._may("unfreeze", bool):
            with hp.conditional_scope("unfreeze", [True]):
                declare(hp, "frozen_epochs")
                declare(hp, "fine_tune_learning_rate")
                declare(hp, "lowest_block_multiplier")
            for backbone in self.backbones:
                self._declare_conditional(
                    hp,
                    f"{backbone}/{UNFREEZE_BLOCKS}",
                    {"unfreeze": [True], "backbone": [backbone]},
                )
        names = set(self.hyperparameters)
        return {name: value for name, value in hp.values.items() if name in names}

    def _declare(self, hp, name):
        config = self.hyperparameters[name].get_config()
        config.pop("conditions")
        return getattr(hp, type(self.hyperparameters[name]).__name__)(**config)

    def _declare_conditional(self, hp, name, parents: dict):
        """Declares `name`, active only when every parent has one of its values.

        These are the conditions `hp.conditional_scope` makes, but two at once:
        KerasTuner refuses to nest a scope whose parent was declared outside
        it (`backbone` and `unfreeze` both are), so the hyperparameter carries
        the conditions itself, in KerasTuner's own config form. Being declared
        in every build, it needs no extra builds to be found.
        """
        definition = self.hyperparameters[name]
        config = definition.get_config()
        config["conditions"] = [
            {"class_name": "Parent", "config": {"name": parent, "values": list(values)}}
            for parent, values in parents.items()
        ]
        definition = type(definition).from_config(config)
        hp.merge([definition], overwrite=False)
        return hp.values.get(name) if hp.is_active(definition) else None

    def summary(self) -> list[dict]:
        """One dict per hyperparameter: name, kind, default, range and meaning."""
        rows = []
        for name, hyperparameter in self.hyperparameters.items():
            config = hyperparameter.get_config()
            config.pop("name")
            config.pop("conditions")
            default = config.pop("default", config.get("value"))
            key = f"<backbone>/{UNFREEZE_BLOCKS}" if name.endswith(UNFREEZE_BLOCKS) else name
            rows.append(
                {
                    "name": name,
                    "kind": type(hyperparameter).__name__,
                    "default": default,
                    "range": config,
                    "meaning": DEFINITIONS[key],
                }
            )
        return rows

    def get_config(self) -> dict:
        """A JSON-friendly description, to tell two search spaces apart."""
        return {
            name: {"kind": type(value).__name__, **value.get_config()}
            for name, value in self.hyperparameters.items()
        }

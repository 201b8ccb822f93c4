"""Classification heads: what sits on top of a backbone's feature map."""

from collections.abc import Sequence

import keras
import numpy as np

from transferkit import defaults

POOLING_MODES = ("auto", "avg", "max", "flatten", "token", "token_and_avg")
# Modes that read a transformer's class token, so they need token outputs.
TOKEN_POOLING_MODES = ("token", "token_and_avg")


@keras.saving.register_keras_serializable(package="transferkit")
class ClassificationHead(keras.layers.Layer):
    """A classification head for a backbone's feature map.

    Pools the feature map, runs an optional stack of dense blocks (dense, then
    optional batch normalization, activation and dropout) and ends in the output
    layer: a single sigmoid unit for two classes, one sigmoid per class for
    multi-label problems, and a softmax otherwise. The output layer computes
    logits; they are divided by the head's `temperature` (a non-trainable
    weight, 1 until `FineTuner.calibrate` fits it) before the sigmoid or
    softmax, so a calibrated model is saved, loaded and exported calibrated.

    The head carries the class names, so a saved model knows what it predicts.
    It is split into `pool()` and `classify()` because pooling has no weights:
    transferkit caches pooled backbone features and trains `classify()` alone
    while the backbone is frozen.

    Args:
        num_classes: int or None. Number of classes. `None` leaves it to the
            `FineTuner`, which fills it in from the data. Defaults to `None`.
        pooling: str. How the backbone's output is reduced to a vector. On a
            feature map `(batch, h, w, c)`: `"avg"`, `"max"` or `"flatten"`. On
            a transformer's tokens `(batch, tokens, dim)`: `"avg"` (the mean
            patch token), `"max"`, `"token"` (the class token) or
            `"token_and_avg"` (both side by side, the DINOv2 linear-probe
            convention). `"auto"` takes the backbone's own default
            (`BackboneSpec.pooling`) when the model is built: `"token"` for ViT
            and DeiT, `"token_and_avg"` for DINOv2 and DINOv3, `"avg"` for the
            rest (every feature map). Defaults to `"auto"`.
        prefix_tokens: int or None. How many tokens come before the patch
            tokens (class, distillation and register tokens); set when the
            model is built. Defaults to `None` (0).
        hidden_units: sequence of int. Units of each dense block between the
            pooling and the output layer; empty for a linear head. Defaults to
            `()`.
        activation: str. Activation of the dense blocks. Defaults to `"relu"`.
        dropout: float. Dropout rate before the output layer and after each
            dense block, in `[0, 1)`. Defaults to `0.2`.
        batch_norm: bool. Whether each dense block has batch normalization.
            Defaults to `False`.
        multi_label: bool. Whether an image may belong to several classes at
            once (independent sigmoids). Defaults to `False`.
        class_names: list of str or None. Names of the classes, in output
            order. Defaults to `None` (the names `"0"`, `"1"`, ...).
        decision_threshold: float or None. For two classes only: the
            probability of the second class from which `FineTuner.predict`
            and `evaluate` predict it (usually set by
            `FineTuner.calibrate(..., threshold_metric=...)`). `None` predicts
            the more probable class (a threshold of 0.5). Defaults to `None`.
        thresholds: list of float or None. For a multi-label head only: one
            decision threshold per class, in output order; an image is
            predicted to show a class where that class's probability reaches
            its threshold. Usually chosen on validation data by `FineTuner.fit`
            (or `FineTuner.choose_thresholds`). `None` uses 0.5 for every
            class. Defaults to `None`.
        label_smoothing: float. Label smoothing of the training loss, in
            `[0, 1)`: the target of each image puts `1 - label_smoothing` (plus
            its share of the rest) on its class and spreads `label_smoothing`
            over all classes. `0` trains on the plain labels. Defaults to `0.0`.
        **kwargs: Base layer keyword arguments, such as `name`.

    Example:

    >>> head = ClassificationHead(num_classes=3, hidden_units=[64], dropout=0.3)
    >>> head(np.zeros((2, 4, 4, 8))).shape
    (2, 3)
    """

    def __init__(
        self,
        num_classes: int | None = None,
        pooling: str = defaults.POOLING,
        hidden_units: Sequence[int] = (),
        activation: str = "relu",
        dropout: float = defaults.DROPOUT,
        batch_norm: bool = False,
        multi_label: bool = False,
        class_names: Sequence[str] | None = None,
        decision_threshold: float | None = None,
        thresholds: Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        prefix_tokens: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(label_smoothing, bool) or not (
            isinstance(label_smoothing, (int, float)) and 0 <= label_smoothing < 1
        ):
            raise ValueError(
                "`label_smoothing` must be a number in [0, 1) (0: plain labels). "
                f"Received: label_smoothing={label_smoothing!r}"
            )
        if pooling not in POOLING_MODES:
            raise ValueError(
                f"`pooling` must be one of {list(POOLING_MODES)}. Received: pooling={pooling!r}"
            )
        hidden_units = [int(units) for units in hidden_units]
        if any(units < 1 for units in hidden_units):
            raise ValueError(
                "`hidden_units` must hold positive integers. "
                f"Received: hidden_units={hidden_units}"
            )
        if not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        if class_names is not None:
            class_names = [str(name) for name in class_names]
            if num_classes is None:
                num_classes = len(class_names)
            if len(class_names) != num_classes:
                raise ValueError(
                    f"`class_names` has {len(class_names)} names but num_classes={num_classes}. "
                    f"Received: class_names={class_names}"
                )
            if len(set(class_names)) != len(class_names):
                raise ValueError(f"`class_names` has duplicates. Received: {class_names}")
        minimum = 1 if multi_label else 2
        if num_classes is not None and int(num_classes) < minimum:
            raise ValueError(
                f"A classifier needs at least {minimum} classes "
                f"({'multi-label' if multi_label else 'single-label'}). "
                f"Received: num_classes={num_classes}"
            )
        if decision_threshold is not None:
            if isinstance(decision_threshold, bool) or not 0 < decision_threshold < 1:
                raise ValueError(
                    "`decision_threshold` must be a probability strictly between 0 and 1, or "
                    f"None. Received: decision_threshold={decision_threshold!r}"
                )
            if multi_label or (num_classes is not None and int(num_classes) != 2):
                raise ValueError(
                    "`decision_threshold` is for a two-class (single-label) head; this one has "
                    f"num_classes={num_classes}, multi_label={multi_label}. Received: "
                    f"decision_threshold={decision_threshold!r}"
                )
            decision_threshold = float(decision_threshold)
        if thresholds is not None:
            thresholds = _check_thresholds(thresholds, num_classes, multi_label)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.pooling = pooling
        self.hidden_units = hidden_units
        self.activation = activation
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)
        self.multi_label = bool(multi_label)
        self.class_names = class_names
        self.decision_threshold = decision_threshold
        self.thresholds = thresholds
        self.label_smoothing = float(label_smoothing)
        self.prefix_tokens = None if prefix_tokens is None else int(prefix_tokens)

        # === Layers ===
        if pooling in ("avg", "auto"):
            self.pooling_layer = keras.layers.GlobalAveragePooling2D(name="pooling")
        elif pooling == "max":
            self.pooling_layer = keras.layers.GlobalMaxPooling2D(name="pooling")
        elif pooling == "flatten":
            self.pooling_layer = keras.layers.Flatten(name="pooling")
        else:
            self.pooling_layer = None  # token pooling: see `pool`
        self.blocks = []
        for index, units in enumerate(hidden_units):
            block = [keras.layers.Dense(units, use_bias=not batch_norm, name=f"dense_{index}")]
            if batch_norm:
                block.append(keras.layers.BatchNormalization(name=f"batch_norm_{index}"))
            block.append(keras.layers.Activation(activation, name=f"activation_{index}"))
            if dropout:
                block.append(keras.layers.Dropout(dropout, name=f"dropout_{index}"))
            self.blocks.append(block)
        self.output_dropout = (
            keras.layers.Dropout(dropout, name="output_dropout")
            if dropout and not hidden_units
            else None
        )
        self.output_layer = None
        if self.num_classes is not None:
            # Logits: the sigmoid or softmax comes after the temperature (`classify`).
            self.output_layer = keras.layers.Dense(
                self.output_units,
                # Mixed precision must not reach the probabilities.
                dtype="float32",
                name="predictions",
            )
        self.temperature = None

    # === Properties ===
    @property
    def uses_sigmoid(self) -> bool:
        """Whether the output layer is sigmoid (binary or multi-label)."""
        return self.multi_label or self.num_classes == 2

    @property
    def output_units(self) -> int:
        """Width of the output layer: 1 for a binary head, else `num_classes`."""
        if self.num_classes == 2 and not self.multi_label:
            return 1
        return self.num_classes

    @property
    def labels(self) -> list[str]:
        """The class names in output order (`"0"`, `"1"`, ... when none were given)."""
        if self.class_names is not None:
            return list(self.class_names)
        return [str(index) for index in range(self.num_classes or 0)]

    def with_classes(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        name: str | None = None,
        multi_label: bool | None = None,
        pooling: str | None = None,
        prefix_tokens: int | None = None,
    ):
        """Returns a fresh head with the same settings for `num_classes` classes.

        Args:
            num_classes: int.
            class_names: sequence of str or None. Defaults to `None`.
            name: str or None. The new layer's name. Defaults to a fresh one.
            multi_label: bool or None. Overrides `multi_label`; `None` keeps
                this head's. Defaults to `None`.
            pooling: str or None. The pooling `"auto"` becomes (the backbone's
                default); a head with another pooling keeps it. Defaults to
                `None`.
            prefix_tokens: int or None. The backbone's prefix tokens, for
                token outputs. Defaults to `None`.
        """
        if self.decision_threshold is not None and num_classes != 2:
            raise ValueError(
                f"This head has decision_threshold={self.decision_threshold}, which is for a "
                f"two-class head; it cannot get {num_classes} classes. Leave "
                "decision_threshold unset (FineTuner.calibrate chooses one for two classes)."
            )
        config = self.get_config()
        config.update(num_classes=num_classes, class_names=class_names)
        if multi_label is not None:
            config["multi_label"] = bool(multi_label)
        if pooling is not None and self.pooling == "auto":
            config["pooling"] = pooling
        if prefix_tokens is not None:
            config["prefix_tokens"] = int(prefix_tokens)
        if self.thresholds is not None and len(self.thresholds) != num_classes:
            config["thresholds"] = None  # chosen for other classes
        config.pop("name", None)
        if name is not None:
            config["name"] = name
        return ClassificationHead.from_config(config)

    # === Forward pass ===
    def pool(self, features):
        """Reduces a feature map `(batch, h, w, c)` or tokens `(batch, tokens, dim)` to vectors."""
        if len(features.shape) == 3:
            return self._pool_tokens(features)
        if self.pooling_layer is None:
            raise ValueError(
                f"pooling={self.pooling!r} reads a transformer's class token, but the backbone "
                f"outputs a feature map of shape {tuple(features.shape)}. Use pooling='avg', "
                "'max' or 'flatten' (or 'auto')."
            )
        return self.pooling_layer(features)

    def _pool_tokens(self, tokens):
        prefix = self.prefix_tokens or 0
        if self.pooling in TOKEN_POOLING_MODES and prefix == 0:
            raise ValueError(
                f"pooling={self.pooling!r} reads the class token, but this backbone's tokens "
                "hold none (Swin has only patch tokens). Use pooling='avg' (or 'auto')."
            )
        patches = tokens[:, prefix:, :]
        if self.pooling == "token":
            return tokens[:, 0, :]
        if self.pooling == "flatten":
            return keras.ops.reshape(patches, (-1, patches.shape[1] * patches.shape[2]))
        if self.pooling == "max":
            return keras.ops.max(patches, axis=1)
        mean = keras.ops.mean(patches, axis=1)
        if self.pooling == "token_and_avg":
            return keras.ops.concatenate([tokens[:, 0, :], mean], axis=-1)
        return mean

    def _pooled_shape(self, input_shape):
        if len(input_shape) != 3:
            return self.pooling_layer.compute_output_shape(input_shape)
        tokens, dim = input_shape[1] - (self.prefix_tokens or 0), input_shape[2]
        if self.pooling == "flatten":
            return (input_shape[0], tokens * dim)
        if self.pooling == "token_and_avg":
            return (input_shape[0], 2 * dim)
        return (input_shape[0], dim)

    def classify(self, pooled, training=None):
        """Maps pooled feature vectors to class probabilities."""
        return self.outputs_from_logits(self.logits(pooled, training=training))

    def logits(self, pooled, training=None):
        """Maps pooled feature vectors to logits: the output layer, before the temperature."""
        x = pooled
        for block in self.blocks:
            for layer in block:
                x = layer(x, training=training)
        if self.output_dropout is not None:
            x = self.output_dropout(x, training=training)
        return self.output_layer(x)

    def outputs_from_logits(self, logits):
        """Divides logits by the temperature, then applies the sigmoid or the softmax."""
        # Logits are float32 (the output layer's dtype), as is the temperature; passing
        # the variable itself keeps a model built on symbolic inputs reading its value.
        scaled = keras.ops.divide(logits, self.temperature)
        if self.uses_sigmoid:
            return keras.ops.sigmoid(scaled)
        return keras.ops.softmax(scaled, axis=-1)

    def build(self, input_shape):
        if self.output_layer is None:
            raise ValueError(
                "The head has no `num_classes` yet. Pass num_classes to ClassificationHead "
                "or let the FineTuner set it from the data."
            )
        if len(input_shape) == 4 and self.pooling_layer is not None:
            self.pooling_layer.build(input_shape)
        shape = self._pooled_shape(input_shape)
        for block in self.blocks:
            for layer in block:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
        self.output_layer.build(shape)
        # Non-trainable: only `FineTuner.calibrate` sets it, on held-out data.
        self.temperature = self.add_weight(
            shape=(),
            initializer="ones",
            trainable=False,
            dtype="float32",
            autocast=False,
            name="temperature",
        )
        self.built = True

    def call(self, features, training=None):
        return self.classify(self.pool(features), training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_units)

    # === Losses and outputs ===
    def default_loss(self) -> "str | keras.losses.Loss":
        """The loss that matches this head's output and integer (or multi-hot) labels.

        With `label_smoothing`, binary cross-entropy with smoothing, or for
        integer labels `SmoothedSparseCategoricalCrossentropy`.
        """
        if self.label_smoothing:
            if self.uses_sigmoid:
                return keras.losses.BinaryCrossentropy(label_smoothing=self.label_smoothing)
            return SmoothedSparseCategoricalCrossentropy(self.label_smoothing)
        if self.uses_sigmoid:
            return "binary_crossentropy"
        return "sparse_categorical_crossentropy"

    def default_metrics(self) -> list:
        """The metrics training reports: accuracy, or for a multi-label head two that suit it.

        A multi-label head's are `binary_accuracy` (over every class of every
        image) and `pr_auc` (the area under each class's precision-recall
        curve, averaged over classes: close to the mean average precision, and
        not flattered by the many easy negatives of rare classes).
        """
        if not self.multi_label:
            return ["accuracy"]
        return [
            keras.metrics.BinaryAccuracy(name="binary_accuracy"),
            keras.metrics.AUC(
                curve="PR", multi_label=True, num_labels=self.num_classes, name="pr_auc"
            ),
        ]

    def probabilities(self, outputs) -> np.ndarray:
        """Turns model outputs into one probability column per class.

        Args:
            outputs: array of shape `(batch, output_units)`, what the model returns.

        Returns:
            A float array of shape `(batch, num_classes)`; for a binary head the
            first column is `1 - p`.
        """
        outputs = np.asarray(outputs, dtype="float32")
        if self.num_classes == 2 and not self.multi_label:
            outputs = outputs.reshape(-1, 1)
            return np.concatenate([1.0 - outputs, outputs], axis=1)
        return outputs

    def predicted_indices(self, probabilities: np.ndarray) -> np.ndarray:
        """The predicted class of each row of `probabilities` (from `probabilities()`).

        The most probable class, or for a two-class head with a
        `decision_threshold`, the second class wherever its probability
        reaches the threshold. A multi-label head predicts a set of classes per
        image (`predicted_mask`); here, its most probable one (what `explain`
        explains by default).
        """
        probabilities = np.asarray(probabilities)
        if self.decision_threshold is not None and probabilities.shape[1] == 2:
            return (probabilities[:, 1] >= self.decision_threshold).astype("int64")
        return probabilities.argmax(axis=1)

    def threshold_array(self) -> np.ndarray:
        """The per-class decision thresholds of a multi-label head (0.5 where unset)."""
        if self.thresholds is None:
            return np.full(self.num_classes, 0.5, dtype="float32")
        return np.asarray(self.thresholds, dtype="float32")

    def predicted_mask(self, probabilities: np.ndarray) -> np.ndarray:
        """For a multi-label head: which classes each image shows, `(N, num_classes)` bool.

        A class is predicted where its probability reaches its threshold
        (`thresholds`, or 0.5).
        """
        return np.asarray(probabilities) >= self.threshold_array()[np.newaxis, :]

    # === Saving ===
    def load_own_variables(self, store):
        # Files saved before the head had a temperature (transferkit 0.1 and later
        # models saved before calibration existed) hold no variable of the head's own:
        # they load uncalibrated, at temperature 1.
        if self.built and len(store.keys()) == 0:
            self.temperature.assign(1.0)
            return
        super().load_own_variables(store)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "pooling": self.pooling,
            "hidden_units": list(self.hidden_units),
            "activation": self.activation,
            "dropout": self.dropout,
            "batch_norm": self.batch_norm,
            "multi_label": self.multi_label,
            "class_names": self.class_names,
            "decision_threshold": self.decision_threshold,
            "thresholds": None if self.thresholds is None else list(self.thresholds),
            "label_smoothing": self.label_smoothing,
            # Written only for token backbones, so earlier configs read the same.
            **({} if self.prefix_tokens is None else {"prefix_tokens": self.prefix_tokens}),
        }


@keras.saving.register_keras_serializable(package="transferkit")
class SmoothedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy with label smoothing, for integer class labels.

    Keras's `SparseCategoricalCrossentropy` has no label smoothing and its
    `CategoricalCrossentropy` wants one-hot labels; this one-hot encodes the
    integer labels and applies Keras's `categorical_crossentropy` with
    `label_smoothing`.

    Args:
        label_smoothing: float. In `[0, 1)`. Defaults to `0.1`.
        name: str. Defaults to `"smoothed_sparse_categorical_crossentropy"`.
        **kwargs: Base `keras.losses.Loss` arguments (`reduction`, `dtype`).
    """

    def __init__(
        self,
        label_smoothing: float = 0.1,
        name: str = "smoothed_sparse_categorical_crossentropy",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        classes = keras.ops.shape(y_pred)[-1]
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        return keras.losses.categorical_crossentropy(
            keras.ops.one_hot(labels, classes), y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def _check_thresholds(thresholds, num_classes, multi_label) -> list[float]:
    """Validates per-class decision thresholds; returns them as a list of float.

    Raises:
        ValueError: for a single-label head, a count other than `num_classes`, or
            a value outside (0, 1).
    """
    if not multi_label:
        raise ValueError(
            "`thresholds` (one per class) are for a multi-label head; a two-class head takes "
            f"decision_threshold=. Received: thresholds={thresholds!r}"
        )
    values = [float(value) for value in thresholds]
    if num_classes is not None and len(values) != int(num_classes):
        raise ValueError(
            f"`thresholds` needs one value per class ({num_classes}). Received "
            f"{len(values)}: thresholds={values}"
        )
    if not all(0 < value < 1 for value in values):
        raise ValueError(
            f"Each threshold must be strictly between 0 and 1. Received: thresholds={values}"
        )
    return values

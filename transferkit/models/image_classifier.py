"""ImageClassifier: raw images in, class probabilities out, a registered Keras model."""

import copy

import keras

from transferkit import defaults
from transferkit.heads import ClassificationHead
from transferkit.layers import BackbonePreprocessing

# Formats only Keras's own export writes, and the options only transferkit's takes.
_KERAS_ONLY_FORMATS = ("tf_saved_model", "openvino")
_EXPORT_OPTIONS = {
    "quantize",
    "representative_data",
    "check",
    "tolerance",
    "overwrite",
    "batch_size",
}


def backbone_input(backbone: keras.Model):
    """The backbone's image input (KerasHub's DINO backbones take a dict of one image input)."""
    inputs = backbone.input
    if isinstance(inputs, dict):
        (inputs,) = inputs.values()
    return inputs


def call_backbone(backbone: keras.Model, images, training=None):
    """Runs the backbone on images, as a dict where its input is one (DINOv2, DINOv3)."""
    if isinstance(backbone.input, dict):
        (name,) = backbone.input
        images = {name: images}
    return backbone(images, training=training)


@keras.saving.register_keras_serializable(package="transferkit")
class ImageClassifier(keras.Model):
    """An image classifier: preprocessing, a backbone and a classification head.

    The model takes raw RGB images (values 0-255, any size, batched), resizes
    them and applies the backbone's own preprocessing, runs the backbone and
    the head. Its parts are attributes (`preprocessor`, `backbone`, `head`) and
    its config holds exactly its constructor's arguments, so
    `keras.saving.load_model` (after `import transferkit`) gives back an
    `ImageClassifier` with the same parts, class names and weights. As in
    KerasHub's tasks, it is a functional model: `summary()`, `predict()` and
    export work as for any Keras model.

    `FineTuner` builds and trains one (`FineTuner.model`); you can also build
    one yourself and train it with Keras's `compile` and `fit`.

    Args:
        backbone: `keras.Model`. The feature extractor, without its top: image
            batches `(batch, height, width, 3)` in, a feature map
            `(batch, h, w, channels)` or a transformer's tokens
            `(batch, tokens, dim)` out.
        head: `ClassificationHead`. With its `num_classes` (and, ideally, its
            `class_names`) set.
        preprocessor: `BackbonePreprocessing` or None. Resizing and scaling of
            raw images for the backbone. `None` uses the backbone's input size
            with no scaling (`mode="none"`). Defaults to `None`.
        finetuner_config: dict or None. The settings of the `FineTuner` that
            trained the model (`FineTuner.get_config()`), kept so that
            `transferkit.load` gives back a FineTuner that fits on with the same
            recipe. Defaults to `None`.
        **kwargs: `keras.Model` keyword arguments, such as `name`.

    Example:

    ```python
    backbone = keras.applications.MobileNet(include_top=False, weights=None,
                                            input_shape=(96, 96, 3))
    classifier = tk.ImageClassifier(
        backbone,
        tk.ClassificationHead(num_classes=3, class_names=["cat", "dog", "bird"]),
        tk.layers.BackbonePreprocessing(image_size=(96, 96), mode="tf"),
    )
    classifier.compile()  # Adam, the head's loss, accuracy
    ```
    """

    def __init__(
        self,
        backbone: keras.Model,
        head: ClassificationHead,
        preprocessor: BackbonePreprocessing | None = None,
        finetuner_config: dict | None = None,
        **kwargs,
    ):
        if not isinstance(backbone, keras.Model):
            raise ValueError(
                f"`backbone` must be a keras.Model (a feature extractor without its top). "
                f"Received: backbone={backbone!r}"
            )
        if not isinstance(head, ClassificationHead):
            raise ValueError(
                f"`head` must be a transferkit.ClassificationHead. Received: head={head!r}"
            )
        if head.num_classes is None:
            raise ValueError(
                "The head has no `num_classes`: pass ClassificationHead(num_classes=...) "
                "(and class_names=...) to ImageClassifier."
            )
        if len(backbone.output_shape) not in (3, 4):
            raise ValueError(
                f"The backbone {backbone.name!r} must output a feature map "
                f"(batch, height, width, channels) or a transformer's tokens (batch, tokens, "
                f"dim); its output shape is {backbone.output_shape}. Build it without its top "
                "and without pooling."
            )
        if preprocessor is None:
            size = tuple(backbone_input(backbone).shape[1:3])
            if None in size:
                raise ValueError(
                    f"The backbone {backbone.name!r} takes images of any size "
                    f"(input shape {backbone.input_shape}): pass a preprocessor with the "
                    "image_size to resize to."
                )
            preprocessor = BackbonePreprocessing(image_size=size, mode="none")
        if not isinstance(preprocessor, BackbonePreprocessing):
            raise ValueError(
                "`preprocessor` must be a transferkit.layers.BackbonePreprocessing or None. "
                f"Received: preprocessor={preprocessor!r}"
            )
        kwargs.setdefault("name", "image_classifier")

        # === Layers ===
        self.preprocessor = preprocessor
        self.backbone = backbone
        self.head = head

        # === Functional Model ===
        inputs = keras.Input(shape=(None, None, 3), name="image")
        outputs = head(call_backbone(backbone, preprocessor(inputs)))
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.finetuner_config = None if finetuner_config is None else dict(finetuner_config)

    # === Properties ===
    @property
    def class_names(self) -> list[str]:
        """The classes the model predicts, in output order."""
        return self.head.labels

    @property
    def image_size(self) -> tuple[int, int]:
        """The (height, width) images are resized to."""
        return tuple(self.preprocessor.image_size)

    def feature_extractor(self) -> keras.Model:
        """Raw images -> pooled backbone features, with the backbone in inference mode.

        Its layers are this model's (shared weights): what it computes is what
        the head sees while the backbone is frozen. The features are float32,
        whatever precision the backbone computes in.
        """
        inputs = keras.Input(shape=(*self.image_size, 3), name="image")
        features = call_backbone(self.backbone, self.preprocessor(inputs), training=False)
        # Features are float32 whatever the backbone computes in: the feature cache's
        # entries and the head's inputs do not depend on the training precision's dtype.
        pooled = keras.ops.cast(self.head.pool(features), "float32")
        return keras.Model(inputs, pooled, name="feature_extractor")

    # === Training ===
    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """Compiles with defaults that suit the head: Adam, its loss, accuracy.

        Args:
            optimizer: `"auto"` (Adam at `1e-4`, a rate for a model whose
                backbone trains) or any Keras optimizer. Defaults to `"auto"`.
            loss: `"auto"` (binary cross-entropy for a sigmoid head, sparse
                categorical cross-entropy otherwise) or any Keras loss.
                Defaults to `"auto"`.
            metrics: `"auto"` (the head's: `["accuracy"]`, or for a
                multi-label head binary accuracy and the precision-recall
                AUC) or a list of Keras metrics.
                Defaults to `"auto"`.
            **kwargs: Further `keras.Model.compile` arguments.
        """
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(defaults.FINE_TUNE_LEARNING_RATE)
        if loss == "auto":
            loss = self.head.default_loss()
        if metrics == "auto":
            metrics = self.head.default_metrics()
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        # Keras skips (and warns about) a saved compile config when `compile` is
        # overridden; this one takes Keras's arguments, so restore it as Keras would.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # === Understanding and shipping the model ===
    def explain(self, images, class_name=None, *, layer=None, batch_size=defaults.BATCH_SIZE):
        """Grad-CAM heat maps of `images` (see `FineTuner.explain`, which forwards here).

        Args:
            images: An `ImageSource` or images in any form `FineTuner.predict`
                accepts.
            class_name: str, list of str or None. The class to explain; `None`
                for each image's predicted class. Defaults to `None`.
            layer: str or None. A backbone layer to read instead of the last
                spatial feature map. Defaults to `None`.
            batch_size: int. Defaults to `32`.

        Returns:
            A `transferkit.interpret.Explanation`.
        """
        from transferkit.data import as_image_source
        from transferkit.interpret.model import explain_images

        source = as_image_source(images, require_labels=False)
        return explain_images(self, source, class_name, layer, batch_size)

    def calibrate(
        self,
        validation_data,
        labels=None,
        *,
        threshold_metric=None,
        batch_size=defaults.BATCH_SIZE,
    ):
        """Fits temperature scaling on held-out images (see `FineTuner.calibrate`).

        Args:
            validation_data: An `ImageSource` or labelled images in any form
                `FineTuner.fit` accepts, of this model's classes.
            labels: array-like or None. Labels for a list of paths or an array.
            threshold_metric: str or None. Also choose a two-class decision
                threshold maximising this metric. Defaults to `None`.
            batch_size: int. Defaults to `32`.

        Returns:
            A `transferkit.interpret.CalibrationResult`.
        """
        from transferkit.data import as_image_source, make_dataset
        from transferkit.evaluation import source_labels
        from transferkit.interpret.model import calibrate_classifier

        source = as_image_source(validation_data, labels, class_names=self.class_names)
        images = make_dataset(source, self.image_size, batch_size, include_labels=False)
        labels = source_labels(self, source, batch_size)
        return calibrate_classifier(self, images, labels, threshold_metric)

    def export(self, filepath, format=defaults.EXPORT_FORMAT, **kwargs):
        """Exports to a SavedModel, LiteRT or ONNX model (see `FineTuner.export`).

        A thin entry point, as Keras's own: the work is
        `transferkit.export.export_model` (raw images in, probabilities and
        class names out, written atomically, checked against this model when
        `check=` is given). Keras's own formats of another name
        (`"tf_saved_model"`, `"openvino"`), asked for without transferkit's
        options, are Keras's `Model.export`, as for any Keras model.

        Args:
            filepath: str or path. A folder for `"saved_model"`, a file ending
                in `.tflite` or `.onnx` for the others.
            format: str. `"saved_model"`, `"litert"` or `"onnx"`. Defaults to
                `"saved_model"`.
            **kwargs: The arguments of `transferkit.export.export_model`:
                `quantize`, `representative_data`, `check`, `tolerance`,
                `overwrite`, `batch_size`.

        Returns:
            With `check`, the parity table (a `pandas.DataFrame`); else None.
        """
        from transferkit.export import export_model

        if format in _KERAS_ONLY_FORMATS and not set(kwargs) & _EXPORT_OPTIONS:
            return super().export(filepath, format=format, **kwargs)
        return export_model(self, filepath, format, **kwargs)

    # === Serialization ===
    def save_own_variables(self, store):
        # Keras saves a model's own variables before its layers': DINOv2's trained
        # position embeddings reach the grid KerasHub saves first.
        from transferkit.backbones.hub import sync_position_grids

        sync_position_grids(self.backbone)
        super().save_own_variables(store)

    def get_config(self):
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "head": keras.saving.serialize_keras_object(self.head),
            "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
            "finetuner_config": self.finetuner_config,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        # Keras's deserialization consumes the dicts it reads: work on a copy.
        config = copy.deepcopy(config)
        for key in ("backbone", "head", "preprocessor"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

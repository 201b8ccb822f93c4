"""Grad-CAM: where in an image the model looked to score a class.

Grad-CAM (Selvaraju et al., 2017) weighs each channel of a convolutional feature
map by the mean gradient of the class's score (its logit) with respect to that
channel, sums the weighted channels and keeps the positive part: the regions
whose features raise the score. Here the feature map is taken inside the
classifier's nested backbone, so the gradient flows through the head as it
runs in the model, pooling and dense blocks included.
"""

import dataclasses

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from transferkit.models.image_classifier import call_backbone
from transferkit.utils.log import logger


def fold_tokens(tokens, prefix_tokens: int, image_size) -> tf.Tensor:
    """Patch tokens `(batch, prefix + h * w, dim)` back onto their grid `(batch, h, w, dim)`.

    The prefix tokens (class, distillation, registers) are dropped; the grid has
    the image's aspect ratio (`h / w` as `height / width`).
    """
    patches = tokens[:, prefix_tokens:, :]
    count = int(patches.shape[1])
    height, width = image_size
    rows = max(1, round((count * height / width) ** 0.5))
    while count % rows:
        rows -= 1
    return tf.reshape(patches, (-1, rows, count // rows, int(patches.shape[2])))


def _spatial(shape) -> bool:
    """Whether a layer output is a feature map with more than one position."""
    if len(shape) != 4:
        return False
    height, width = shape[1], shape[2]
    return height is None or width is None or height * width > 1


def _output(layer):
    try:
        return layer.output
    except (AttributeError, ValueError):  # never called, or called more than once
        return None


def _tail(backbone: keras.Model, tensor) -> keras.Model | None:
    """The part of `backbone` from `tensor` to its output, if every path passes `tensor`."""
    try:
        return keras.Model(tensor, backbone.output)
    except ValueError:  # "not connected to inputs": a branch, other paths bypass it
        return None


def _learned_from(backbone) -> int:
    """Index of the first layer with learned weights (the input's scaling does not count)."""
    for index, layer in enumerate(backbone.layers):
        if layer.weights and not isinstance(layer, keras.layers.Normalization):
            return index
    return len(backbone.layers)


@dataclasses.dataclass(frozen=True)
class FeatureMap:
    """Where Grad-CAM reads a backbone: a layer's output and the rest of the backbone.

    Attributes:
        layer: str. The layer's name (the backbone's name when its output is used
            and its layers are not known).
        shape: tuple. The feature map's shape, `(batch, height, width, channels)`.
        upto: `keras.Model` or None. The backbone from its input to that
            feature map; None when the feature map is the backbone's output.
        tail: `keras.Model` or None. The backbone from that feature map to its
            output; None when the feature map is the backbone's output.
    """

    layer: str
    shape: tuple
    upto: keras.Model | None = None
    tail: keras.Model | None = None


def _inside(backbone, layer, tensor, tail) -> FeatureMap:
    upto = keras.Model(backbone.inputs, tensor, name=f"{backbone.name}_to_{layer}")
    return FeatureMap(layer, tuple(tensor.shape), upto, tail)


def find_feature_map(backbone: keras.Model, layer: str | None = None) -> FeatureMap:
    """Finds the feature map Grad-CAM uses in a backbone: its last spatial one.

    That is the backbone's output (the last convolutional block, the layer the
    Grad-CAM paper recommends: the most semantic features that still have a
    layout) when it has more than one position. When it is a single cell
    (images smaller than the backbone's total stride, or pooling inside the
    backbone), it is the last layer before it that still has a spatial map and
    that every path from the input to the output passes through (in an
    Inception block, the concatenation rather than one branch).

    Args:
        backbone: `keras.Model`. The feature extractor.
        layer: str or None. The name of a layer of `backbone` to use instead.
            Defaults to `None` (found as above).

    Returns:
        A `FeatureMap`.

    Raises:
        ValueError: if the backbone has no spatial feature map (a dense
            backbone, or one whose layers cannot be read), or `layer` is not a
            layer whose output is a feature map every path passes through.
    """
    layers = getattr(backbone, "layers", [])
    has_graph = bool(getattr(backbone, "inputs", None)) and all(
        _output(item) is not None for item in layers[-1:]
    )
    if layer is not None:
        return _named_feature_map(backbone, layer, has_graph)
    output_shape = tuple(backbone.output_shape)
    if len(output_shape) == 3:
        # A transformer's tokens: Grad-CAM folds the patch tokens back onto their grid.
        return FeatureMap(backbone.name, output_shape)
    if _spatial(output_shape):
        name = layers[-1].name if has_graph and layers else backbone.name
        return FeatureMap(name, output_shape)
    if has_graph:
        for candidate in reversed(layers[_learned_from(backbone) : -1]):
            tensor = _output(candidate)
            # A padding layer's map has borders of zeros that are not features.
            if isinstance(candidate, keras.layers.ZeroPadding2D):
                continue
            if tensor is None or not _spatial(tensor.shape):
                continue
            tail = _tail(backbone, tensor)
            if tail is not None:
                return _inside(backbone, candidate.name, tensor, tail)
    raise ValueError(
        f"The backbone {backbone.name!r} has no spatial feature map for Grad-CAM: its output "
        f"has shape {output_shape}, a single position, and "
        + (
            "no layer before it has a feature map with more than one position "
            "(a dense backbone, or pooling before the first convolution). "
            if has_graph
            else "its layers cannot be read (a subclassed model). "
        )
        + "Grad-CAM needs a convolutional feature map: use larger images, or a backbone "
        "that keeps one (build it without global pooling)."
    )


def _named_feature_map(backbone, name, has_graph) -> FeatureMap:
    if not has_graph:
        raise ValueError(
            f"The layers of backbone {backbone.name!r} cannot be read (a subclassed model): "
            f"leave layer=None to use its output. Received: layer={name!r}"
        )
    names = [item.name for item in backbone.layers]
    if name not in names:
        raise ValueError(
            f"The backbone {backbone.name!r} has no layer {name!r}; its last layers are "
            f"{names[-5:]}. Received: layer={name!r}"
        )
    tensor = _output(backbone.get_layer(name))
    if tensor is None or len(tensor.shape) != 4:
        raise ValueError(
            f"Layer {name!r} of {backbone.name!r} does not output a feature map "
            f"(batch, height, width, channels). Received: layer={name!r}"
        )
    if name == names[-1]:
        return FeatureMap(name, tuple(tensor.shape))
    tail = _tail(backbone, tensor)
    if tail is None:
        raise ValueError(
            f"Layer {name!r} of {backbone.name!r} is on one branch: other paths reach the "
            f"output without it, so its gradients tell only part of the story. Choose a "
            f"layer that every path passes through. Received: layer={name!r}"
        )
    return _inside(backbone, name, tensor, tail)


@dataclasses.dataclass
class Explanation:
    """What `FineTuner.explain` returns: a Grad-CAM heat map per image.

    Attributes:
        heatmaps: array `(N, height, width)`, float32 in `[0, 1]`, at the size
            the model sees (`model.image_size`); 1 marks where the explained
            class's score rose most. An all-zero map means no region raised it.
        images: array `(N, height, width, 3)`, uint8: the images resized as
            the model sees them, for overlays (kept small: a quarter of floats).
        predictions: `pandas.DataFrame`. As `FineTuner.predict` returns them,
            with an `explained` column: the class each map explains.
        layer: str. The backbone layer whose feature map was used.
    """

    heatmaps: np.ndarray
    images: np.ndarray
    predictions: pd.DataFrame
    layer: str

    def __len__(self) -> int:
        return len(self.heatmaps)

    def plot(self, path=None, **kwargs):
        """Draws the heat maps over the images: `tk.plots.plot_gradcam(self, path, ...)`."""
        from transferkit.plots import plot_gradcam

        return plot_gradcam(self, path, **kwargs)


class GradCAM:
    """Computes Grad-CAM heat maps for an `ImageClassifier`.

    Args:
        classifier: `ImageClassifier`. Its `preprocessor`, `backbone` and `head`
            are used as they run in the model (inference mode).
        layer: str or None. A backbone layer to read instead of the one
            `find_feature_map` picks. Defaults to `None`.

    Raises:
        ValueError: as `find_feature_map`.
    """

    def __init__(self, classifier, layer: str | None = None):
        self.classifier = classifier
        self.layer = layer
        self.feature_map = find_feature_map(classifier.backbone, layer)
        # One trace per batch shape; the weights are read live, so it stays valid.
        self._compute = tf.function(self._gradcam, reduce_retracing=True)

    def _gradcam(self, images, class_indices):
        classifier = self.classifier
        head = classifier.head
        tail = self.feature_map.tail
        # The feature map is watched: the gradient reaches it even when the backbone is
        # frozen (its variables are then not watched by the tape).
        with tf.GradientTape() as tape:
            inputs = classifier.preprocessor(images)
            if tail is None:
                features = outputs = call_backbone(classifier.backbone, inputs, training=False)
                tape.watch(features)
            else:
                features = self.feature_map.upto(inputs, training=False)
                tape.watch(features)
                outputs = tail(features, training=False)
            logits = head.logits(head.pool(outputs), training=False)
            score = self._score(logits, class_indices)
        gradients = tape.gradient(score, features)
        if len(features.shape) == 3:
            return self._token_heatmap(gradients, features, head.prefix_tokens or 0), logits
        return self._heatmap(gradients, features), logits

    def _token_heatmap(self, gradients, tokens, prefix_tokens):
        # Grad-CAM's channel weights are the mean gradient over positions. Over a
        # transformer's tokens that is the gradient the pooled vector passes down: on the
        # patch tokens for mean pooling, on the class token for class-token pooling
        # (whose patch tokens get none). The weights are the mean over all tokens, and
        # the map weighs the patch tokens, folded back onto their grid.
        gradients = tf.cast(gradients, tf.float32)
        weights = tf.reduce_mean(gradients, axis=1, keepdims=True)[:, :, None, :]
        size = self.classifier.preprocessor.image_size
        features = tf.cast(fold_tokens(tokens, prefix_tokens, size), tf.float32)
        return tf.reduce_sum(weights * features, axis=-1)

    def _score(self, logits, class_indices):
        logits = tf.cast(logits, tf.float32)
        if logits.shape[-1] == 1:
            # One sigmoid logit: the score of the second class. The first class's is its
            # negative, whose map is the negated one (see `__call__`).
            return tf.reduce_sum(logits[:, 0])
        predicted = tf.cast(tf.argmax(logits, axis=-1), tf.int32)
        chosen = tf.where(class_indices >= 0, class_indices, predicted)
        return tf.reduce_sum(tf.gather(logits, chosen, axis=1, batch_dims=1))

    @staticmethod
    def _heatmap(gradients, features):
        gradients = tf.cast(gradients, tf.float32)
        features = tf.cast(features, tf.float32)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        return tf.reduce_sum(weights * features, axis=-1)

    def __call__(self, images, class_indices) -> tuple[np.ndarray, np.ndarray]:
        """Heat maps and logits of one batch.

        Args:
            images: array `(batch, height, width, 3)`, values 0-255.
            class_indices: array `(batch,)` of int. The class to explain in each
                image; -1 for the predicted class.

        Returns:
            `(heatmaps, logits)`: heat maps `(batch, height, width)` at the
            model's image size, each scaled to a maximum of 1 (the raw map's
            positive part), and the model's logits.
        """
        images = tf.convert_to_tensor(images, dtype=tf.float32)
        indices = tf.convert_to_tensor(np.asarray(class_indices, dtype="int32"))
        raw, logits = self._compute(images, indices)
        raw, logits = raw.numpy(), logits.numpy()
        if logits.shape[-1] == 1:
            # For the first class of a sigmoid head the score is -logit.
            # The decision threshold applies to the calibrated probability, as in predict.
            temperature = float(keras.ops.convert_to_numpy(self.classifier.head.temperature))
            positive = 0.5 * (1.0 + np.tanh(logits[:, 0] / (2.0 * temperature)))
            explained = np.asarray(class_indices).copy()
            unknown = explained < 0
            explained[unknown] = self.classifier.head.predicted_indices(
                np.stack([1.0 - positive, positive], axis=1)
            )[unknown]
            raw = np.where(explained[:, None, None] == 1, raw, -raw)
        return _normalize(np.maximum(raw, 0.0), self.classifier.image_size), logits


def _normalize(maps: np.ndarray, size) -> np.ndarray:
    resized = tf.image.resize(maps[..., None], size, method="bilinear").numpy()[..., 0]
    resized = np.maximum(resized, 0.0)
    peaks = resized.reshape(len(resized), -1).max(axis=1)
    scale = np.where(peaks > 0, peaks, 1.0)
    return (resized / scale[:, None, None]).astype("float32")


def explain_batches(gradcam: GradCAM, dataset, class_indices=None):
    """Runs `gradcam` over a dataset of image batches.

    Args:
        gradcam: `GradCAM`.
        dataset: `tf.data.Dataset` of image batches.
        class_indices: None (each image's predicted class), an int (that class
            for every image) or an array with one class index per image.

    Returns:
        `(heatmaps, images, logits)`, numpy arrays over all batches.

    Raises:
        ValueError: if there are no images, or not one class index per image.
    """
    heatmaps, images, logits = [], [], []
    start = 0
    for batch in dataset:
        batch = np.asarray(batch, dtype="float32")
        count = len(batch)
        if class_indices is None or np.ndim(class_indices) == 0:
            fill = -1 if class_indices is None else int(class_indices)
            indices = np.full(count, fill, dtype="int32")
        else:
            indices = np.asarray(class_indices[start : start + count], dtype="int32")
            if len(indices) != count:
                indices = None
        if indices is None:
            break
        maps, batch_logits = gradcam(batch, indices)
        heatmaps.append(maps)
        images.append(np.clip(np.round(batch), 0, 255).astype("uint8"))
        logits.append(batch_logits)
        start += count
    if not heatmaps:
        raise ValueError("There are no images to explain.")
    if np.ndim(class_indices) == 1 and (len(class_indices) != start or indices is None):
        raise ValueError(
            f"`class_name` has {len(class_indices)} names but there are more or fewer images: "
            "pass one name per image, a single name, or None for the predicted classes."
        )
    logger.info(f"Grad-CAM of {start} images at layer {gradcam.feature_map.layer!r}")
    return np.concatenate(heatmaps), np.concatenate(images), np.concatenate(logits)

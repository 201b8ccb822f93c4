"""A SavedModel for TensorFlow Serving: float images or encoded image bytes in."""

from pathlib import Path

import keras
import tensorflow as tf

from transferkit.export.metadata import SAVED_MODEL_METADATA, ExportInfo
from transferkit.export.serving_model import INPUT_NAME, OUTPUT_NAME

# The signature on encoded JPEG/PNG files; `serving_default` takes decoded images.
BYTES_SIGNATURE = "serving_bytes"
BYTES_INPUT_NAME = "image_bytes"
CLASS_NAME_OUTPUT = "class_name"
CLASS_INDEX_OUTPUT = "class_index"
# A multi-label model's: which classes reach their thresholds.
PREDICTED_OUTPUT = "predicted"


def write_saved_model(model: keras.Model, path: Path, info: ExportInfo) -> None:
    """Writes `model` (see `serving_model`) as a SavedModel folder with two signatures.

    - `serving_default`: `images`, float32 `(batch, height, width, 3)`, raw RGB
      values 0-255 of any size;
    - `serving_bytes`: `image_bytes`, a string vector of encoded JPEG, PNG, GIF
      or BMP files of any sizes, decoded and resized inside.

    Both return `probabilities` (float32, one column per class), `class_index`
    (int64) and `class_name` (string), the most probable class. A multi-label
    model returns instead `probabilities`, `predicted` (bool, one column per
    class: the probability reaches the class's threshold, carried inside) and
    `class_name`, the predicted classes joined by commas (empty for none).
    The export description is written to `assets.extra/transferkit.json`.

    Built on Keras's `ExportArchive`, the machinery behind
    `Model.export(format="tf_saved_model")`, which takes one signature only.
    """
    class_names = tf.constant(info.class_names)
    height, width = info.image_size

    thresholds = None if info.thresholds is None else tf.constant(info.thresholds, tf.float32)

    def classify(images):
        probabilities = model(images, training=False)[OUTPUT_NAME]
        if info.multi_label:
            predicted = probabilities >= (0.5 if thresholds is None else thresholds)
            names = tf.broadcast_to(class_names, tf.shape(probabilities))
            chosen = tf.ragged.boolean_mask(names, predicted)
            return {
                OUTPUT_NAME: probabilities,
                PREDICTED_OUTPUT: predicted,
                CLASS_NAME_OUTPUT: tf.strings.reduce_join(chosen, axis=-1, separator=","),
            }
        index = tf.argmax(probabilities, axis=-1)
        return {
            OUTPUT_NAME: probabilities,
            CLASS_INDEX_OUTPUT: index,
            CLASS_NAME_OUTPUT: tf.gather(class_names, index),
        }

    def decode(data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        # As transferkit's input pipeline resizes files: the model then sees the
        # size it expects and does not resize again.
        return tf.image.resize(tf.cast(image, tf.float32), (height, width), method="bilinear")

    def classify_bytes(image_bytes):
        images = tf.map_fn(
            decode,
            image_bytes,
            fn_output_signature=tf.TensorSpec((height, width, 3), tf.float32),
        )
        return classify(images)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        classify,
        input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32, name=INPUT_NAME)],
    )
    archive.add_endpoint(
        BYTES_SIGNATURE,
        classify_bytes,
        input_signature=[tf.TensorSpec((None,), tf.string, name=BYTES_INPUT_NAME)],
    )
    archive.write_out(str(path), verbose=False)
    document = Path(path) / SAVED_MODEL_METADATA
    document.parent.mkdir(parents=True, exist_ok=True)
    document.write_text(info.to_json())

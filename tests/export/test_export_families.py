"""The backbone families with unusual layers, exported to every format with parity checked.

EfficientNet scales and normalizes inside (Rescaling, Normalization) and uses
squeeze-and-excitation with swish; ConvNeXt has LayerScale, grouped (depthwise)
convolutions that Keras runs through XLA, LayerNormalization and exact GELU;
MobileNetV3 has hard-swish and hard-sigmoid; NASNet has Cropping2D, ZeroPadding2D,
separable convolutions and average pooling in its cells. All random (weights=None) at
32x32. MobileNetV3Small is exported whole; the others are cut after their first
stage or cell (every layer type above is before the cut), as converting them whole
takes minutes per format on 2 cores.
"""

import keras
import numpy as np
import pytest
from export_helpers import assert_informative, calibrate, smooth_images

import transferkit as tk
from transferkit.layers import BackbonePreprocessing

pytest.importorskip("tf2onnx", reason="ONNX export comes with transferkit[export]")
pytest.importorskip("onnxruntime", reason="ONNX Runtime comes with transferkit[export]")

SIZE = 32
# family: (Keras application, the layer to cut after or None, preprocessing)
FAMILIES = {
    "efficientnet": ("EfficientNetB0", "block2b_add", "none"),
    "convnext": ("ConvNeXtTiny", "convnext_tiny_stage_1_block_0_identity", "none"),
    "mobilenetv3": ("MobileNetV3Small", None, "none"),
    "nasnet": ("NASNetMobile", "normal_concat_0", "tf"),
}
FORMATS = {"saved_model": "exported", "litert": "exported.tflite", "onnx": "exported.onnx"}


def family_classifier(family):
    application, cut, mode = FAMILIES[family]
    keras.utils.set_random_seed(0)
    backbone = getattr(keras.applications, application)(
        include_top=False, weights=None, input_shape=(SIZE, SIZE, 3)
    )
    if cut is not None:
        backbone = keras.Model(
            backbone.inputs, backbone.get_layer(cut).output, name=f"{family}_start"
        )
    head = tk.ClassificationHead(num_classes=3, class_names=["cat", "dog", "bird"])
    classifier = tk.ImageClassifier(backbone, head, BackbonePreprocessing((SIZE, SIZE), mode))
    calibrate(classifier, smooth_images(16, (SIZE, SIZE), seed=1))
    return classifier


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_format_matches_the_keras_model(family, tmp_path):
    classifier = family_classifier(family)
    finetuner = tk.FineTuner.from_model(classifier)
    images = smooth_images(8, (40, 36), seed=2)
    labels = np.arange(8) % 3
    assert_informative(classifier.head.probabilities(classifier.predict(images, verbose=0)))

    for format, name in FORMATS.items():
        table = finetuner.export(tmp_path / name, format, check=(images, labels))
        row = table.iloc[1]
        assert row["format"] == format
        assert row["max_abs_diff"] <= tk.export.TOLERANCES[None], table
        assert row["agreement"] == 1.0 and row["accuracy"] == table.iloc[0]["accuracy"]

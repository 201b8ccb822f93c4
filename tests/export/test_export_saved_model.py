"""SavedModel for TF Serving, run as TF Serving would: no transferkit, no Keras."""

import numpy as np
import pytest
from export_helpers import assert_informative, keras_probabilities, tiny_classifier
from PIL import Image

import transferkit as tk


@pytest.fixture(scope="module")
def exported(finetuner, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved_model") / "cats"
    finetuner.export(path)  # "saved_model" is the default format
    return path


def test_both_signatures_answer_like_the_keras_model_in_a_clean_process(
    exported, finetuner, images, run_artifact, tmp_path
):
    # Encoded files of different sizes and kinds: the bytes signature decodes and
    # resizes each inside.
    files, decoded = [], []
    for index, (image, kind) in enumerate(zip(images[:3], ["PNG", "JPEG", "PNG"], strict=True)):
        pixels = np.asarray(image, dtype="uint8")
        if index == 2:
            pixels = np.asarray(Image.fromarray(pixels).resize((41, 27)))
        file = tmp_path / f"image_{index}.{kind.lower()}"
        Image.fromarray(pixels).save(file, format=kind)
        files.append(file)
        decoded.append(np.asarray(Image.open(file).convert("RGB"), dtype="float32"))

    outputs = run_artifact("saved_model", exported, images, files)

    assert {"serving_default", "serving_bytes"} <= set(outputs["signatures"])
    expected = keras_probabilities(finetuner.model, images)
    assert_informative(expected)
    assert outputs["probabilities"].shape == (len(images), 3)
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)
    names = np.array(finetuner.class_names)
    assert list(outputs["class_name"]) == list(names[expected.argmax(axis=1)])
    assert list(outputs["class_index"]) == list(expected.argmax(axis=1))
    assert list(outputs["class_names"]) == ["cat", "dog", "bird"]

    # What FineTuner.predict gives for those files, as transferkit reads them.
    from_files = finetuner.predict([str(file) for file in files])
    columns = [f"prob_{name}" for name in finetuner.class_names]
    np.testing.assert_allclose(
        outputs["bytes_probabilities"], from_files[columns].to_numpy(), atol=1e-5
    )
    assert list(outputs["bytes_class_name"]) == list(from_files["label"])
    assert len({image.shape for image in decoded}) == 2  # the files were of two sizes


def test_the_export_describes_itself(exported):
    info = tk.export.read_export_info(exported)
    assert info.format == "saved_model" and info.quantization is None
    assert info.class_names == ["cat", "dog", "bird"]
    assert info.image_size == (16, 16) and info.preprocessing == "tf"
    assert (info.input_name, info.input_dtype, info.output_name) == (
        "images",
        "float32",
        "probabilities",
    )
    assert info.transferkit_version == tk.__version__


def test_a_binary_classifier_returns_one_column_per_class(tmp_path, images, run_artifact):
    classifier = tiny_classifier(num_classes=2)
    finetuner = tk.FineTuner.from_model(classifier)
    finetuner.export(tmp_path / "binary")
    outputs = run_artifact("saved_model", tmp_path / "binary", images)
    expected = keras_probabilities(classifier, images)
    assert outputs["probabilities"].shape == (len(images), 2)
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, atol=1e-6)

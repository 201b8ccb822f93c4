import dataclasses

import keras
import numpy as np
import pytest

from transferkit.backbones import list_backbones, registry
from transferkit.backbones.registry import BACKBONES, BackboneSpec, get_backbone_spec
from transferkit.layers import BackbonePreprocessing

APPLICATION_MODULES = [
    getattr(keras.applications, name)
    for name in dir(keras.applications)
    if name.islower() and not name.startswith("_")
]


def _modules_of(application):
    # The public module named like the one defining the constructor (keras.applications
    # .mobilenet_v3 does not re-export MobileNetV3Small), plus any module exporting it.
    defining = getattr(keras.applications, application).__module__.rsplit(".", 1)[-1]
    modules = [module for module in APPLICATION_MODULES if hasattr(module, application)]
    return modules + [getattr(keras.applications, defining)]


def test_every_keras_application_is_registered():
    applications = {
        name
        for name in dir(keras.applications)
        if name[0].isupper() and callable(getattr(keras.applications, name))
    }
    assert {spec.application for spec in BACKBONES.values()} == applications


def test_names_are_lower_case_applications():
    for name, spec in BACKBONES.items():
        assert name == spec.name == spec.application.lower()
        assert spec.min_size <= spec.default_size


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_preprocessing_mode_matches_application_module(name):
    spec = BACKBONES[name]
    modules = _modules_of(spec.application)
    images = np.random.default_rng(0).uniform(0, 255, size=(2, 9, 11, 3)).astype("float32")
    layer = BackbonePreprocessing(image_size=(9, 11), mode=spec.preprocessing)
    output = keras.ops.convert_to_numpy(layer(images))
    for module in modules:
        expected = module.preprocess_input(images.copy())
        np.testing.assert_allclose(output, expected, atol=1e-4, err_msg=module.__name__)


def test_internal_preprocessing_is_requested_where_keras_offers_it():
    for spec in BACKBONES.values():
        if spec.family in ("efficientnetv2", "convnext", "mobilenetv3"):
            assert dict(spec.extra_kwargs)["include_preprocessing"] is True
            assert spec.preprocessing == "none"


@pytest.mark.parametrize("name", ["ResNet50", "resnet50", "RESNET50", "resnet-50", "resnet_50"])
def test_lookup_ignores_case_and_separators(name):
    assert get_backbone_spec(name) is BACKBONES["resnet50"]


def test_lookup_of_efficientnetv2_with_underscores():
    assert get_backbone_spec("efficientnet_v2_b0").application == "EfficientNetV2B0"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(
        ValueError, match=r"Unknown backbone 'resnet5'\. Did you mean 'resnet50'"
    ) as info:
        get_backbone_spec("resnet5")
    assert "transferkit.list_backbones()" in str(info.value)


def test_unknown_name_without_close_match_points_to_list():
    with pytest.raises(
        ValueError, match=r"Unknown backbone 'vit_b16'\. transferkit\.list_backbones"
    ):
        get_backbone_spec("vit_b16")


def test_name_must_be_a_string():
    with pytest.raises(TypeError, match=r"must be a string.*Received: 50 of type int"):
        get_backbone_spec(50)


def test_spec_rejects_unknown_preprocessing():
    with pytest.raises(ValueError, match=r"Received: preprocessing='bgr'"):
        BackboneSpec("x", "X", "bgr", 224, 32, "custom")


def test_spec_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        BACKBONES["resnet50"].default_size = 32


def test_list_backbones_table():
    table = list_backbones(source="keras.applications")
    assert list(table.columns) == [
        "name",
        "application",
        "input_size",
        "preprocessing",
        "family",
        "source",
        "weights",
    ]
    assert len(table) == len(BACKBONES)
    assert set(table.source) == {"keras.applications"}
    row = table.set_index("name").loc["inceptionv3"]
    assert (row.application, row.input_size, row.preprocessing, row.family) == (
        "InceptionV3",
        299,
        "tf",
        "inception",
    )
    assert table.set_index("name").loc["densenet121", "preprocessing"] == "torch"


def test_list_backbones_with_parameters(monkeypatch):
    subset = {name: BACKBONES[name] for name in ("mobilenetv3small", "vgg16")}
    monkeypatch.setattr(registry, "BACKBONES", subset)
    table = list_backbones(with_parameters=True, source="keras.applications")
    assert list(table.columns)[-1] == "parameters"
    # Counts of the no-top models, as Keras reports them.
    assert dict(zip(table.name, table.parameters, strict=True)) == {
        "mobilenetv3small": 939_120,
        "vgg16": 14_714_688,
    }

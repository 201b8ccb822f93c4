"""Mixed precision: training computes in the policy asked for, everything kept is float32."""

import keras
import numpy as np
import pytest
from test_finetuner import tiny_backbone  # tests/finetuner is on the path

import transferkit as tk
from transferkit.features import FeatureCache
from transferkit.heads import ClassificationHead
from transferkit.precision import (
    Hardware,
    model_precision,
    resolve_precision,
    with_precision,
)
from transferkit.training import RunHook


def tiny_finetuner(**kwargs):
    kwargs.setdefault("seed", 1)
    kwargs.setdefault("head", ClassificationHead(hidden_units=[4], dropout=0.0))
    kwargs.setdefault("schedule", tk.FreezeUnfreeze(frozen_epochs=1))
    return tk.FineTuner(tiny_backbone(), weights=None, **kwargs)


class Seen(RunHook):
    """Records, at each epoch's end, the precision the run's training model computes in."""

    def __init__(self):
        super().__init__()
        self.precisions, self.optimizers, self.batch_norms = [], [], []
        self.models = []

    def on_run_begin(self, run):
        self.run = run

    def on_epoch_end(self, epoch, logs=None):
        self.models.append(self.run.model)
        self.precisions.append(model_precision(self.run.training_model))
        batch_norm = self.run.training_model.backbone.get_layer("block1_bn")
        self.batch_norms.append(type(batch_norm).__name__)
        self.optimizers.append(type(self.model.optimizer).__name__)


def test_an_unknown_precision_is_refused_before_any_training():
    with pytest.raises(ValueError, match=r"`precision` must be one of .*precision='bfloat16'"):
        tk.FineTuner("mobilenet", weights=None, precision="bfloat16")


def test_precision_travels_in_the_config():
    ft = tk.FineTuner("mobilenet", weights=None, precision="auto")
    config = ft.get_config()
    assert config["precision"] == "auto"
    assert tk.FineTuner.from_config(config).precision == "auto"
    assert tk.FineTuner("mobilenet", weights=None).precision == "float32"


BF16_CPU = Hardware(cpu_flags=frozenset({"avx2", "avx512f", "avx512_bf16"}))
PLAIN_CPU = Hardware(cpu_flags=frozenset({"avx2", "avx512f"}))


@pytest.mark.parametrize(
    "hardware, family, expected",
    [
        (BF16_CPU, "resnet", "mixed_bfloat16"),  # measured faster in bfloat16
        (BF16_CPU, "mobilenet", "float32"),  # measured slower: depthwise convolutions
        (BF16_CPU, "convnext", "float32"),  # not measured: never risk a slower run
        (BF16_CPU, None, "float32"),  # a backbone of your own
        (PLAIN_CPU, "resnet", "float32"),  # no native bfloat16
        (Hardware(gpus=((8, 6), (8, 0))), "mobilenet", "mixed_bfloat16"),
        (Hardware(gpus=((7, 5),)), "resnet", "mixed_float16"),
        (Hardware(gpus=((8, 0), (7, 0))), "resnet", "mixed_float16"),
        (Hardware(gpus=((6, 1),)), "resnet", "float32"),
    ],
)
def test_auto_picks_by_hardware_and_backbone_family(hardware, family, expected):
    policy, reason = resolve_precision("auto", family, hardware)
    assert policy == expected and reason
    assert resolve_precision("mixed_float16", family, hardware)[0] == "mixed_float16"


def test_mixed_bfloat16_trains_in_bfloat16_and_keeps_everything_float32(image_folder, tmp_path):
    cache = FeatureCache(max_memory_bytes=2**30)
    ft = tiny_finetuner(precision="mixed_bfloat16", cache_features=cache)
    model = ft.build(["cat", "dog"])
    seen = Seen()
    ft.fit(image_folder(), epochs=2, batch_size=8, verbose=0, callbacks=[seen])

    # Both phases computed in bfloat16, in a training copy; the FineTuner's model stayed the
    # same float32 object throughout the run.
    assert seen.precisions == ["mixed_bfloat16", "mixed_bfloat16"]
    assert all(run_model is model for run_model in seen.models)
    # BatchNorm trained as BFloat16BatchNormalization; the model kept holds Keras's again.
    assert seen.batch_norms == ["BFloat16BatchNormalization"] * 2
    assert type(ft.model.backbone.get_layer("block1_bn")) is keras.layers.BatchNormalization
    assert ft.model is model and model_precision(ft.model) == "float32"
    assert keras.config.dtype_policy().name == "float32"
    assert ft.model.backbone.layers[1].trainable  # the unfrozen phase's flags came back
    assert {w.dtype for w in ft.model.weights} <= {"float32", "int64", "uint32"}
    # The cache holds float32 features, under a key of their own.
    (features, _), *_ = cache._memory.values()
    assert features.dtype == np.float32
    # The head's output, predicted and saved: float32.
    images = np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)).astype("float32")
    assert keras.ops.convert_to_numpy(ft.model(images)).dtype == np.float32
    ft.save(tmp_path / "model.keras")
    loaded = tk.load(tmp_path / "model.keras")
    assert loaded.precision == "mixed_bfloat16"
    assert model_precision(loaded.model) == "float32"
    assert {layer.dtype_policy.name for layer in loaded.model.backbone.layers} == {"float32"}
    np.testing.assert_array_equal(
        loaded.model.predict(images, verbose=0), ft.model.predict(images, verbose=0)
    )


def test_mixed_float16_scales_the_loss_in_both_phases(image_folder):
    ft = tiny_finetuner(precision="mixed_float16", cache_features=FeatureCache())
    seen = Seen()
    ft.fit(image_folder(), epochs=2, batch_size=8, verbose=0, callbacks=[seen])
    assert seen.precisions == ["mixed_float16", "mixed_float16"]
    assert seen.batch_norms == ["BatchNormalization"] * 2  # float16 keeps Keras's casts
    assert seen.optimizers[0] == seen.optimizers[1] == "LossScaleOptimizer"
    assert keras.config.dtype_policy().name == "float32"


def test_features_of_another_precision_are_not_reused(image_folder):
    cache = FeatureCache()
    root = image_folder()
    for precision in ("float32", "mixed_bfloat16"):
        ft = tiny_finetuner(precision=precision, cache_features=cache, schedule=tk.Freeze())
        ft.fit(root, epochs=1, batch_size=8, verbose=0)
    # Training and validation features for each precision.
    assert len(cache._memory) == 4 and cache.hits == 0


def test_a_copy_in_another_precision_computes_alike():
    ft = tiny_finetuner()
    model = ft.build(["cat", "dog"])
    images = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    copy = with_precision(model, "mixed_bfloat16")
    assert model_precision(copy) == "mixed_bfloat16"
    assert copy.head.output_layer.dtype_policy.name == "float32"
    assert keras.config.dtype_policy().name == "float32"
    np.testing.assert_allclose(
        copy.predict(images, verbose=0), model.predict(images, verbose=0), atol=0.05
    )


def test_a_model_trained_in_bfloat16_exports_in_float32(image_folder, tmp_path):
    import tensorflow as tf

    ft = tiny_finetuner(precision="mixed_bfloat16", schedule=tk.Freeze(), cache_features=False)
    ft.fit(image_folder(), epochs=1, batch_size=8, verbose=0)
    ft.export(tmp_path / "exported", format="saved_model")
    serving = tf.saved_model.load(str(tmp_path / "exported")).signatures["serving_default"]
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    outputs = serving(tf.constant(images))
    assert outputs["probabilities"].dtype == tf.float32
    np.testing.assert_allclose(
        outputs["probabilities"].numpy()[:, 1],
        ft.model.predict(images, verbose=0)[:, 0],
        atol=1e-5,
    )


class Crash(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


def test_a_run_in_bfloat16_resumes_from_its_checkpoint_in_bfloat16(image_folder, tmp_path):
    root, checkpoints = image_folder(), tmp_path / "checkpoints"
    ft = tiny_finetuner(precision="mixed_bfloat16", cache_features=FeatureCache())
    with pytest.raises(KeyboardInterrupt):
        ft.fit(
            root,
            epochs=2,
            batch_size=8,
            verbose=0,
            checkpoint_dir=checkpoints,
            callbacks=[Crash()],
        )
    # Interrupted mid-run: the FineTuner's model is float32 again, the policy restored.
    assert model_precision(ft.model) == "float32"
    assert keras.config.dtype_policy().name == "float32"

    resumed = tiny_finetuner(precision="mixed_bfloat16", cache_features=FeatureCache())
    seen = Seen()
    history = resumed.fit(
        root, epochs=2, batch_size=8, verbose=0, checkpoint_dir=checkpoints, callbacks=[seen]
    )
    assert history["epoch"].tolist() == [1, 2] and seen.precisions == ["mixed_bfloat16"]
    assert model_precision(resumed.model) == "float32"

import json

import keras
import numpy as np
import pytest

import transferkit as tk
from transferkit.heads import ClassificationHead


def make_finetuner():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, name="block1_conv")(x)
    x = keras.layers.BatchNormalization(name="block1_bn")(x)
    x = keras.layers.Conv2D(8, 3, name="block2_conv")(x)
    backbone = keras.Model(inputs, x, name="tiny")
    return tk.FineTuner(
        backbone,
        weights=None,
        head=ClassificationHead(dropout=0.0),
        schedule=tk.FreezeUnfreeze(frozen_epochs=2, learning_rate=0.05),
        seed=3,
    )


class Crash(keras.callbacks.Callback):
    """Interrupts the run at the start of an epoch, as a killed process would."""

    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("crash_at", [1, 2, 3])  # inside the frozen phase, at the unfreeze, later
def test_an_interrupted_run_resumes_where_it_stopped(image_folder, tmp_path, crash_at, capfd):
    root = image_folder()
    reference = make_finetuner()
    expected = reference.fit(root, epochs=4, batch_size=8, verbose=0)

    checkpoint = tmp_path / "checkpoint"
    with pytest.raises(KeyboardInterrupt):
        make_finetuner().fit(
            root,
            epochs=4,
            batch_size=8,
            checkpoint_dir=checkpoint,
            callbacks=[Crash(crash_at)],
            verbose=0,
        )
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["epochs_done"] == crash_at
    assert [p.name for p in checkpoint.glob("*.keras")] == [f"model-epoch{crash_at:04d}.keras"]

    resumed = make_finetuner()
    history = resumed.fit(root, epochs=4, batch_size=8, checkpoint_dir=checkpoint, verbose=0)
    assert f"resuming from {checkpoint}: {crash_at}/4 epochs done" in capfd.readouterr().err
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    assert history["phase"].tolist() == ["frozen", "frozen", "unfrozen", "unfrozen"]
    # The learning-rate schedule goes on where it was, inside the phase too.
    np.testing.assert_allclose(history["learning_rate"], expected["learning_rate"], rtol=1e-5)
    images = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    got, want = (
        resumed.model.predict(images, verbose=0),
        reference.model.predict(images, verbose=0),
    )
    if crash_at == 2:
        # Resuming at a phase boundary (a fresh optimizer, a fresh shuffle) replays the run
        # exactly; inside a phase the shuffle order and Adam's moments start afresh.
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert resumed.class_names == ["cat", "dog"]


def test_a_finished_checkpoint_runs_nothing_more(image_folder, tmp_path):
    root = image_folder()
    make_finetuner().fit(root, epochs=2, batch_size=8, checkpoint_dir=tmp_path, verbose=0)
    history = make_finetuner().fit(
        root, epochs=2, batch_size=8, checkpoint_dir=tmp_path, verbose=0
    )
    assert history["epoch"].tolist() == [1, 2]


def test_a_checkpoint_of_other_settings_is_refused(image_folder, tmp_path):
    root = image_folder()
    make_finetuner().fit(root, epochs=2, batch_size=8, checkpoint_dir=tmp_path, verbose=0)
    with pytest.raises(ValueError, match="belongs to a run with epochs=2"):
        make_finetuner().fit(root, epochs=3, batch_size=8, checkpoint_dir=tmp_path, verbose=0)


def test_a_damaged_checkpoint_says_so(tmp_path, image_folder):
    (tmp_path / "state.json").write_text("{broken")
    with pytest.raises(ValueError, match="unreadable"):
        make_finetuner().fit(image_folder(), epochs=2, checkpoint_dir=tmp_path, verbose=0)


def test_early_stopping_ends_only_its_phase(image_folder):
    ft = make_finetuner()
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    schedule = tk.FreezeUnfreeze(frozen_epochs=3, learning_rate=0.05)
    history = ft.fit(
        image_folder(), epochs=6, batch_size=8, callbacks=[stop], schedule=schedule, verbose=0
    )
    # Each phase stops at its second epoch (no improvement of 10.0); the next phase still runs.
    assert history["phase"].tolist() == ["frozen", "frozen", "unfrozen", "unfrozen"]
    assert history["epoch"].tolist() == [1, 2, 4, 5]

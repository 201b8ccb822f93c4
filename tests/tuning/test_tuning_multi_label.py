"""tk.tune on multi-label data and with class_weight="balanced"."""

import numpy as np
import pytest

from transferkit.features import FeatureCache
from transferkit.tuning import tune

TINY = {"backbones": "mobilenet", "weights": None, "input_shape": 32, "batch_size": 8}
HEAD_ONLY = {"unfreeze": False}


def test_a_multi_label_search_optimises_the_precision_recall_auc(tmp_path, capfd):
    rng = np.random.default_rng(0)
    present = rng.random((24, 3)) < 0.5
    images = np.where(present[:, None, None, :], 210.0, 30.0) + rng.normal(0, 10, (24, 8, 8, 3))
    result = tune(
        images,
        present.astype(int),
        epochs=1,
        max_trials=1,
        search_space=HEAD_ONLY,
        cache_features=FeatureCache(),
        directory=tmp_path,
        verbose=0,
        seed=0,
        **TINY,
    )
    assert result.objective == "val_pr_auc"
    assert (result.results["status"] == "COMPLETED").all()
    assert "the objective 'val_accuracy' becomes 'val_pr_auc'" in capfd.readouterr().err
    best = result.best_finetuner()
    assert best.model.head.multi_label and best.model.head.thresholds is not None


def test_balanced_class_weight_in_a_search_refuses_multi_label_data(tmp_path):
    images = np.random.default_rng(0).uniform(0, 255, (8, 8, 8, 3))
    with pytest.raises(ValueError, match="class_weight is for single-label data"):
        tune(
            images,
            np.eye(3)[[0, 1, 2, 0, 1, 2, 0, 1]] + np.eye(3)[[1, 2, 0, 1, 2, 0, 1, 2]],
            class_weight="balanced",
            directory=tmp_path,
            **TINY,
        )

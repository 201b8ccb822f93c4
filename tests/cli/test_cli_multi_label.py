"""The command line on multi-label CSVs: fit, evaluate and predict, run in-process."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from transferkit.cli.main import main

TINY = ["--backbone", "mobilenet", "--weights", "none", "--input-size", "32"]
CLASSES = ["blue", "green", "red"]


def write_mosaics(folder, count, seed=0):
    """PNGs whose colour channels are bright where their class is present; a CSV of them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(count):
        present = rng.random(3) < 0.5
        pixels = np.where(present[[2, 1, 0]], 210, 30) + rng.normal(0, 10, (12, 12, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(folder / f"{index}.png")
        rows.append(
            {"path": f"{index}.png", **dict(zip(CLASSES, present.astype(int), strict=True))}
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_multi_label")
    frame = write_mosaics(root / "data", 24)
    tags = ["|".join(c for c in CLASSES if row[c]) for _, row in frame.iterrows()]
    frame.assign(label=tags)[["path", "label"]].to_csv(root / "data" / "tags.csv", index=False)
    frame.to_csv(root / "data" / "columns.csv", index=False)
    status = main(
        [
            "fit",
            str(root / "data" / "tags.csv"),
            "--out",
            str(root / "run"),
            "--label-delimiter",
            "|",
            *TINY,
            "--epochs",
            "1",
            "--batch-size",
            "8",
        ]
    )
    return root, status


def test_fit_writes_multi_label_metrics_and_thresholds(run, capsys):
    root, status = run
    assert status == 0
    metrics = json.loads((root / "run" / "metrics.json").read_text())
    for key in ("micro_f1", "macro_f1", "mean_average_precision"):
        assert 0 <= metrics[key] <= 1
    assert set(metrics["per_class"]) == set(CLASSES)
    assert "threshold" in metrics["per_class"]["red"]
    predictions = pd.read_csv(root / "run" / "predictions.csv", keep_default_na=False)
    assert {"labels", "true_labels", "prob_red"} <= set(predictions.columns)
    assert not (root / "run" / "confusion_matrix.png").exists()
    assert (root / "run" / "top_losses.png").exists()  # Grad-CAM of each image's top class
    run_json = json.loads((root / "run" / "run.json").read_text())
    assert run_json["metric_to_watch"]["metric"] == "macro F1 and mean average precision"
    report = (root / "run" / "report.html").read_text()
    assert "Metric to watch" in report and "mean average precision" in report


def test_evaluate_on_a_csv_of_0_1_columns_and_predict(run, capsys):
    root, _ = run
    model = root / "run" / "model.keras"
    capsys.readouterr()
    status = main(
        [
            "evaluate",
            str(model),
            str(root / "data" / "columns.csv"),
            "--label-column",
            "blue,green,red",
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "mean average precision" in out and "per class" in out
    status = main(
        ["predict", str(model), str(root / "data" / "0.png"), str(root / "data" / "1.png")]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "prob_red" in out
    # Each class's threshold, the rule the labels column follows.
    thresholds = json.loads((root / "run" / "metrics.json").read_text())["per_class"]
    shown = ", ".join(f"{name} {thresholds[name]['threshold']:.3f}" for name in CLASSES)
    assert f"Thresholds per class (chosen on validation images by fit): {shown};" in out
    status = main(["predict", str(model), str(root / "data"), "--csv", str(root / "p.csv")])
    assert status == 0
    assert f"Thresholds per class (chosen on validation images by fit): {shown};" in (
        capsys.readouterr().err
    )


def test_class_weight_on_multi_label_data_is_one_error_line(run, capsys):
    root, _ = run
    status = main(
        [
            "fit",
            str(root / "data" / "columns.csv"),
            "--label-column",
            "blue,green,red",
            "--class-weight",
            "balanced",
            "--out",
            str(root / "weighted"),
            *TINY,
        ]
    )
    assert status == 1
    assert "class_weight is for single-label data" in capsys.readouterr().err

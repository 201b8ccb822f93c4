"""A multi-label class with no image in the evaluated data: undefined, and left out."""

import math

import numpy as np
import pytest

from transferkit.evaluation.multi_label import multi_label_report

CLASSES = ["cat", "dog", "unicorn"]


def _report():
    # Six images; no unicorn among them, yet the model predicts one for image 0.
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    predicted = np.array([[1, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]])
    probabilities = np.where(predicted, 0.8, 0.2)
    return multi_label_report(
        probabilities, truth, CLASSES, None, predicted.astype(bool), np.full(3, 0.5)
    )


def test_a_class_without_images_has_undefined_precision_recall_and_f1():
    per_class = _report().per_class
    assert per_class.loc["unicorn", "support"] == 0
    for column in ("precision", "recall", "f1", "average_precision"):
        assert math.isnan(per_class.loc["unicorn", column]), column
        assert not per_class.loc[["cat", "dog"], column].isna().any(), column


def test_every_macro_mean_leaves_it_out_and_the_report_names_it():
    report = _report()
    metrics, per_class = report.metrics, report.per_class
    kept = per_class.loc[["cat", "dog"]]
    # cat: 2 of 3 found, 2 of 3 predicted right; dog: 2 of 3 found, 2 of 2 right.
    assert kept["recall"].tolist() == pytest.approx([2 / 3, 2 / 3])
    assert kept["precision"].tolist() == pytest.approx([2 / 3, 1.0])
    assert metrics["macro_precision"] == pytest.approx(kept["precision"].mean())
    assert metrics["macro_recall"] == pytest.approx(kept["recall"].mean())
    assert metrics["macro_f1"] == pytest.approx(kept["f1"].mean())
    assert metrics["mean_average_precision"] == pytest.approx(kept["average_precision"].mean())
    assert metrics["classes_without_images"] == 1
    assert metrics["classes_left_out"] == ["unicorn"]
    # The micro figures still count the unicorn predicted where there is none.
    assert metrics["micro_precision"] == pytest.approx(4 / 6)


def test_the_command_line_and_the_run_report_name_the_class(tmp_path):
    import json

    from transferkit.cli.outputs import format_report, report_dict
    from transferkit.report import render_report

    report = _report()
    text = format_report(report)
    assert "No image of unicorn in these images: undefined (NaN) precision, recall" in text
    (tmp_path / "history.csv").write_text("epoch,loss,val_loss\n1,0.7,0.69\n")
    data = report_dict(report)
    (tmp_path / "metrics.json").write_text(json.dumps(data))
    html = " ".join(render_report(tmp_path).split())
    assert "No image of unicorn in the evaluated data: its precision, recall, F1" in html

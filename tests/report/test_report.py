"""The run report: written by `transferkit fit`, rendered in a real browser, rebuilt on demand."""

import ast
import json
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest

import transferkit as tk
from transferkit.cli import main

TINY = ["--backbone", "mobilenet", "--weights", "none", "--input-size", "32"]
SECTIONS = [
    "settings",
    "phases",
    "history",
    "metrics",
    "per-class",
    "confusion",
    "top-losses",
    "calibration",
    "tensorboard",
    "files",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory, write_class_folder):
    root = tmp_path_factory.mktemp("report")
    data = write_class_folder(root / "data", per_class=8)
    out = root / "run"
    arguments = ["fit", str(data), "--out", str(out), *TINY, "--epochs", "2", "--batch-size", "8"]
    assert main(arguments) == 0
    return out


def test_fit_writes_the_report_and_what_it_reads(run):
    names = {path.name for path in run.iterdir()}
    assert set(tk.report.DETAIL_FILES) | {"report.html", "logs"} <= names
    summary = json.loads((run / "run.json").read_text())
    assert [phase["name"] for phase in summary["phases"]] == ["frozen", "unfrozen"]
    assert summary["calibration"] == {"temperature": 1.0, "decision_threshold": None}
    assert summary["settings"]["backbone"] == "mobilenet"
    from transferkit.cli import fit

    assert set(tk.report.DETAIL_FILES) | {tk.report.REPORT_FILE, tk.report.LOG_FOLDER} <= set(
        fit.OUTPUTS
    )


def test_the_report_renders_in_a_browser_with_every_image(run, render):
    page, console = render(run / "report.html")
    assert page.sections == SECTIONS
    assert page.headings[:3] == ["Settings", "Phases", "History"]
    # History, confusion matrix, top losses with Grad-CAM, reliability diagram.
    assert len(page.images) == 4
    assert all(image["src"].startswith("data:image/png;base64,") for image in page.images)
    assert [image.get("data-loaded") for image in page.images] == ["yes"] * 4
    assert page.body.get("data-images") == "4" and page.body.get("data-images-broken") == "0"
    assert all("src" not in script for script in page.scripts) and not page.links
    assert console == []


@pytest.fixture(scope="module")
def multi_label_run(tmp_path_factory):
    """A multi-label fit on a CSV of tags (several colours, or none, per image)."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("report_multi_label")
    rng = np.random.default_rng(0)
    rows = []
    for index in range(30):
        present = rng.random(3) < 0.5  # red, green, blue channels bright where present
        pixels = np.where(present, 210, 30) + rng.normal(0, 10, (12, 12, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(root / f"{index}.png")
        names = ("red", "green", "blue")
        tags = "|".join(name for name, on in zip(names, present, strict=True) if on)
        rows.append(f"{index}.png,{tags}")
    (root / "tags.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    out = root / "run"
    arguments = ["fit", str(root / "tags.csv"), "--out", str(out), "--label-delimiter", "|"]
    assert main([*arguments, *TINY, "--epochs", "2", "--batch-size", "8"]) == 0
    return out


def test_a_multi_label_report_shows_what_the_model_does(multi_label_run, render):
    summary = json.loads((multi_label_run / "run.json").read_text())
    thresholds = summary["calibration"]["thresholds"]
    assert len(thresholds) == 3 and summary["settings"]["head"]["config"]["multi_label"]
    page, console = render(multi_label_run / "report.html")
    assert console == [] and page.body.get("data-images-broken") == "0"
    assert page.sections == SECTIONS
    # The per-class thresholds in use, not the single-label "most probable class".
    calibration = page.text["calibration"]
    assert "most probable class" not in calibration
    shown = ", ".join(
        f"{name} {value:.3f}"
        for name, value in zip(summary["class_names"], thresholds, strict=True)
    )
    assert "Decision thresholds, one per class" in calibration and shown in calibration
    # No reliability diagram is expected of a multi-label run: a note, not a warning.
    assert "A multi-label model has no reliability diagram" in calibration
    assert "missing" not in page.classes["calibration"]
    # The head as trained.
    assert "multi_label=True" in page.text["settings"]
    assert "multi_label=False" not in page.text["settings"]
    # The phases end on the multi-label validation metric, with a value.
    phases = page.text["phases"]
    assert "last val_pr_auc" in phases and "val_accuracy" not in phases
    assert re.search(r"head only \(backbone frozen\) [\d.]+ [\d.]+ 0\.\d+", phases), phases


def test_tensorboard_shows_one_run_with_the_phases_marked(run):
    import tensorflow as tf

    scalars, texts = {}, {}
    for events in sorted((run / "logs" / "train").glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                number = tf.make_ndarray(value.tensor)
                target = texts if value.tag == "phase" else scalars
                target.setdefault(value.tag, {})[event.step] = number
    assert sorted(scalars["epoch_loss"]) == [0, 1]  # one continuous run across phases
    assert {step: int(value) for step, value in scalars["epoch_phase"].items()} == {0: 0, 1: 1}
    assert sorted(texts["phase"]) == [0, 1]
    assert b"unfrozen" in texts["phase"][1].item()
    assert (run / "logs" / "validation").is_dir()


def test_the_report_command_rebuilds_it(run, render, capsys, tmp_path):
    (run / "report.html").unlink()
    (run / "reliability.png").rename(tmp_path / "kept.png")  # drawn again from its CSV
    try:
        assert main(["report", str(run)]) == 0
        assert "Wrote" in capsys.readouterr().out
        page, console = render(run / "report.html")
        assert page.sections == SECTIONS and console == []
        assert [image.get("data-loaded") for image in page.images] == ["yes"] * 4
    finally:
        (tmp_path / "kept.png").rename(run / "reliability.png")
    assert main(["report", str(run), "--out", str(tmp_path / "elsewhere.html")]) == 0
    assert (tmp_path / "elsewhere.html").stat().st_size > 10_000


def test_report_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "history.csv").write_text("epoch,loss\n1,0.5\n")
    assert main(["report", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "is not a run folder: it has no metrics.json" in error
    assert "transferkit fit --out RUN_DIR" in error
    with pytest.raises(tk.report.NotARunFolderError, match="is not a folder"):
        tk.report.write_report(tmp_path / "missing")


def test_a_minimal_run_folder_still_renders(tmp_path, render):
    # Only the two files a run folder must have: every section says what is missing.
    (tmp_path / "history.csv").write_text(
        "epoch,phase,learning_rate,loss,accuracy,val_loss,val_accuracy,seconds\n"
        "1,frozen,0.01,0.7,0.5,0.69,0.5,3.0\n2,unfrozen,0.0001,0.6,0.6,0.65,0.6,5.0\n"
    )
    (tmp_path / "metrics.json").write_text(json.dumps({"accuracy": 0.6, "num_images": 10}))
    page, console = render(tk.report.write_report(tmp_path))
    assert page.sections == SECTIONS and console == []
    assert len(page.images) == 1  # the history, drawn from history.csv


def test_the_templates_ship_with_the_package():
    # Python 3.10 has no tomllib: the one line is read as text.
    root = Path(__file__).parents[2]
    text = (root / "pyproject.toml").read_text()
    line = re.search(r'^"transferkit\.report" = (\[.*\])$', text, flags=re.M)
    assert line, "pyproject.toml must list the report's templates under package-data"
    patterns = ast.literal_eval(line.group(1))
    templates = root / "transferkit" / "report"
    files = [p.relative_to(templates).as_posix() for p in (templates / "templates").iterdir()]
    assert files and all(any(fnmatch(name, pattern) for pattern in patterns) for name in files)
    assert '"jinja2>=' in text


def test_the_report_command_has_help_with_an_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: transferkit report") and "transferkit report runs/cats" in text


def test_top_losses_of_images_held_in_memory(tmp_path, capfd):
    import keras
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (12, 16, 16, 3)).astype("float32")
    labels = np.array(["cat", "dog"] * 6)
    inputs = keras.Input((16, 16, 3))
    backbone = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="conv")(inputs), name="tiny")
    ft = tk.FineTuner(backbone, weights=None, schedule="freeze", seed=0)
    ft.fit(images, labels, epochs=1, batch_size=4, verbose=0)
    report = ft.evaluate(images, labels)
    written = tk.report.write_run_details(tmp_path, ft, report, images=images, top_losses=3)
    assert "top_losses.png" in written
    assert len(pd.read_csv(tmp_path / "top_losses.csv")) == 3
    written = tk.report.write_run_details(tmp_path, ft, report)  # no way to see the images
    assert "top_losses.png" not in written and not (tmp_path / "top_losses.png").exists()
    assert "no images to draw them from" in capfd.readouterr().err

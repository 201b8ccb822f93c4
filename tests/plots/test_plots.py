"""Behaviour of transferkit.plots: what each figure shows, how it is saved, what it rejects."""

import matplotlib.colors
import matplotlib.figure
import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle
from PIL import Image

from transferkit import plots

RED = matplotlib.colors.to_rgba("#c62828")
GREEN = matplotlib.colors.to_rgba("#2e7d32")


# === Inputs, built by hand ===
def history_frame(with_validation=True):
    rows = []
    for epoch in range(1, 7):
        frozen = epoch <= 2
        row = {
            "epoch": epoch,
            "phase": "frozen" if frozen else "unfrozen",
            "learning_rate": 1e-3 if frozen else 1e-5,
            "loss": 1.0 / epoch,
            "accuracy": 0.5 + 0.05 * epoch,
            "seconds": 1.0,
        }
        if with_validation:
            # Best validation accuracy at epoch 4, lowest validation loss at epoch 5.
            row["val_loss"] = [0.9, 0.7, 0.6, 0.5, 0.45, 0.48][epoch - 1]
            row["val_accuracy"] = [0.6, 0.7, 0.75, 0.8, 0.78, 0.77][epoch - 1]
        rows.append(row)
    return pd.DataFrame(rows)


def confusion_frame(matrix=((54, 3), (2, 25)), names=("cat", "dog")):
    return pd.DataFrame(
        np.array(matrix),
        index=pd.Index(list(names), name="true"),
        columns=pd.Index(list(names), name="predicted"),
    )


def predictions_frame(with_truth=True):
    # Rows 1 and 3 are wrong; row 3 is the more confident mistake.
    frame = pd.DataFrame(
        {
            "label": ["cat", "cat", "dog", "dog", "cat"],
            "probability": [0.9, 0.7, 0.8, 0.95, 0.6],
        }
    )
    frame["prob_cat"] = np.where(
        frame["label"] == "cat", frame["probability"], 1 - frame["probability"]
    )
    frame["prob_dog"] = 1 - frame["prob_cat"]
    if with_truth:
        frame.insert(0, "true_label", ["cat", "dog", "dog", "cat", "cat"])
    return frame


def synthetic_images(count=5, size=32):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, size, size, 3), dtype="uint8")


def lr_find_frame():
    learning_rate = np.geomspace(1e-6, 1.0, 60)
    position = np.log10(learning_rate)
    # Flat, falls to a minimum near 1e-2, then explodes.
    loss = (
        2.0
        - 1.5 / (1 + np.exp(-(position + 3.5) * 2))
        + np.where(position > -1.5, 40.0 * (position + 1.5) ** 2, 0)
    )
    smoothed = pd.Series(loss).ewm(alpha=0.3).mean().to_numpy()
    return pd.DataFrame({"learning_rate": learning_rate, "loss": loss, "smoothed_loss": smoothed})


def search_frame(trials=8):
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "trial_id": [f"{index:02d}" for index in range(trials)],
            "learning_rate": 10 ** rng.uniform(-5, -2, trials),
            "dropout": np.linspace(0.05, 0.5, trials),
            "dense_units": [0, 128, 256, 0, 128, 256, 0, 128][:trials],
            "pooling_constant": [1.0] * trials,
            "backbone": ["mobilenet"] * trials,
            "val_accuracy": [0.7, 0.8, 0.75, np.nan, 0.85, 0.6, 0.82, 0.84][:trials],
            "val_loss": np.linspace(0.8, 0.4, trials),
            "seconds": np.full(trials, 12.0),
        }
    )


def vertical_lines(ax):
    return sorted(
        line.get_xdata()[0]
        for line in ax.lines
        if len(line.get_xdata()) == 2 and line.get_xdata()[0] == line.get_xdata()[1]
    )


def legend_labels(ax):
    return [text.get_text() for text in ax.get_legend().get_texts()]


# === plot_history ===
def test_history_has_loss_accuracy_and_learning_rate_panels():
    figure = plots.plot_history(history_frame())
    assert isinstance(figure, matplotlib.figure.Figure)
    axes = figure.axes
    assert [ax.get_ylabel() for ax in axes] == ["loss", "accuracy", "learning rate"]
    assert axes[-1].get_xlabel() == "epoch"
    loss_lines = {line.get_label(): line for line in axes[0].lines}
    np.testing.assert_allclose(loss_lines["train"].get_xdata(), np.arange(1, 7))
    np.testing.assert_allclose(loss_lines["validation"].get_ydata(), history_frame()["val_loss"])
    # 1e-3 to 1e-5 spans two decades: the learning rate is drawn on a log scale.
    assert axes[2].get_yscale() == "log"


def test_history_marks_where_each_phase_starts():
    figure = plots.plot_history(history_frame())
    for ax in figure.axes:
        # The unfrozen phase starts at epoch 3: a boundary half-way between epochs 2 and 3.
        assert vertical_lines(ax) == [2.5]
        spans = [patch for patch in ax.patches if isinstance(patch, Rectangle)]
        assert [(span.get_x(), span.get_x() + span.get_width()) for span in spans] == [
            (0.5, 2.5),
            (2.5, 6.5),
        ]
    labels = {text.get_text(): text.xy[0] for text in figure.axes[0].texts}
    assert labels == {"frozen": 0.5, "unfrozen": 2.5}


def test_history_stars_the_best_validation_epoch():
    figure = plots.plot_history(history_frame())
    loss_ax, accuracy_ax = figure.axes[:2]
    assert "best validation 0.45 (epoch 5)" in legend_labels(loss_ax)
    assert "best validation 0.8 (epoch 4)" in legend_labels(accuracy_ax)


def test_history_without_validation_or_learning_rate_leaves_those_out():
    history = history_frame(with_validation=False).drop(columns=["learning_rate"])
    figure = plots.plot_history(history)
    assert [ax.get_ylabel() for ax in figure.axes] == ["loss", "accuracy"]
    assert legend_labels(figure.axes[0]) == ["train"]


def test_history_with_validation_never_measured_shows_train_only():
    history = history_frame()
    history[["val_loss", "val_accuracy"]] = np.nan
    figure = plots.plot_history(history)
    assert legend_labels(figure.axes[0]) == ["train"]


def test_history_without_accuracy_or_phase_is_one_loss_panel():
    history = history_frame().drop(columns=["accuracy", "val_accuracy", "phase"])
    history["learning_rate"] = None  # a run whose optimizer had no readable rate
    figure = plots.plot_history(history)
    assert [ax.get_ylabel() for ax in figure.axes] == ["loss"]
    assert len(figure.axes[0].texts) == 0 and vertical_lines(figure.axes[0]) == []


def test_history_restarting_epochs_are_plotted_in_row_order():
    history = pd.concat([history_frame(), history_frame()], ignore_index=True)
    figure = plots.plot_history(history)
    train = next(line for line in figure.axes[0].lines if line.get_label() == "train")
    np.testing.assert_allclose(train.get_xdata(), np.arange(1, 13))


def test_history_errors_name_the_missing_column_and_those_present():
    with pytest.raises(
        ValueError, match=r"no column 'loss'\. Columns present: \['epoch', 'phase'"
    ):
        plots.plot_history(history_frame().drop(columns=["loss"]))
    with pytest.raises(ValueError, match="no rows"):
        plots.plot_history(history_frame().iloc[:0])
    with pytest.raises(
        TypeError, match="must be a pandas DataFrame.*Received: history of type dict"
    ):
        plots.plot_history({"epoch": [1], "loss": [0.5]})


# === plot_confusion_matrix ===
def cell_texts(ax):
    return {
        (round(text.get_position()[1]), round(text.get_position()[0])): text.get_text()
        for text in ax.texts
    }


def test_confusion_matrix_writes_the_count_in_each_cell():
    figure = plots.plot_confusion_matrix(confusion_frame())
    ax, colorbar = figure.axes
    assert cell_texts(ax) == {(0, 0): "54", (0, 1): "3", (1, 0): "2", (1, 1): "25"}
    assert [label.get_text() for label in ax.get_xticklabels()] == ["cat", "dog"]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["cat", "dog"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    assert "accuracy 0.940 on 84 images" in ax.get_title()
    assert colorbar.get_ylabel() == "images"
    # Dark cells get white text.
    colours = {text.get_text(): text.get_color() for text in ax.texts}
    assert colours["54"] == "white" and colours["3"] == "black"


def test_normalized_confusion_matrix_shows_shares_and_counts():
    figure = plots.plot_confusion_matrix(confusion_frame(((9, 1), (0, 0))), normalize=True)
    ax = figure.axes[0]
    # A class with no images gets zeros rather than NaN.
    assert cell_texts(ax) == {(0, 0): "0.90\n(9)", (0, 1): "0.10\n(1)", (1, 0): "0", (1, 1): "0"}
    np.testing.assert_allclose(ax.images[0].get_array(), [[0.9, 0.1], [0.0, 0.0]])
    assert figure.axes[1].get_ylabel() == "share of the true class"


def test_confusion_matrix_stays_readable_with_twenty_classes():
    names = [f"class_{index}" for index in range(20)]
    matrix = np.eye(20, dtype=int) * 30 + 1
    figure = plots.plot_confusion_matrix(confusion_frame(matrix, names))
    ax = figure.axes[0]
    assert len(ax.texts) == 400
    assert min(text.get_fontsize() for text in ax.texts) >= 7
    assert figure.get_figwidth() >= 10
    assert ax.get_xticklabels()[0].get_rotation() == 45


def test_confusion_matrix_rejects_what_is_not_counts():
    with pytest.raises(ValueError, match="non-negative whole counts"):
        plots.plot_confusion_matrix(confusion_frame(((3, -1), (0, 2))))
    with pytest.raises(ValueError, match="non-negative whole counts"):
        plots.plot_confusion_matrix(pd.DataFrame({"cat": ["a", "b"], "dog": [1, 2]}))
    with pytest.raises(ValueError, match="no rows"):
        plots.plot_confusion_matrix(pd.DataFrame())


# === plot_predictions ===
def test_predictions_show_the_most_confident_mistake_first_in_red():
    figure = plots.plot_predictions(synthetic_images(), predictions_frame())
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == [
        "dog (0.95)\ntrue: cat",
        "cat (0.70)\ntrue: dog",
        "cat (0.90)\ntrue: cat",
        "dog (0.80)\ntrue: dog",
        "cat (0.60)\ntrue: cat",
    ]
    first = figure.axes[0]
    assert matplotlib.colors.to_rgba(first.title.get_color()) == RED
    assert matplotlib.colors.to_rgba(first.spines["left"].get_edgecolor()) == RED
    assert matplotlib.colors.to_rgba(figure.axes[2].title.get_color()) == GREEN
    # The image drawn first is the one of row 3.
    np.testing.assert_array_equal(first.images[0].get_array(), synthetic_images()[3])
    assert "2 wrong in all" in figure.get_suptitle()


def test_predictions_in_their_own_order_without_wrong_first_or_truth():
    figure = plots.plot_predictions(synthetic_images(), predictions_frame(), wrong_first=False)
    assert [ax.get_title().split("\n")[0] for ax in figure.axes][:2] == [
        "cat (0.90)",
        "cat (0.70)",
    ]
    figure = plots.plot_predictions(synthetic_images(), predictions_frame(with_truth=False))
    assert [ax.get_title() for ax in figure.axes][0] == "cat (0.90)"
    assert all(ax.title.get_color() == "black" for ax in figure.axes)


def test_predictions_grid_respects_max_images_and_columns():
    figure = plots.plot_predictions(
        synthetic_images(), predictions_frame(), max_images=3, columns=2
    )
    assert len(figure.axes) == 3
    geometry = figure.axes[0].get_subplotspec().get_gridspec().get_geometry()
    assert geometry == (2, 2)
    assert figure.get_suptitle().startswith("3 of 5 predictions")


def test_small_images_are_upscaled_with_square_pixels():
    small = plots.plot_predictions(synthetic_images(size=32), predictions_frame())
    assert small.axes[0].images[0].get_interpolation() == "nearest"
    large = plots.plot_predictions(synthetic_images(size=100), predictions_frame())
    assert large.axes[0].images[0].get_interpolation() == "antialiased"


def test_float_images_in_zero_one_are_scaled_to_bytes():
    images = np.full((5, 8, 8, 3), 0.5, dtype="float32")
    figure = plots.plot_predictions(images, predictions_frame())
    assert figure.axes[0].images[0].get_array().max() == 127


def test_predictions_read_images_from_the_path_column(tmp_path):
    frame = predictions_frame().iloc[:2].copy()
    paths = []
    for index, colour in enumerate([(255, 0, 0), (0, 0, 255)]):
        path = tmp_path / f"image_{index}.png"
        Image.new("RGB", (40, 30), colour).save(path)
        paths.append(str(path))
    frame.insert(0, "path", paths)
    figure = plots.plot_predictions(None, frame)
    # Row 1 (the mistake) first: the blue image.
    array = figure.axes[0].images[0].get_array()
    assert array.shape == (30, 40, 3) and tuple(array[0, 0]) == (0, 0, 255)


def test_an_unreadable_file_gets_a_placeholder(tmp_path):
    frame = predictions_frame().iloc[:1].copy()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    frame.insert(0, "path", [str(broken)])
    figure = plots.plot_predictions(None, frame)
    assert [text.get_text() for text in figure.axes[0].texts] == ["unreadable"]


def test_predictions_errors():
    with pytest.raises(ValueError, match="holds 4 images but `predictions` has 5 rows"):
        plots.plot_predictions(synthetic_images(4), predictions_frame())
    with pytest.raises(
        ValueError, match=r"no column 'path'\. Columns present: \['true_label', 'label'"
    ):
        plots.plot_predictions(None, predictions_frame())
    with pytest.raises(ValueError, match=r"no column 'probability'"):
        plots.plot_predictions(
            synthetic_images(), predictions_frame().drop(columns=["probability"])
        )
    with pytest.raises(ValueError, match=r"Received: images with shape \(5, 32, 32, 4\)"):
        plots.plot_predictions(np.zeros((5, 32, 32, 4)), predictions_frame())
    with pytest.raises(ValueError, match="max_images=0"):
        plots.plot_predictions(synthetic_images(), predictions_frame(), max_images=0)


# === plot_lr_find ===
def test_lr_find_is_log_x_with_the_suggestion_marked():
    frame = lr_find_frame()
    figure = plots.plot_lr_find(frame, suggestion=3e-4)
    (ax,) = figure.axes
    assert ax.get_xscale() == "log"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("learning rate", "loss")
    assert vertical_lines(ax) == [pytest.approx(3e-4)]
    assert legend_labels(ax) == ["loss", "smoothed loss", "suggested 3.00e-04"]
    marker = next(line for line in ax.lines if line.get_marker() == "o")
    expected = np.interp(np.log(3e-4), np.log(frame["learning_rate"]), frame["smoothed_loss"])
    assert marker.get_ydata()[0] == pytest.approx(expected)
    # The explosion at the end does not squash the descent.
    assert ax.get_ylim()[1] < frame["loss"].max() / 10


def test_lr_find_without_suggestion_or_smoothing():
    frame = lr_find_frame().drop(columns=["smoothed_loss"]).iloc[::-1]
    figure = plots.plot_lr_find(frame)
    (ax,) = figure.axes
    assert vertical_lines(ax) == []
    (line,) = ax.lines
    # Sorted by learning rate whatever the row order.
    assert np.all(np.diff(line.get_xdata()) > 0)


def test_lr_find_errors():
    with pytest.raises(
        ValueError, match=r"no column 'loss'\. Columns present: \['learning_rate'\]"
    ):
        plots.plot_lr_find(pd.DataFrame({"learning_rate": [1e-3]}))
    with pytest.raises(ValueError, match="positive numbers"):
        plots.plot_lr_find(pd.DataFrame({"learning_rate": [0.0, 1e-3], "loss": [1.0, 0.9]}))
    with pytest.raises(ValueError, match="Received: suggestion=-0.1"):
        plots.plot_lr_find(lr_find_frame(), suggestion=-0.1)


# === plot_search ===
def test_search_plots_trials_running_best_and_varying_hyperparameters():
    figure = plots.plot_search(search_frame())
    top, *panels = figure.axes
    # Constant, text, metric and bookkeeping columns are not hyperparameters.
    assert [ax.get_xlabel() for ax in panels] == ["learning_rate", "dropout", "dense_units"]
    assert all(ax.get_ylabel() == "val_accuracy" for ax in panels)
    running = next(line for line in top.lines if line.get_label() == "best so far")
    np.testing.assert_allclose(running.get_ydata(), [0.7, 0.8, 0.8, 0.8, 0.85, 0.85, 0.85, 0.85])
    labels = legend_labels(top)
    assert "best 0.85 (trial 5)" in labels and "no val_accuracy (failed)" in labels
    assert "1 without a val_accuracy" in top.get_title()
    # Log-uniform learning rates on a log axis; evenly spread dropout rates stay linear.
    assert [ax.get_xscale() for ax in panels] == ["log", "linear", "linear"]


def test_search_on_a_loss_keeps_the_lowest():
    figure = plots.plot_search(search_frame(), metric="val_loss")
    running = next(line for line in figure.axes[0].lines if line.get_label() == "best so far")
    np.testing.assert_allclose(running.get_ydata(), np.linspace(0.8, 0.4, 8))
    # val_accuracy is a metric, not a hyperparameter, even when another metric is plotted.
    assert "val_accuracy" not in [ax.get_xlabel() for ax in figure.axes[1:]]


def test_search_limits_hyperparameter_panels_to_six():
    results = search_frame()
    for index in range(5):
        results[f"extra_{index}"] = np.arange(8) * (index + 1)
    figure = plots.plot_search(results)
    assert len(figure.axes) == 1 + 6


def test_search_without_hyperparameters_is_one_panel():
    figure = plots.plot_search(pd.DataFrame({"val_accuracy": [0.5, 0.6]}))
    assert len(figure.axes) == 1


def test_search_errors_name_the_missing_metric():
    with pytest.raises(ValueError, match=r"no column 'val_auc'\. Columns present: \['trial_id'"):
        plots.plot_search(search_frame(), metric="val_auc")


# === Saving ===
def all_figures(path):
    return {
        "history": lambda: plots.plot_history(history_frame(), path),
        "confusion": lambda: plots.plot_confusion_matrix(confusion_frame(), path),
        "predictions": lambda: plots.plot_predictions(
            synthetic_images(), predictions_frame(), path
        ),
        "lr_find": lambda: plots.plot_lr_find(lr_find_frame(), 3e-4, path),
        "search": lambda: plots.plot_search(search_frame(), path=path),
    }


@pytest.mark.parametrize("kind", ["history", "confusion", "predictions", "lr_find", "search"])
def test_saving_writes_a_png_in_new_folders_and_no_temp_file(tmp_path, kind):
    path = tmp_path / "run" / "plots" / f"{kind}.png"
    figure = all_figures(path)[kind]()
    assert isinstance(figure, matplotlib.figure.Figure)
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    expected = figure.get_size_inches() * figure.dpi
    assert (width, height) == pytest.approx(tuple(expected), abs=2)
    assert 300 <= width <= 2000 and 300 <= height <= 2000
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]


def test_saving_replaces_a_previous_plot_and_a_failed_draw_keeps_it(tmp_path, monkeypatch):
    path = tmp_path / "history.png"
    path.write_bytes(b"old")
    plots.plot_history(history_frame(), path)
    first = path.read_bytes()
    assert first.startswith(b"\x89PNG")

    def broken_savefig(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken_savefig)
    with pytest.raises(RuntimeError, match="disk full"):
        plots.plot_history(history_frame(), path)
    assert path.read_bytes() == first
    assert [entry.name for entry in tmp_path.iterdir()] == ["history.png"]


def test_figures_leave_pyplot_alone():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    for make in all_figures(None).values():
        make()
    assert plt.get_fignums() == before

"""Multi-label on real photos: transferkit against the same recipe in plain Keras.

Each image is a mosaic of two CIFAR-10 photos of different classes side by side (32x64,
upscaled); its labels are their two classes, out of CIFAR-10's ten. Training mosaics come
from CIFAR-10's training split only, the held-out mosaics from its test split only. Both
sides get the same backbone and weights (MobileNet, real ImageNet weights), the same
training and validation mosaics, the same image size and the same epochs:

- plain Keras: the Keras guide's transfer-learning recipe with a multi-label top (ten
  sigmoids, binary cross-entropy): the base frozen (BatchNorm in inference mode) for the
  frozen epochs at Adam's default rate, then unfrozen at Adam(1e-5); a class is predicted
  at probability 0.5.
- transferkit: `FineTuner("mobilenet", ...)` with its default schedule on the same epochs;
  it detects multi-label data from the label lists and chooses each class's threshold on
  the validation mosaics.

    python -m bench.multilabel [--train-mosaics 3000] [--test-mosaics 1000] [--epochs 3]
        [--frozen-epochs 1] [--size 96] [--seed 0]
"""

import argparse
import time

import keras
import numpy as np
import pandas as pd

import transferkit as tk
from bench.common import CIFAR10_ALL_CLASSES, cifar10, markdown_table, weights_path
from transferkit.evaluation.multi_label import multi_label_report


def mosaics(images, labels, count, rng):
    """`count` mosaics of two photos of different classes, and their multi-hot labels."""
    first = rng.integers(len(images), size=count)
    second = rng.integers(len(images), size=count)
    same = labels[first] == labels[second]
    while same.any():
        second[same] = rng.integers(len(images), size=int(same.sum()))
        same = labels[first] == labels[second]
    pictures = np.concatenate([images[first], images[second]], axis=2)  # side by side
    multi_hot = np.zeros((count, 10), dtype="float32")
    multi_hot[np.arange(count), labels[first]] = 1
    multi_hot[np.arange(count), labels[second]] = 1
    return pictures, multi_hot


def plain_keras(x, y, xv, yv, xt, size, frozen_epochs, unfrozen_epochs, seed):
    """The Keras guide's recipe with ten sigmoids; probabilities on the test mosaics."""
    keras.utils.set_random_seed(seed)
    shape = (size, 2 * size, 3)
    base = keras.applications.MobileNet(
        include_top=False, weights=str(weights_path()), input_shape=shape
    )
    base.trainable = False
    inputs = keras.Input(shape=(32, 64, 3))
    h = keras.layers.Resizing(*shape[:2])(inputs)
    h = keras.layers.RandomFlip("horizontal")(h)
    h = keras.layers.Rescaling(1 / 127.5, offset=-1)(h)  # MobileNet's preprocessing
    h = base(h, training=False)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dropout(0.2)(h)
    outputs = keras.layers.Dense(10, activation="sigmoid")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(), loss="binary_crossentropy")
    model.fit(x, y, batch_size=32, epochs=frozen_epochs, validation_data=(xv, yv), verbose=2)
    base.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="binary_crossentropy")
    model.fit(
        x,
        y,
        batch_size=32,
        initial_epoch=frozen_epochs,
        epochs=frozen_epochs + unfrozen_epochs,
        validation_data=(xv, yv),
        verbose=2,
    )
    return model.predict(xt, batch_size=64, verbose=0)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-mosaics", type=int, default=3000)
    parser.add_argument("--test-mosaics", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--frozen-epochs", type=int, default=1)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)

    rng = np.random.default_rng(args.seed)
    images, labels = cifar10("train")
    test_images, test_labels = cifar10("test")
    x_all, y_all = mosaics(images, labels, args.train_mosaics, rng)
    xt, yt = mosaics(test_images, test_labels, args.test_mosaics, rng)
    cut = int(round(0.8 * len(x_all)))  # the same training and validation mosaics for both
    x, y, xv, yv = x_all[:cut], y_all[:cut], x_all[cut:], y_all[cut:]
    names = CIFAR10_ALL_CLASSES

    def as_lists(multi_hot):
        return [[names[i] for i in np.flatnonzero(row)] for row in multi_hot]

    rows = []
    started = time.perf_counter()
    probabilities = plain_keras(
        x,
        y,
        xv,
        yv,
        xt,
        args.size,
        args.frozen_epochs,
        args.epochs - args.frozen_epochs,
        args.seed,
    )
    seconds = time.perf_counter() - started
    report = multi_label_report(
        probabilities, yt, names, None, probabilities >= 0.5, np.full(10, 0.5)
    )
    rows.append(("plain Keras recipe (threshold 0.5)", report.metrics, seconds))

    started = time.perf_counter()
    ft = tk.FineTuner(
        "mobilenet",
        weights=weights_path(),
        input_shape=(args.size, 2 * args.size, 3),
        seed=args.seed,
        cache_features=tk.features.FeatureCache(),
    )
    ft.fit(x, as_lists(y), validation_data=(xv, as_lists(yv)), epochs=args.epochs, verbose=2)
    seconds = time.perf_counter() - started
    thresholds = ft.model.head.thresholds
    ft.model.head.thresholds = None
    at_half = ft.evaluate(xt, as_lists(yt))
    rows.append(("transferkit, threshold 0.5", at_half.metrics, seconds))
    ft.model.head.thresholds = thresholds
    report = ft.evaluate(xt, as_lists(yt))
    rows.append(("transferkit, thresholds chosen on validation", report.metrics, seconds))

    table = pd.DataFrame(
        [
            {
                "run": run,
                "micro F1": round(m["micro_f1"], 4),
                "macro F1": round(m["macro_f1"], 4),
                "mean average precision": round(m["mean_average_precision"], 4),
                "fit seconds": round(s),
            }
            for run, m, s in rows
        ]
    )
    print(
        f"\n{args.train_mosaics} mosaics ({len(x)} training, {len(xv)} validation), "
        f"{args.test_mosaics} held-out mosaics from CIFAR-10's test split, "
        f"{args.size}x{2 * args.size} px, {args.epochs} epochs ({args.frozen_epochs} frozen)\n"
    )
    print(markdown_table(table))
    print("\ntransferkit per class on the held-out mosaics:\n")
    print(markdown_table(report.per_class.round(4), index=True))

    from bench.common import bench_command, write_results

    write_results(
        "multilabel",
        {
            "runs": table.to_dict(orient="records"),
            "per_class": report.per_class.to_dict(orient="index"),
        },
        bench_command("bench.multilabel"),
        setup=vars(args),
    )


if __name__ == "__main__":
    main()

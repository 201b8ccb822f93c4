"""Imbalanced classes on real photos: `class_weight="balanced"` against the plain Keras recipe.

CIFAR-10 cats vs dogs with cats at one image in ten in training (drawn from CIFAR-10's
training split), measured on the 2,000 balanced held-out test images (1,000 of each),
never trained or tuned on. Four runs on the same training and validation images, backbone
and weights (MobileNet, real ImageNet weights), image size and epochs:

- plain Keras: the Keras guide's recipe (base frozen at Adam's default rate, then unfrozen
  at Adam(1e-5), BatchNorm in inference mode), without and with Keras's `class_weight`
  set to the balanced weights `n / (2 * n_class)`;
- transferkit: `FineTuner("mobilenet", ...)` with its default schedule, without and with
  `class_weight="balanced"`.

Balanced accuracy (the mean of the two classes' recalls) is the metric to watch: on a
one-in-ten set, predicting "dog" always scores 0.9 accuracy in training and 0.5 balanced.

    python -m bench.imbalance [--train-images 4000] [--minority-fraction 0.1] [--epochs 3]
        [--frozen-epochs 1] [--size 96] [--seed 0]
"""

import argparse
import time

import keras
import numpy as np
import pandas as pd

import transferkit as tk
from bench.common import markdown_table, weights_path
from transferkit.evaluation.report import evaluation_report
from transferkit.offline import CIFAR10_CLASS_NAMES, load_cifar10_cats_vs_dogs
from transferkit.training.class_weights import balanced_class_weight


def imbalanced(train_images, fraction, rng):
    """`train_images` training images with cats at `fraction`, and the balanced test split."""
    x, y = load_cifar10_cats_vs_dogs("train")
    xt, yt = load_cifar10_cats_vs_dogs("test")
    cats = int(round(train_images * fraction))
    chosen = np.concatenate(
        [
            rng.choice(np.flatnonzero(y == 0), cats, replace=False),
            rng.choice(np.flatnonzero(y == 1), train_images - cats, replace=False),
        ]
    )
    chosen = rng.permutation(chosen)
    return x[chosen], y[chosen], xt, yt


def split(x, y, rng, fraction=0.2):
    """The same stratified training and validation parts for every run."""
    validation = np.concatenate(
        [
            rng.choice(np.flatnonzero(y == c), int(round((y == c).sum() * fraction)), False)
            for c in (0, 1)
        ]
    )
    mask = np.zeros(len(y), bool)
    mask[validation] = True
    return x[~mask], y[~mask], x[mask], y[mask]


def plain_keras(x, y, xv, yv, xt, size, frozen_epochs, unfrozen_epochs, seed, class_weight):
    """The Keras guide's recipe; probabilities of "dog" on the test images."""
    keras.utils.set_random_seed(seed)
    base = keras.applications.MobileNet(
        include_top=False, weights=str(weights_path()), input_shape=(size, size, 3)
    )
    base.trainable = False
    inputs = keras.Input(shape=(32, 32, 3))
    h = keras.layers.Resizing(size, size)(inputs)
    h = keras.layers.RandomFlip("horizontal")(h)
    h = keras.layers.Rescaling(1 / 127.5, offset=-1)(h)
    h = base(h, training=False)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dropout(0.2)(h)
    outputs = keras.layers.Dense(1, activation="sigmoid")(h)
    model = keras.Model(inputs, outputs)
    fit = dict(batch_size=32, validation_data=(xv, yv), class_weight=class_weight, verbose=2)
    model.compile(optimizer=keras.optimizers.Adam(), loss="binary_crossentropy")
    model.fit(x, y, epochs=frozen_epochs, **fit)
    base.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="binary_crossentropy")
    model.fit(x, y, initial_epoch=frozen_epochs, epochs=frozen_epochs + unfrozen_epochs, **fit)
    dog = model.predict(xt, batch_size=64, verbose=0)[:, 0]
    return np.stack([1 - dog, dog], axis=1)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=4000)
    parser.add_argument("--minority-fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--frozen-epochs", type=int, default=1)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)

    rng = np.random.default_rng(args.seed)
    x_all, y_all, xt, yt = imbalanced(args.train_images, args.minority_fraction, rng)
    x, y, xv, yv = split(x_all, y_all, rng)
    names = np.array(CIFAR10_CLASS_NAMES)
    counts = np.bincount(y, minlength=2)
    balanced = dict(enumerate(balanced_class_weight(counts).tolist()))

    rows = []

    def record(run, probabilities, seconds):
        metrics = evaluation_report(probabilities, yt, list(names), None).metrics
        rows.append(
            {
                "run": run,
                "balanced accuracy": round(metrics["balanced_accuracy"], 4),
                "cat recall": round(_recall(probabilities, yt, 0), 4),
                "dog recall": round(_recall(probabilities, yt, 1), 4),
                "accuracy": round(metrics["accuracy"], 4),
                "PR AUC (dog)": round(metrics["pr_auc"], 4),
                "fit seconds": round(seconds),
            }
        )
        print(rows[-1], flush=True)

    for weights, label in ((None, "no class_weight"), (balanced, "class_weight balanced")):
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
            weights,
        )
        record(f"plain Keras recipe, {label}", probabilities, time.perf_counter() - started)

    for weights, label in ((None, "no class_weight"), ("balanced", 'class_weight="balanced"')):
        started = time.perf_counter()
        ft = tk.FineTuner(
            "mobilenet",
            weights=weights_path(),
            input_shape=args.size,
            seed=args.seed,
            cache_features=tk.features.FeatureCache(),
        )
        ft.fit(
            x,
            names[y],
            validation_data=(xv, names[yv]),
            epochs=args.epochs,
            class_weight=weights,
            verbose=2,
        )
        seconds = time.perf_counter() - started
        predictions = ft.predict(xt)
        probabilities = predictions[["prob_cat", "prob_dog"]].to_numpy()
        record(f"transferkit, {label}", probabilities, seconds)

    print(
        f"\n{len(x)} training images ({counts[0]} cats, {counts[1]} dogs), {len(xv)} "
        f"validation, {len(yt)} balanced held-out test images, {args.size} px, "
        f"{args.epochs} epochs ({args.frozen_epochs} frozen)\n"
    )
    print(markdown_table(pd.DataFrame(rows)))

    from bench.common import bench_command, write_results

    write_results(
        "imbalance",
        {"runs": rows},
        bench_command("bench.imbalance"),
        setup={**vars(args), "train": counts, "test_images": len(yt)},
    )


def _recall(probabilities, labels, class_index):
    predicted = probabilities.argmax(axis=1)
    return float((predicted[labels == class_index] == class_index).mean())


if __name__ == "__main__":
    main()

"""The Keras guide's transfer-learning recipe in plain Keras vs transferkit's default.

Same offline data (CIFAR-10 cats vs dogs, the same balanced training subset, seed 0), same
backbone and weights (MobileNet, real ImageNet weights, 160 px), both measured on CIFAR-10's
2,000 test images, which neither trains or tunes on.

The plain recipe follows https://keras.io/guides/transfer_learning/: the base model called
with `training=False` (BatchNorm in inference mode), RandomFlip + RandomRotation(0.1)
augmentation, global average pooling, dropout 0.2, one logit; Adam with its default rate for
the frozen phase, then the whole base unfrozen and recompiled at Adam(1e-5).

transferkit's side is `FineTuner("mobilenet", ...)` with its default schedule, given as many
epochs as fit the plain recipe's wall time; `--transferkit-frozen-epochs`,
`--head-learning-rate` and `--cached-views` change its warm-up. Held-out accuracy is
measured after every epoch of both (the clock is paused while measuring) to report the
time each first reaches the plain recipe's final accuracy.

    python -m bench.keras_recipe [--train-images 4000] [--frozen-epochs 2] [--unfrozen-epochs 1]
        [--transferkit-epochs 3] [--transferkit-frozen-epochs N] [--head-learning-rate LR]
        [--cached-views N]
"""

import argparse
import time

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

import transferkit as tk
from bench.common import cats_vs_dogs, weights_path


class HeldOut(keras.callbacks.Callback):
    """Measures held-out accuracy after every epoch, with the clock paused."""

    def __init__(self, accuracy_fn, clock):
        super().__init__()
        self.accuracy_fn = accuracy_fn
        self.clock = clock
        self.points = []

    def on_epoch_end(self, epoch, logs=None):
        self.clock.pause()
        self.points.append((self.clock.elapsed(), self.accuracy_fn()))
        print(f"  epoch {len(self.points)}: {self.points[-1]}", flush=True)
        self.clock.resume()


class Clock:
    def __init__(self):
        self.total, self.started = 0.0, time.perf_counter()

    def pause(self):
        self.total += time.perf_counter() - self.started

    def resume(self):
        self.started = time.perf_counter()

    def elapsed(self):
        return self.total


def plain_keras_recipe(x, y, xt, yt, size, frozen_epochs, unfrozen_epochs):
    keras.utils.set_random_seed(0)
    labels = (y == "dog").astype("float32")
    test_labels = (yt == "dog").astype("float32")

    def dataset(images, targets, shuffle):
        data = tf.data.Dataset.from_tensor_slices((images, targets))
        if shuffle:
            data = data.shuffle(len(images), seed=0)
        return (
            data.batch(32)
            .map(lambda a, b: (tf.image.resize(tf.cast(a, "float32"), (size, size)), b))
            .prefetch(tf.data.AUTOTUNE)
        )

    train, test = dataset(x, labels, True), dataset(xt, test_labels, False)
    base = keras.applications.MobileNet(
        weights=str(weights_path()), input_shape=(size, size, 3), include_top=False
    )
    base.trainable = False
    augmentation = keras.Sequential(
        [keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.1)]
    )
    inputs = keras.Input((size, size, 3))
    h = augmentation(inputs)
    h = keras.layers.Rescaling(1 / 127.5, offset=-1)(h)  # MobileNet's preprocessing
    h = base(h, training=False)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dropout(0.2)(h)
    model = keras.Model(inputs, keras.layers.Dense(1)(h))

    def accuracy():
        logits = model.predict(test, verbose=0).ravel()
        return float(((logits > 0) == (test_labels > 0.5)).mean())

    clock = Clock()
    held_out = HeldOut(accuracy, clock)
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(), loss=loss, metrics=["accuracy"])
    model.fit(train, epochs=frozen_epochs, callbacks=[held_out], verbose=0)
    base.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss=loss, metrics=["accuracy"])
    model.fit(
        train,
        epochs=frozen_epochs + unfrozen_epochs,
        initial_epoch=frozen_epochs,
        callbacks=[held_out],
        verbose=0,
    )
    clock.pause()
    return held_out.points, clock.elapsed()


def transferkit_schedule(frozen_epochs=None, head_learning_rate=None):
    """The default schedule, with the warm-up's length or head rate changed if given."""
    changes = {"frozen_epochs": frozen_epochs, "learning_rate": head_learning_rate}
    changes = {name: value for name, value in changes.items() if value is not None}
    return tk.FreezeUnfreeze(**changes) if changes else None


def transferkit_default(x, y, xt, yt, size, epochs, schedule=None, cached_views=None):
    keras.backend.clear_session()
    options = {} if schedule is None else {"schedule": schedule}
    ft = tk.FineTuner(
        "mobilenet",
        weights=weights_path(),
        input_shape=size,
        cached_views=cached_views,
        seed=0,
        **options,
    )
    clock = Clock()
    held_out = HeldOut(lambda: ft.evaluate(xt, yt)["accuracy"], clock)
    ft.fit(x, y, epochs=epochs, callbacks=[held_out], verbose=0)
    clock.pause()
    return held_out.points, clock.elapsed()


def first_reaching(points, target):
    return next((seconds for seconds, accuracy in points if accuracy >= target), None)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line (building it runs nothing)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=4000)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument(
        "--frozen-epochs", type=int, default=2, help="the plain recipe's frozen epochs"
    )
    parser.add_argument(
        "--unfrozen-epochs", type=int, default=1, help="the plain recipe's unfrozen epochs"
    )
    parser.add_argument("--transferkit-epochs", type=int, default=3)
    parser.add_argument(
        "--transferkit-frozen-epochs", type=int, help="(default: the default schedule's)"
    )
    parser.add_argument(
        "--head-learning-rate",
        type=float,
        help="transferkit's head rate while frozen (default: the default schedule's)",
    )
    parser.add_argument(
        "--cached-views",
        type=int,
        help="views of each image cached for the warm-up (default: FineTuner's)",
    )
    return parser


def main():
    args = build_parser().parse_args()
    x, y, xt, yt = cats_vs_dogs(args.train_images)

    print("plain Keras recipe", flush=True)
    plain, plain_seconds = plain_keras_recipe(
        x, y, xt, yt, args.image_size, args.frozen_epochs, args.unfrozen_epochs
    )
    schedule = transferkit_schedule(args.transferkit_frozen_epochs, args.head_learning_rate)
    print("transferkit default", flush=True)
    ours, our_seconds = transferkit_default(
        x, y, xt, yt, args.image_size, args.transferkit_epochs, schedule, args.cached_views
    )

    target = plain[-1][1]
    used = tk.schedules.get(schedule or tk.FineTuner("mobilenet").schedule)
    our_frozen = used.plan(args.transferkit_epochs)[0]
    rows = [
        {
            "run": f"plain Keras recipe ({args.frozen_epochs} frozen + {args.unfrozen_epochs} "
            "unfrozen epochs)",
            "accuracy_after_frozen": plain[args.frozen_epochs - 1][1],
            "final_test_accuracy": target,
            "seconds": plain_seconds,
            "seconds_to_reach_plain_final": first_reaching(plain, target),
        },
        {
            "run": f"transferkit default ({our_frozen.epochs} frozen on cached features + "
            f"{args.transferkit_epochs - our_frozen.epochs} unfrozen epochs)",
            "accuracy_after_frozen": ours[our_frozen.epochs - 1][1],
            "final_test_accuracy": ours[-1][1],
            "seconds": our_seconds,
            "seconds_to_reach_plain_final": first_reaching(ours, target),
        },
    ]
    print(
        f"\n{len(x)} CIFAR-10 cats/dogs at {args.image_size}px, MobileNet ImageNet weights, "
        f"test accuracy on {len(xt)} held-out images; seconds exclude the held-out measurements"
    )
    print(pd.DataFrame(rows).set_index("run").round(4).to_string())
    print("per-epoch (seconds, accuracy): plain", plain, "transferkit", ours)

    from bench.common import bench_command, write_results

    write_results(
        "keras_recipe",
        {"runs": rows, "per_epoch": {"plain": plain, "transferkit": ours}},
        bench_command("bench.keras_recipe"),
        setup={**vars(args), "test_images": len(xt)},
    )


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()

"""How fast a new head learns on cached features, by learning rate: the warm-up's default.

The default recipe warms the head up on a frozen backbone before unfreezing it; the
warm-up must leave a trained head, or the backbone unfreezes under random gradients.
This trains the head alone (`Freeze`) on the same cached features (offline CIFAR-10 cats
vs dogs, MobileNet's real ImageNet weights, one plain view per image, as a warm-up caches)
for 1 to 5 epochs at each learning rate, and measures held-out test accuracy.

    python -m bench.head_learning_rate [--train-images 4000] [--rates 1e-3 3e-3 1e-2]
"""

import argparse

import pandas as pd

import transferkit as tk
from bench.common import Timer, cats_vs_dogs, weights_path


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line (building it runs nothing)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=4000)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--rates", type=float, nargs="*", default=[1e-3, 3e-3, 1e-2])
    parser.add_argument("--epochs", type=int, nargs="*", default=[1, 2, 3, 5])
    return parser


def main():
    args = build_parser().parse_args()
    x, y, xt, yt = cats_vs_dogs(args.train_images)
    cache = tk.features.FeatureCache()  # features computed once, shared by every run

    rows = []
    for rate in args.rates:
        for epochs in args.epochs:
            ft = tk.FineTuner(
                "mobilenet",
                weights=weights_path(),
                input_shape=args.image_size,
                schedule=tk.Freeze(learning_rate=rate),
                cached_views=1,
                cache_features=cache,
                seed=0,
            )
            with Timer() as timer:
                history = ft.fit(x, y, epochs=epochs, verbose=0)
            rows.append(
                {
                    "learning_rate": rate,
                    "epochs": epochs,
                    "val_accuracy": history["val_accuracy"].iloc[-1],
                    "test_accuracy": ft.evaluate(xt, yt)["accuracy"],
                    "fit_seconds": timer.seconds,  # the first includes computing the features
                }
            )
            print(rows[-1], flush=True)
    print(
        f"\n{len(x)} CIFAR-10 cats/dogs (80/20 split) at {args.image_size}px, MobileNet "
        f"ImageNet weights, head alone on cached features, test on {len(xt)} held-out images"
    )
    table = pd.DataFrame(rows).pivot(index="learning_rate", columns="epochs")
    print(table["test_accuracy"].round(4).to_string())

    from bench.common import bench_command, write_results

    write_results(
        "head_learning_rate",
        {"runs": rows},
        bench_command("bench.head_learning_rate"),
        setup={**vars(args), "test_images": len(xt)},
    )


if __name__ == "__main__":
    main()

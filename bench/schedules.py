"""The built-in schedules side by side at an equal budget of epochs, on real data and weights.

Offline CIFAR-10 cats vs dogs (the same balanced training subset and seed for every
schedule; 20% of it held out for validation) with MobileNet's real ImageNet weights;
accuracy is measured on CIFAR-10's test split, never trained or tuned on. Each schedule
has its default settings, unless `--frozen-epochs` (the warm-up of FreezeUnfreeze and
GradualUnfreeze) or `--head-learning-rate` (every schedule with a frozen phase) say
otherwise.

    python -m bench.schedules [--train-images 2000] [--epochs 4] [--image-size 160]
        [--frozen-epochs N] [--head-learning-rate LR] [--schedules NAME ...]
"""

import argparse

import keras
import pandas as pd

import transferkit as tk
from bench.common import Timer, cats_vs_dogs, weights_path

# Each takes the options given on the command line that apply to it.
SCHEDULES = {
    "Freeze": lambda frozen, rate: tk.Freeze(**rate),
    "FreezeUnfreeze": lambda frozen, rate: tk.FreezeUnfreeze(**frozen, **rate),
    "GradualUnfreeze": lambda frozen, rate: tk.GradualUnfreeze(
        blocks_per_step=2, **frozen, **rate
    ),
    "NoFreeze": lambda frozen, rate: tk.NoFreeze(),
}


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line (building it runs nothing)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--schedules", nargs="*", default=list(SCHEDULES), choices=list(SCHEDULES))
    parser.add_argument(
        "--frozen-epochs", type=int, help="warm-up epochs (default: each schedule's)"
    )
    parser.add_argument(
        "--head-learning-rate", type=float, help="the head's rate while frozen (default: 1e-2)"
    )
    return parser


def main():
    args = build_parser().parse_args()
    x, y, xt, yt = cats_vs_dogs(args.train_images)
    frozen = {} if args.frozen_epochs is None else {"frozen_epochs": args.frozen_epochs}
    rate = {} if args.head_learning_rate is None else {"learning_rate": args.head_learning_rate}

    rows = []
    for name in args.schedules:
        keras.backend.clear_session()
        ft = tk.FineTuner(
            "mobilenet",
            weights=weights_path(),
            input_shape=args.image_size,
            schedule=SCHEDULES[name](frozen, rate),
            # A cold cache for each schedule: none may reuse the features another computed.
            cache_features=tk.features.FeatureCache(),
            seed=0,
        )
        with Timer() as timer:
            history = ft.fit(x, y, epochs=args.epochs, verbose=0)
        rows.append(
            {
                "schedule": name,
                "phases": " -> ".join(dict.fromkeys(history["phase"])),
                "best_val_accuracy": history["val_accuracy"].max(),
                "test_accuracy": ft.evaluate(xt, yt)["accuracy"],
                "fit_seconds": timer.seconds,
            }
        )
        print(rows[-1], flush=True)
    print(
        f"\n{len(x)} CIFAR-10 cats/dogs at {args.image_size}px, MobileNet ImageNet weights, "
        f"{args.epochs} epochs each, seed 0, test accuracy on {len(xt)} held-out images"
    )
    print(pd.DataFrame(rows).set_index("schedule").round(4).to_string())

    from bench.common import bench_command, write_results

    write_results(
        "schedules",
        {r["schedule"]: r for r in rows},
        bench_command("bench.schedules"),
        setup={**vars(args), "test_images": len(xt)},
    )


if __name__ == "__main__":
    main()

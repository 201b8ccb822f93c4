"""Feature cache vs recomputing the frozen backbone every epoch, side by side.

Real data and weights (offline CIFAR-10 cats vs dogs, MobileNet ImageNet weights). Each
configuration runs in its own process, one after the other, so peak memory is its own:

- `bare`: a bare `backbone.predict` over the training images, already resized and
  preprocessed in memory -- the physical floor of one forward pass.
- `extract`, `extract-xla`, `extract-bf16`: transferkit's feature extraction (tf.data
  decode and resize, preprocessing inside the model), plain, with XLA, with bfloat16.
- `cached-E` / `recompute-E`: a head-only schedule (`Freeze`, no augmentation) for E
  epochs, training on cached features vs running the backbone every epoch.
- `cached-flip-K`: the cache with K views per image (plain + K-1 flipped), 20 epochs.

The head trains at `Freeze`'s default learning rate unless `--head-learning-rate`
says otherwise.

    python -m bench.feature_cache [--train-images 2000] [--image-size 160]
        [--head-learning-rate LR] [--configs CONFIG ...]
"""

import argparse
import json
import subprocess
import sys

CONFIGS = [
    "bare",
    "extract",
    "extract-xla",
    "extract-bf16",
    "cached-1",
    "cached-5",
    "cached-20",
    "recompute-1",
    "recompute-5",
    "recompute-20",
    "cached-flip-2",
    "cached-flip-4",
]


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line (building it runs nothing)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument(
        "--head-learning-rate", type=float, help="the head's learning rate (default: Freeze's)"
    )
    parser.add_argument("--configs", nargs="*", default=CONFIGS, choices=CONFIGS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    return parser


def run_one(config, train_images, image_size, head_learning_rate=None):
    import keras
    import numpy as np

    import transferkit as tk
    from bench.common import Timer, cats_vs_dogs, peak_rss_mib, weights_path
    from transferkit.data import as_image_source
    from transferkit.features import FeatureCache, extract_features
    from transferkit.layers import BackbonePreprocessing

    x, y, xt, yt = cats_vs_dogs(train_images)
    size = (image_size, image_size)
    result = {"config": config, "images": len(x)}

    if config == "extract-bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    if config == "bare" or config.startswith("extract"):
        backbone = keras.applications.MobileNet(
            include_top=False, weights=str(weights_path()), input_shape=(*size, 3), pooling="avg"
        )
        if config == "bare":
            ready = np.asarray(BackbonePreprocessing(size, mode="tf")(x.astype("float32")))
            with Timer() as t:
                backbone.predict(ready, batch_size=32, verbose=0)
        else:
            inputs = keras.Input((*size, 3))
            model = keras.Model(inputs, backbone(BackbonePreprocessing(size, mode="tf")(inputs)))
            if config == "extract-xla":
                model.compile(jit_compile=True)
            source = as_image_source(x, y)
            with Timer() as t:
                extract_features(model, source, size, 32, verbose=0)
        result.update(seconds=t.seconds, images_per_second=len(x) / t.seconds)
    else:
        kind, *rest = config.split("-")
        flip = rest[0] == "flip"
        epochs = 20 if flip else int(rest[0])
        ft = tk.FineTuner(
            "mobilenet",
            weights=weights_path(),
            input_shape=(*size, 3),
            schedule=tk.Freeze()
            if head_learning_rate is None
            else tk.Freeze(learning_rate=head_learning_rate),
            augmentation="flip" if flip else None,
            cached_views=int(rest[1]) if flip else 1,
            cache_features=FeatureCache() if kind == "cached" else False,
            seed=0,
        )
        with Timer() as t:
            history = ft.fit(x, y, epochs=epochs, verbose=0)
        result.update(
            seconds=t.seconds,
            epochs=epochs,
            val_accuracy=float(history["val_accuracy"].iloc[-1]),
            test_accuracy=ft.evaluate(xt, yt)["accuracy"],
        )
    result["peak_mib"] = peak_rss_mib()
    return result


def main():
    args = build_parser().parse_args()
    if args.one:
        row = run_one(args.one, args.train_images, args.image_size, args.head_learning_rate)
        print("RESULT " + json.dumps(row))
        return

    rows = []
    for config in args.configs:
        command = [
            sys.executable,
            "-m",
            "bench.feature_cache",
            "--one",
            config,
            "--train-images",
            str(args.train_images),
            "--image-size",
            str(args.image_size),
        ]
        if args.head_learning_rate is not None:
            command += ["--head-learning-rate", str(args.head_learning_rate)]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        row = json.loads(output.split("RESULT ", 1)[1])
        rows.append(row)
        print(json.dumps(row), flush=True)

    import pandas as pd

    table = pd.DataFrame(rows).set_index("config")
    floor = table.loc["bare", "seconds"] if "bare" in table.index else float("nan")
    table["x_one_forward_pass"] = table["seconds"] / floor
    print(
        f"\n{args.train_images} CIFAR-10 cats/dogs at {args.image_size}px, MobileNet ImageNet "
        "weights, 2 CPU cores; x_one_forward_pass = seconds / bare predict seconds"
    )
    print(table.round(3).to_string())

    from bench.common import bench_command, write_results

    figures = {r["config"]: {**r, "x_one_forward_pass": r["seconds"] / floor} for r in rows}
    for name in ("extract-xla", "extract-bf16"):
        if name in figures and "extract" in figures:
            rate = figures["extract"]["images_per_second"]
            figures[name]["x_extract"] = figures[name]["images_per_second"] / rate
    for epochs in (1, 5, 20):
        cached, recompute = figures.get(f"cached-{epochs}"), figures.get(f"recompute-{epochs}")
        if cached and recompute:
            figures[f"recompute-{epochs}"]["x_cached"] = recompute["seconds"] / cached["seconds"]
    write_results(
        "feature_cache",
        figures,
        bench_command("bench.feature_cache"),
        setup={
            "train_images": args.train_images,
            "validation_percent": 20,
            "test_images": 2000,
            "image_size": args.image_size,
            "head_learning_rate": args.head_learning_rate,
            "epochs": [1, 5, 20],
            "views": [1, 2, 4],
            "cores": 2,
        },
    )


if __name__ == "__main__":
    main()

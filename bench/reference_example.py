"""The reference example, run and stored: `examples/cats_vs_dogs/train.py` end to end.

Runs the example as a user would (`python examples/cats_vs_dogs/train.py` plus any
arguments given after `--`), with its log, and stores what the pages quote of it in
`docs/results/reference_example.json`: the held-out metrics of its `metrics.json`, the
confusion matrix, every epoch of `history.csv`, the feature passes its log reports
(images, seconds, images/s), and the wall time of the whole command. `--copy-assets`
also copies its `metrics.json`, `history.csv` and plots to `docs/assets/cats_vs_dogs/`,
where the tutorial shows them.

    python -m bench.reference_example [--copy-assets] [-- --precision auto ...]
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "examples/cats_vs_dogs/train.py"
ASSETS = ROOT / "docs" / "assets" / "cats_vs_dogs"
COPIED = ("metrics.json", "history.csv", "history.png", "confusion_matrix.png", "predictions.png")
FEATURES = re.compile(
    r"computed (\d+) feature vectors \((\d+) view\(s\) of (\d+) images\) "
    r"in ([\d.]+)s, (\d+) images/s"
)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line (building it runs nothing)."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Arguments after `--` go to examples/cats_vs_dogs/train.py.",
    )
    parser.add_argument(
        "--copy-assets", action="store_true", help="copy the run's files to docs/assets/"
    )
    parser.add_argument(
        "arguments", nargs="*", help="the arguments of examples/cats_vs_dogs/train.py (after --)"
    )
    return parser


def main():
    args = build_parser().parse_args()
    out = Path("runs/cats_vs_dogs")
    for index, word in enumerate(args.arguments):
        if word == "--out":
            out = Path(args.arguments[index + 1])
    command = [sys.executable, "-u", SCRIPT, *args.arguments]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    sys.stdout.write(done.stdout[-4000:])
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(done.returncode)
    log = done.stdout + done.stderr
    folder = ROOT / out
    metrics = json.loads((folder / "metrics.json").read_text())
    import pandas as pd

    history = pd.read_csv(folder / "history.csv")
    confusion = pd.read_csv(folder / "confusion_matrix.csv", index_col=0)
    passes = [
        {
            "vectors": int(m[0]),
            "views": int(m[1]),
            "images": int(m[2]),
            "seconds": float(m[3]),
            "images_per_second": int(m[4]),
        }
        for m in FEATURES.findall(log)
    ]
    figures = {
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
        "command_seconds": seconds,
        "confusion_matrix": {
            true: {predicted: int(confusion.loc[true, predicted]) for predicted in confusion}
            for true in confusion.index
        },
        "epochs": history.to_dict(orient="records"),
        "feature_passes": passes,
        "feature_pass_total": {
            "images": sum(p["images"] for p in passes),
            "seconds": sum(p["seconds"] for p in passes),
        },
    }
    # Without internet, `--weights auto` falls back to the offline MobileNet weights: the
    # same run as `--weights offline-mobilenet`.
    fell_back = re.search(r"^backbone: .*mobilenet", log, re.I | re.M) is not None
    from bench.common import write_results

    write_results(
        "reference_example",
        figures,
        " ".join(["python", SCRIPT, *args.arguments]),
        setup={
            key: metrics[key]
            for key in ("train_images", "image_size", "epochs", "frozen_epochs", "seed")
            if key in metrics
        }
        | {"test_images": metrics.get("num_images"), "cores": 2},
        recorded_by=" ".join(["python -m bench.reference_example", *sys.argv[1:]]),
        same_as=[" ".join(["python", SCRIPT, *args.arguments, "--weights", "offline-mobilenet"])]
        if fell_back and "--weights" not in args.arguments
        else [],
    )
    if args.copy_assets:
        ASSETS.mkdir(parents=True, exist_ok=True)
        for name in COPIED:
            shutil.copy2(folder / name, ASSETS / name)
        print(f"copied {', '.join(COPIED)} to {ASSETS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

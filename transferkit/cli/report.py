"""`transferkit report`: rebuilds the HTML report of a run folder."""

import argparse

from transferkit.cli.parsing import add_command

DESCRIPTION = """\
Rebuild RUN_DIR/report.html from the files of a run folder (as `transferkit fit --out
RUN_DIR` writes it): one self-contained page with the settings, the phases, the history,
the metrics, the per-class table, the confusion matrix, the top losses with Grad-CAM and
the reliability diagram. No model is loaded; plots missing from the folder are drawn from
its CSV files."""

EXAMPLE = """\
transferkit report runs/cats
transferkit report runs/cats --out cats-report.html"""


def add_parser(subparsers, parents: list) -> argparse.ArgumentParser:
    """Adds the `report` command to the `transferkit` parser."""
    parser = add_command(
        subparsers,
        "report",
        parents,
        summary="rebuild the HTML report of a run folder",
        description=DESCRIPTION,
        example=EXAMPLE,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by fit")
    parser.add_argument(
        "--out", metavar="FILE", help="write the page here (default: RUN_DIR/report.html)"
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Carries out `transferkit report` (see the command's `--help`)."""
    from transferkit.report import write_report

    path = write_report(args.run_dir, args.out)
    print(f"Wrote {path}")
    return 0

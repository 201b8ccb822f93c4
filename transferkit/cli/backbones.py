"""`transferkit backbones`: the backbones transferkit can build by name."""

import argparse
import sys

from transferkit.cli.parsing import add_command

DESCRIPTION = """\
List the Keras Applications backbones transferkit builds by name (--backbone of fit):
their default input size, the preprocessing built into the model, and their family.
--parameters adds each backbone's parameter count, found by building all of them
without weights: that takes about 80 seconds and a few GB of memory."""

EXAMPLE = """\
transferkit backbones
transferkit backbones --parameters"""


def add_parser(subparsers, parents: list) -> argparse.ArgumentParser:
    """Adds the `backbones` command to the `transferkit` parser."""
    parser = add_command(
        subparsers,
        "backbones",
        parents,
        summary="list the backbones available by name",
        description=DESCRIPTION,
        example=EXAMPLE,
    )
    parser.add_argument(
        "--parameters",
        action="store_true",
        help="add the parameter count of each backbone (slow: about 80 s)",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Carries out `transferkit backbones` (see the command's `--help`)."""
    from transferkit.cli.runtime import import_tensorflow

    import_tensorflow()
    from transferkit.backbones import list_backbones

    if args.parameters:
        print("Counting parameters by building every backbone (about 80 s)...", file=sys.stderr)
    table = list_backbones(with_parameters=args.parameters).drop(columns="application")
    formatters = {"parameters": "{:,}".format} if args.parameters else None
    print(table.to_string(index=False, formatters=formatters))
    return 0

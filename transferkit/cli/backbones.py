"""`transferkit backbones`: the backbones transferkit can build by name."""

import argparse
import sys

from transferkit.cli.parsing import add_command

DESCRIPTION = """\
List the backbones transferkit builds by name (--backbone of fit): the Keras Applications
models, and KerasHub's image presets (hub:<preset>, with the hub extra installed): their
default input size, the preprocessing built into the model, their family and source.
Any other KerasHub preset (hf://owner/name, a preset folder) is a --backbone too.
--parameters adds each backbone's parameter count (for Keras Applications, found by
building all of them without weights: about 80 seconds and a few GB of memory)."""

EXAMPLE = """\
transferkit backbones
transferkit backbones --source keras_hub
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
    parser.add_argument(
        "--source",
        choices=["all", "keras.applications", "keras_hub"],
        default="all",
        help="which backbones to list (default: all)",
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
    table = list_backbones(with_parameters=args.parameters, source=args.source)
    columns = ["name", "input_size", "preprocessing", "family", "source"]
    table = table[columns + (["parameters"] if args.parameters else [])]
    formatters = {"parameters": "{:,}".format} if args.parameters else None
    print(table.to_string(index=False, formatters=formatters))
    return 0

"""What every command's parser shares: its help layout, and checks of numeric options."""

import argparse

from transferkit import defaults


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and examples; wraps option help as usual."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32)


def add_command(
    subparsers, name: str, parents: list, summary: str, description: str, example: str
) -> argparse.ArgumentParser:
    """Adds a command whose `--help` says what it does and shows an example.

    Args:
        subparsers: The `add_subparsers()` object of the parent parser.
        name: str. The command's name, e.g. `"fit"`.
        parents: list of `argparse.ArgumentParser`. Options every command takes.
        summary: str. One line for the list of commands in `transferkit --help`.
        description: str. What the command does, for its own `--help`.
        example: str. Example command lines, one per line.
    """
    return subparsers.add_parser(
        name,
        parents=parents,
        help=summary,
        description=description,
        epilog="example:\n" + "\n".join(f"  {line}" for line in example.strip().splitlines()),
        formatter_class=HelpFormatter,
    )


def add_defaulted(parser, flag: str, default, help: str = "", **kwargs) -> None:
    """Adds an option whose help ends with its default, read from the one value given.

    Args:
        parser: `argparse.ArgumentParser`.
        flag: str. The option, e.g. `"--epochs"`.
        default: Its default (from `transferkit.defaults` for the recipe's).
        help: str. What it does, before `(default: ...)`. Defaults to `""`.
        **kwargs: Further `add_argument` arguments (`type`, `metavar`, ...).
    """
    shown = " ".join(default) if isinstance(default, list) else default
    text = f"{help} (default: {shown})" if help else f"(default: {shown})"
    parser.add_argument(flag, default=default, help=text, **kwargs)


def add_training_options(parser: argparse.ArgumentParser, epochs_help: str) -> None:
    """Adds `--epochs`, `--batch-size` and `--validation-split`, which fit and tune share."""
    add_defaulted(parser, "--epochs", defaults.EPOCHS, epochs_help, type=int, metavar="N")
    add_defaulted(parser, "--batch-size", defaults.BATCH_SIZE, type=int, metavar="N")
    add_defaulted(
        parser,
        "--validation-split",
        defaults.VALIDATION_SPLIT,
        "fraction of each class held out when there is no --validation-data",
        type=float,
        metavar="FRACTION",
    )
    parser.add_argument(
        "--class-weight",
        choices=["balanced"],
        help="balanced: weigh each class by the inverse of its share of the training images "
        "(for imbalanced classes; the log reports the weights) (default: none)",
    )


def add_column_options(parser: argparse.ArgumentParser) -> None:
    """Adds `--path-column` and `--label-column`, which name the columns of a CSV DATA."""
    parser.add_argument(
        "--path-column",
        default="path",
        metavar="NAME",
        help="the CSV column of image paths (default: path)",
    )
    parser.add_argument(
        "--label-column",
        default="label",
        metavar="NAME",
        help="the CSV column of labels, or for multi-label data one 0/1 column per class, "
        "comma-separated (cat,dog,bird) (default: label)",
    )
    parser.add_argument(
        "--label-delimiter",
        metavar="TEXT",
        help="multi-label: the labels column holds several classes joined by TEXT, e.g. "
        "'|' for cat|dog; an empty label is an image of no class (default: none)",
    )
    parser.add_argument(
        "--multi-label",
        action="store_true",
        default=None,
        help="read the labels as multi-label (several classes, or none, per image) even when "
        "each image has one; multi-label data is otherwise detected (a delimiter, a column "
        "per class)",
    )


def label_column_argument(value: str) -> str | list[str]:
    """`--label-column`: one column, or comma-separated 0/1 columns (one per class)."""
    if "," in value:
        return [column.strip() for column in value.split(",") if column.strip()]
    return value


def check_int(value: int, flag: str, minimum: int = 1) -> None:
    """Checks an integer option against its smallest sensible value.

    The check happens in the command rather than in argparse so that a value
    out of range is an error of the run (exit status 1) like any other, while
    argparse keeps exit status 2 for malformed command lines.

    Raises:
        ValueError: if `value` is below `minimum`.
    """
    if value < minimum:
        raise ValueError(f"{flag} must be an integer >= {minimum}. Received: {flag} {value}")


def check_positive(value: float, flag: str) -> None:
    """Checks that a float option is > 0.

    Raises:
        ValueError: if `value` is not > 0.
    """
    if not value > 0:
        raise ValueError(f"{flag} must be a number > 0. Received: {flag} {value}")

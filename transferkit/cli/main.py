"""The `transferkit` command: parses the command line, runs a command, reports errors."""

import argparse
import sys
import traceback
import warnings

from transferkit.cli import backbones, demo, evaluate, export, fit, predict, report, tune
from transferkit.cli.parsing import HelpFormatter
from transferkit.cli.runtime import configure_logging, restore_logging
from transferkit.version import __version__

COMMANDS = (fit, evaluate, predict, export, tune, report, backbones, demo)

# Errors whose message is the whole story; anything else is shown with its type.
EXPECTED_ERRORS = (ValueError, TypeError, OSError)

DESCRIPTION = """\
Fine-tune any Keras Applications backbone into an image classifier, then evaluate it
and predict with it. `transferkit COMMAND --help` describes each command."""

EXAMPLES = """\
examples:
  transferkit fit data/train --out runs/cats --backbone mobilenet --epochs 5
  transferkit evaluate runs/cats/model.keras data/test
  transferkit predict runs/cats/model.keras photos/ --csv predictions.csv
  transferkit backbones
  transferkit demo cats-vs-dogs --train-images 2000 --epochs 3"""

VERBOSE_HELP = "show transferkit's progress log, and the traceback of an error"


def build_parser() -> argparse.ArgumentParser:
    """Builds the parser of the `transferkit` command and its sub-commands.

    Returns:
        An `argparse.ArgumentParser`; `parse_args()` sets `run`, the function
        that carries the chosen command out.
    """
    parser = argparse.ArgumentParser(
        prog="transferkit",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"transferkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    # `--verbose` is accepted after the command too; SUPPRESS keeps a command's
    # parser from resetting a `--verbose` given before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers, [common])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the `transferkit` command.

    Args:
        argv: list of str or None. The arguments after the program name.
            Defaults to `sys.argv[1:]`.

    Returns:
        The exit status: 0 on success, 1 when the command failed (after one
        `transferkit: error: ...` line on stderr), 130 when interrupted.
        Malformed command lines exit with status 2, as argparse does.
    """
    try:
        args = build_parser().parse_args(argv)
        previous_level = configure_logging(args.verbose)
    except KeyboardInterrupt:
        return _interrupted()
    try:
        with warnings.catch_warnings():
            if not args.verbose:
                # Library warnings (deprecations, Keras's notes) are nothing the user of a
                # command can act on; `--verbose` shows them.
                warnings.simplefilter("ignore")
            return args.run(args) or 0
    except KeyboardInterrupt:
        # Also in the first seconds, while TensorFlow is being imported: the commands
        # import it here, inside the `try`, never when the command line is parsed.
        return _interrupted()
    except BrokenPipeError:
        # The reader went away (`transferkit backbones | head -1`): not an error. Point
        # stdout at /dev/null so Python's own flush at exit does not complain either.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:
        if args.verbose:
            traceback.print_exc()
        print(f"transferkit: error: {error_line(error, args.verbose)}", file=sys.stderr)
        return 1
    finally:
        restore_logging(previous_level)


def _interrupted() -> int:
    print("transferkit: interrupted", file=sys.stderr)
    return 130


def error_line(error: BaseException, verbose: bool = False) -> str:
    """The message of `error` on one line, with its type when the type says something.

    Args:
        error: The exception.
        verbose: bool. Whether the traceback was printed already (otherwise an
            unexpected error's line says how to see it). Defaults to False.
    """
    message = " ".join(str(error).split())
    if isinstance(error, EXPECTED_ERRORS) and message:
        return message
    message = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if not verbose:
        message += " (run with --verbose for the traceback)"
    return message

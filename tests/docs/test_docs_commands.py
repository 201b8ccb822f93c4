"""Every command that README.md and the docs quote exists and takes the flags quoted.

A figure on these pages names the command that reproduces it (`python -m bench.X ...`,
`python examples/...`, `transferkit ...`). These tests find every such command (see
`docs_snippets.find_quoted_commands`) and check that the module or script exists, that
each quoted subcommand and flag is one its argument parser defines, and that a whole
command line quoted in a shell block parses. Nothing is run: the benchmarks and the
transferkit command give their parsers through `build_parser()`; a script without one
is asked for its `--help`, once.

    python -m pytest tests/docs/test_docs_commands.py
"""

import argparse
import functools
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from docs_snippets import QuotedCommand, find_quoted_commands

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
# Modules of our own whose commands are checked; others (pip, pytest) are not ours.
OWN_MODULES = re.compile(r"^(bench|transferkit)(\.|$)")

if str(ROOT) not in sys.path:  # `python -m bench.X` runs from the repository's root
    sys.path.insert(0, str(ROOT))


def _quoted():
    for page in PAGES:
        for command in find_quoted_commands(page.read_text()):
            yield f"{page.relative_to(ROOT)}:{command.line}", command


QUOTED = list(_quoted())


@functools.cache
def _help_options(script: Path) -> frozenset:
    """The option strings a script's `--help` lists."""
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{script} --help failed:\n{done.stderr[-2000:]}"
    return frozenset(FLAG.findall(done.stdout))


def _target(words: tuple[str, ...]):
    """`(what, parser or option strings or None, arguments)` for a quoted command.

    `parser` is None for commands that are not this repository's (pip, pytest).
    Raises AssertionError when the module or script does not exist.
    """
    if words[0] == "transferkit":
        from transferkit.cli import build_parser

        return "transferkit", build_parser(), words[1:]
    if words[0].startswith("python") and len(words) > 2 and words[1] == "-m":
        module = words[2]
        if not OWN_MODULES.match(module):
            return module, None, words[3:]
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"no module {module}"
        if spec.submodule_search_locations is not None:  # a package runs its __main__
            assert importlib.util.find_spec(f"{module}.__main__"), f"{module} has no __main__"
            module = f"{module}.__main__"
        if module.startswith("transferkit"):
            from transferkit.cli import build_parser

            return f"python -m {words[2]}", build_parser(), words[3:]
        builder = getattr(importlib.import_module(module), "build_parser", None)
        assert builder, f"{module} has no build_parser() to check its flags against"
        return f"python -m {module}", builder(), words[3:]
    if words[0].startswith("python") and len(words) > 1 and words[1].endswith(".py"):
        script = ROOT / words[1]
        assert script.is_file(), f"no script {words[1]} in the repository"
        return words[1], _help_options(script), words[2:]
    return words[0], None, words[1:]


def _subcommands(parser: argparse.ArgumentParser) -> dict:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def unknown_flags(parser, arguments) -> list[str]:
    """The quoted subcommands and flags that `parser` does not define, in order.

    `parser` is an `argparse.ArgumentParser` (a word naming one of its subcommands
    moves to that subcommand's parser) or a set of option strings. A placeholder in
    capitals (`COMMAND`, `DATA`) stands for any value.
    """
    unknown = []
    for word in arguments:
        options = parser if isinstance(parser, frozenset) else set(parser._option_string_actions)
        flags = FLAG.findall(word)
        if flags and word.startswith(("-", "[", "{", "|")):
            unknown += [flag for flag in flags if flag not in options]
            continue
        if isinstance(parser, argparse.ArgumentParser):
            choices = _subcommands(parser)
            if word in choices:
                parser = choices[word]
            elif choices and not word.isupper() and word == arguments[0]:
                unknown.append(word)  # a subcommand that does not exist
    return unknown


def test_the_pages_quote_enough_commands():
    # If the extraction broke, the checks below would pass on nothing.
    kinds = {"transferkit": 0, "bench": 0, "examples": 0}
    for _, command in QUOTED:
        words = " ".join(command.words)
        kinds["transferkit"] += words.startswith("transferkit ")
        kinds["bench"] += words.startswith("python -m bench.")
        kinds["examples"] += words.startswith("python examples/")
    assert kinds["transferkit"] >= 20 and kinds["bench"] >= 10 and kinds["examples"] >= 3, kinds


@pytest.mark.parametrize(
    "where, command", QUOTED, ids=[f"{where} {' '.join(c.words)}"[:90] for where, c in QUOTED]
)
def test_quoted_command_exists_and_takes_its_flags(where, command):
    try:
        name, parser, arguments = _target(command.words)
    except AssertionError as error:
        pytest.fail(f"{where}: `{' '.join(command.words)}`: {error}")
    if parser is None:
        return
    unknown = unknown_flags(parser, arguments)
    assert not unknown, f"{where}: `{' '.join(command.words)}`: {name} does not take {unknown}"
    if command.where == "bash" and isinstance(parser, argparse.ArgumentParser):
        try:
            parser.parse_args(list(arguments))
        except SystemExit as exit:  # argparse's way of refusing a command line
            assert exit.code == 0, f"{where}: `{' '.join(command.words)}` exits with {exit}"


def _measured_sections(text: str):
    """`(heading, body)` of each section whose heading starts with Measured or Results."""
    sections = re.split(r"^(#+ .*)$", text, flags=re.M)
    for heading, body in zip(sections[1::2], sections[2::2], strict=True):
        if re.match(r"#+ (Measured|Results)", heading):
            yield heading, body


def test_every_section_of_figures_names_the_command_that_reproduces_them():
    sections = [
        (page, heading, body)
        for page in PAGES
        for heading, body in _measured_sections(page.read_text())
    ]
    assert len(sections) >= 6
    for page, heading, body in sections:
        commands = [" ".join(c.words) for c in find_quoted_commands(body)]
        reproducing = [c for c in commands if re.match(r"python (-m bench\.|examples/)", c)]
        assert reproducing, f"{page.name}: '{heading}' quotes no command that reproduces it"


# === The checks themselves ===


def _parser():
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers()
    fit = commands.add_parser("fit")
    fit.add_argument("data")
    fit.add_argument("--epochs", type=int)
    return parser


@pytest.mark.parametrize(
    "arguments, unknown",
    [
        (["fit", "data/", "--epochs", "3"], []),
        (["-v", "fit", "--epochs=3"], []),
        (["COMMAND", "--help"], []),
        (["fit", "DATA", "[--epochs", "N]"], []),
        (["fit", "data/", "--epoch", "3"], ["--epoch"]),  # a flag that was renamed
        (["fit", "[--epochs", "N]", "[--seed", "N]"], ["--seed"]),
        (["tune", "data/"], ["tune"]),
        (["-v", "--epochs", "3"], ["--epochs"]),  # a subcommand's flag before it
    ],
)
def test_unknown_flags(arguments, unknown):
    assert unknown_flags(_parser(), arguments) == unknown


def test_a_quoted_flag_that_the_benchmark_no_longer_takes_is_reported(monkeypatch):
    import bench.tuning

    def without_compare_tuners():
        parser = argparse.ArgumentParser()
        parser.add_argument("--skip-plain", action="store_true")
        return parser

    monkeypatch.setattr(bench.tuning, "build_parser", without_compare_tuners)
    command = QuotedCommand(1, ("python", "-m", "bench.tuning", "--compare-tuners"), "inline")
    _, parser, arguments = _target(command.words)
    assert unknown_flags(parser, arguments) == ["--compare-tuners"]


def test_a_missing_module_or_script_is_reported():
    with pytest.raises(AssertionError, match="no module bench.nowhere"):
        _target(("python", "-m", "bench.nowhere"))
    with pytest.raises(AssertionError, match="no script examples/nowhere.py"):
        _target(("python", "examples/nowhere.py", "--epochs", "3"))


def test_find_quoted_commands():
    text = "\n".join(
        [
            "Run `python -m bench.tuning --trials 10`, or",
            "`transferkit fit data",
            "--out runs/a`; not `transferkit.cli` nor `--weights auto`.",
            "```bash",
            "python -m pip install -e . && python examples/x.py --seed 1  # a comment",
            "transferkit evaluate m.keras data --json > metrics.json",
            "transferkit fit data \\",
            "    --epochs 3",
            "```",
            "```text",
            "transferkit fit DATA [--seed N]",
            "                [--overwrite]",
            "$ transferkit fit nowhere --out x",
            "transferkit: error: No such file",
            "```",
        ]
    )
    found = [(c.line, " ".join(c.words), c.where) for c in find_quoted_commands(text)]
    assert found == [
        (1, "python -m bench.tuning --trials 10", "inline"),
        (2, "transferkit fit data --out runs/a", "inline"),
        (5, "python -m pip install -e .", "bash"),
        (5, "python examples/x.py --seed 1", "bash"),
        (6, "transferkit evaluate m.keras data --json", "bash"),
        (7, "transferkit fit data --epochs 3", "bash"),
        (11, "transferkit fit DATA [--seed N] [--overwrite]", "synopsis"),
        (13, "transferkit fit nowhere --out x", "bash"),
    ]

"""Finds the Python snippets of the documentation's Markdown pages.

A snippet is a fenced block opened with three backticks and `python`, at any
indentation (inside an admonition or a tab it is indented; it is dedented here).
A snippet that cannot run in the tests (it needs real pretrained weights, the
internet, or minutes of training) is preceded, on the line right above its
fence (blank lines allowed), by the marker

    <!-- skip: the reason, shown in the test report -->

Keep such snippets few: most should run on the tiny data the page creates.

A ```text block whose previous fenced block is a Python snippet (prose between them
allowed), unless it is a command's usage (`transferkit fit DATA [--seed N]`), shows
what that snippet prints: its `print` calls, then the value of its last line when that
line is an expression (as a notebook shows it). Its lines that start with
`transferkit: ` are log records, and must appear in the log in that order (a page may
show only some of them); every other line must be printed, and everything printed must
be shown. Within a line, `...` stands for any text; a line that is only `...` stands
for any number of lines.

A command's output is shown two ways: a ```bash block holding one `transferkit ...`
line, followed by a ```text block; or a ```text block that starts with
`$ transferkit ...` and continues with what it prints. The command runs (in the
page's working directory, after its snippets) and everything it writes to stdout and
stderr must match the block, line for line, with the same `...` wildcards.
"""

import ast
import contextlib
import dataclasses
import io
import logging
import re
import shlex
import textwrap
from pathlib import Path

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<info>[^`\n]*)$")
SKIP = re.compile(r"^\s*<!--\s*skip:\s*(?P<reason>.*?)\s*-->\s*$")
LOG_PREFIX = "transferkit: "


@dataclasses.dataclass(frozen=True)
class Snippet:
    """One fenced Python block: where it is, its code, and why it is skipped (or None)."""

    page: str
    line: int
    code: str
    skip_reason: str | None = None
    output: str | None = None  # the ```text block that shows what it prints
    output_line: int | None = None


def find_snippets(text: str, page: str = "<page>") -> list[Snippet]:
    """Returns the Python blocks of a Markdown text, in order."""
    lines = text.splitlines()
    snippets = []
    previous_language = None
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, ticks = match.group("indent"), match.group("ticks")
        language = match.group("info").strip().split(" ")[0].lower()
        end = index + 1
        closing = re.compile(rf"^{re.escape(indent)}{ticks}\s*$")
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        if end == len(lines):
            raise ValueError(f"{page}:{index + 1}: a code fence is never closed")
        body = textwrap.dedent(
            "\n".join(
                line[len(indent) :] if line.strip() else "" for line in lines[index + 1 : end]
            )
        )
        if language == "python":
            snippets.append(Snippet(page, index + 1, body + "\n", _skip_reason(lines, index)))
        elif language == "text" and previous_language == "python" and not _is_usage(body):
            snippets[-1] = dataclasses.replace(
                snippets[-1], output=body + "\n", output_line=index + 1
            )
        previous_language = language
        index = end + 1
    return snippets


def _is_usage(body: str) -> bool:
    """Whether a text block is a command's usage (`transferkit fit DATA [--seed N]`)."""
    return body.lstrip().startswith("transferkit ")


def _skip_reason(lines: list[str], fence_index: int) -> str | None:
    previous = fence_index - 1
    while previous >= 0 and not lines[previous].strip():
        previous -= 1
    if previous < 0:
        return None
    match = SKIP.match(lines[previous])
    return match.group("reason") if match else None


@dataclasses.dataclass(frozen=True)
class CommandOutput:
    """A `transferkit` command shown with its output, and the line of that output."""

    page: str
    line: int
    arguments: tuple[str, ...]
    output: str
    skip_reason: str | None = None


def find_command_outputs(text: str, page: str = "<page>") -> list[CommandOutput]:
    """The `transferkit` commands of a Markdown text that are shown with their output."""
    found = []
    lines = text.splitlines()
    previous = None  # (language, first line index, body lines) of the previous block
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, ticks = match.group("indent"), match.group("ticks")
        language = match.group("info").strip().split(" ")[0].lower()
        closing = re.compile(rf"^{re.escape(indent)}{ticks}\s*$")
        end = index + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        body = [line.strip() for line in lines[index + 1 : end]]
        if language == "text" and body and body[0].startswith("$ transferkit "):
            arguments = tuple(shlex.split(body[0][2:]))[1:]
            output = "\n".join(body[1:]) + "\n"
            skip = _skip_reason(lines, index)
            found.append(CommandOutput(page, index + 2, arguments, output, skip))
        elif (
            language == "text"
            and previous
            and previous[0] in SHELL_LANGUAGES
            and len(previous[2]) == 1
            and previous[2][0].startswith("transferkit ")
            and not _is_usage("\n".join(body))
        ):
            arguments = tuple(shlex.split(previous[2][0], comments=True))[1:]
            skip = _skip_reason(lines, previous[1])
            found.append(CommandOutput(page, index + 1, arguments, "\n".join(body) + "\n", skip))
        previous = (language, index, [line for line in body if line])
        index = end + 1
    return found


def run_command(arguments: tuple[str, ...]) -> list[str]:
    """Runs `transferkit ARGUMENTS` in this process; the lines it wrote to stdout and stderr."""
    from transferkit.cli import main

    written = io.StringIO()
    with contextlib.redirect_stdout(written), contextlib.redirect_stderr(written):
        main(list(arguments))
    return written.getvalue().splitlines()


def command_output_mismatch(expected: str, lines: list[str]) -> str | None:
    """None if `lines` are what the block `expected` shows, else what differs."""
    shown = [line.rstrip() for line in expected.strip("\n").splitlines()]
    if _lines_match(shown, [line.rstrip() for line in lines]):
        return None
    return "the page shows:\n" + "\n".join(shown) + "\nbut the command wrote:\n" + "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class QuotedCommand:
    """A command line quoted on a page: its words, and where it was quoted.

    `where` is `"bash"` (a line of a shell block, or a `$ ...` line of a text
    block: a whole command), `"synopsis"` (a usage line of a text block, such as
    `transferkit fit DATA [--seed N]`) or `"inline"` (a code span in the prose,
    which may quote only part of a command).
    """

    line: int
    words: tuple[str, ...]
    where: str


SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
COMMAND_SEPARATORS = ("&&", "||", ";", "|")
REDIRECTIONS = re.compile(r"^\d?(>>?|<)")
PROGRAMS = re.compile(r"^(python3?|transferkit)\s")


def _shell_commands(line: int, text: str, where: str) -> list[QuotedCommand]:
    """The commands of one shell line: split at `&&`, `|`, `;`, cut at redirections."""
    commands, words, redirected = [], [], False
    for word in [*shlex.split(text, comments=True), "&&"]:
        if word in COMMAND_SEPARATORS:
            if words:
                commands.append(QuotedCommand(line, tuple(words), where))
            words, redirected = [], False
        elif redirected or REDIRECTIONS.match(word):
            redirected = True  # `> metrics.json`: the rest is the shell's, not the command's
        else:
            words.append(word)
    return commands


def find_quoted_commands(text: str) -> list[QuotedCommand]:
    """Every `python ...` and `transferkit ...` command quoted in a Markdown text.

    In shell blocks, every line (a `\\` at the end continues it); in text blocks,
    `$ ...` lines and usage lines starting with `transferkit ` (indented lines
    continue them); in the prose, code spans that start with `python` or
    `transferkit` followed by a space.
    """
    commands = []
    lines = text.splitlines()
    prose = []  # the page with its fenced blocks blanked out, for the code spans
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            prose.append(lines[index])
            index += 1
            continue
        indent, ticks = match.group("indent"), match.group("ticks")
        language = match.group("info").strip().split(" ")[0].lower()
        closing = re.compile(rf"^{re.escape(indent)}{ticks}\s*$")
        end = index + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        block = [(number + 1, lines[number].strip()) for number in range(index + 1, end)]
        commands += _block_commands(block, language)
        prose += [""] * (min(end, len(lines) - 1) - index + 1)
        index = end + 1
    prose_text = "\n".join(prose)
    for span in re.finditer(r"(?<!`)`([^`]+)`(?!`)", prose_text):
        quoted = " ".join(span.group(1).split())
        if PROGRAMS.match(quoted):
            line = prose_text.count("\n", 0, span.start()) + 1
            commands += _shell_commands(line, quoted, "inline")
    return sorted(commands, key=lambda command: command.line)


def _block_commands(block: list[tuple[int, str]], language: str) -> list[QuotedCommand]:
    commands = []
    if language in SHELL_LANGUAGES:
        pending, first = "", None
        for number, line in block:
            line = line.removeprefix("$ ")
            first = first or number
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            commands += _shell_commands(first, pending + line, "bash")
            pending, first = "", None
    elif language == "text":
        synopsis = None
        for number, line in block + [(None, "")]:
            if synopsis and line and not PROGRAMS.match(line) and not line.startswith("$ "):
                synopsis = (synopsis[0], f"{synopsis[1]} {line}")  # an indented continuation
                continue
            if synopsis:
                words = tuple(synopsis[1].split())
                commands.append(QuotedCommand(synopsis[0], words, "synopsis"))
                synopsis = None
            if line.startswith("$ "):
                commands += _shell_commands(number, line[2:], "bash")
            elif line.startswith("transferkit "):
                synopsis = (number, line)
    return commands


def doc_pages(docs_dir: Path) -> list[Path]:
    """Every Markdown page of the site, in a stable order."""
    return sorted(docs_dir.rglob("*.md"))


@dataclasses.dataclass
class Output:
    """What a snippet printed (its `print` calls, then its last value) and logged."""

    printed: list[str]
    logged: list[str]


class _LogLines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.extend(LOG_PREFIX + line for line in record.getMessage().splitlines())


def run_snippet(snippet: Snippet, namespace: dict, filename: str) -> Output:
    """Runs a snippet in `namespace` and returns what it printed and logged.

    Only the snippet's own `print` calls count as printed (a `print` in the
    namespace writes to a buffer), so Keras's progress bars do not; the value of
    a last line that is an expression is printed after them, as its `repr`.
    """
    # Leading newlines make the line numbers of a traceback those of the page.
    tree = ast.parse("\n" * snippet.line + snippet.code, filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    printed = io.StringIO()

    def snippet_print(*args, file=None, **kwargs):
        print(*args, file=printed if file is None else file, **kwargs)

    namespace["print"] = snippet_print
    # transferkit sets its logger up on import, unless it already has a handler.
    from transferkit.utils.log import logger

    handler = _LogLines()
    logger.addHandler(handler)
    try:
        exec(compile(tree, filename, "exec"), namespace)
        value = eval(compile(last, filename, "eval"), namespace) if last else None
    finally:
        logger.removeHandler(handler)
    lines = printed.getvalue().splitlines()
    if value is not None:
        lines.extend(repr(value).splitlines())
    return Output(lines, handler.lines)


def _line_matches(expected: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual.rstrip()) is not None


def _lines_match(expected: list[str], actual: list[str]) -> bool:
    """Every line matches in order; a line that is only `...` takes any number of lines."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head.strip() == "...":
        return any(_lines_match(rest, actual[start:]) for start in range(len(actual) + 1))
    return bool(actual) and _line_matches(head, actual[0]) and _lines_match(rest, actual[1:])


def output_mismatch(expected: str, output: Output) -> str | None:
    """None if `output` is what the ```text block `expected` shows, else what differs."""
    lines = [line.rstrip() for line in expected.strip("\n").splitlines()]
    shown_logs = [line for line in lines if line.startswith(LOG_PREFIX)]
    shown_prints = [line for line in lines if not line.startswith(LOG_PREFIX)]
    problems = []
    logged = iter(output.logged)
    for line in shown_logs:
        if not any(_line_matches(line, actual) for actual in logged):
            problems.append(f"not logged (in this order): {line}")
            break
    if shown_prints and not _lines_match(shown_prints, output.printed):
        shown = "\n".join(shown_prints)
        printed = "\n".join(output.printed)
        problems.append(f"the page shows:\n{shown}\nbut the snippet printed:\n{printed}")
    if problems and output.logged:
        problems.append("the snippet logged:\n" + "\n".join(output.logged))
    return "\n".join(problems) or None

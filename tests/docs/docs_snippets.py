"""Finds the Python snippets of the documentation's Markdown pages.

A snippet is a fenced block opened with three backticks and `python`, at any
indentation (inside an admonition or a tab it is indented; it is dedented here).
A snippet that cannot run in the tests (it needs real pretrained weights, the
internet, or minutes of training) is preceded, on the line right above its
fence (blank lines allowed), by the marker

    <!-- skip: the reason, shown in the test report -->

Keep such snippets few: most should run on the tiny data the page creates.
"""

import dataclasses
import re
import shlex
import textwrap
from pathlib import Path

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<info>[^`\n]*)$")
SKIP = re.compile(r"^\s*<!--\s*skip:\s*(?P<reason>.*?)\s*-->\s*$")
RESULTS = re.compile(r"^<!-- RESULTS: (?P<name>[a-z_]+) -->$")


@dataclasses.dataclass(frozen=True)
class Snippet:
    """One fenced Python block: where it is, its code, and why it is skipped (or None)."""

    page: str
    line: int
    code: str
    skip_reason: str | None = None


def find_snippets(text: str, page: str = "<page>") -> list[Snippet]:
    """Returns the Python blocks of a Markdown text, in order."""
    lines = text.splitlines()
    snippets = []
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
        if language == "python":
            body = "\n".join(
                line[len(indent) :] if line.strip() else "" for line in lines[index + 1 : end]
            )
            snippets.append(
                Snippet(page, index + 1, textwrap.dedent(body) + "\n", _skip_reason(lines, index))
            )
        index = end + 1
    return snippets


def _skip_reason(lines: list[str], fence_index: int) -> str | None:
    previous = fence_index - 1
    while previous >= 0 and not lines[previous].strip():
        previous -= 1
    if previous < 0:
        return None
    match = SKIP.match(lines[previous])
    return match.group("reason") if match else None


def find_commands(text: str, program: str = "transferkit") -> list[tuple[int, list[str]]]:
    """`(line, arguments)` of each `program ...` command line in the ```bash blocks.

    Arguments stop at a comment, a pipe or a redirection.
    """
    commands = []
    lines = text.splitlines()
    in_bash = False
    for number, line in enumerate(lines, start=1):
        match = FENCE.match(line)
        if match:
            language = match.group("info").strip().lower()
            in_bash = not in_bash and language in ("bash", "sh", "shell")
            continue
        words = shlex.split(line, comments=True) if in_bash else []
        if words[:1] == [program]:
            cut = [i for i, word in enumerate(words) if word in ("|", ">", ">>", "&&", ";")]
            commands.append((number, words[1 : cut[0] if cut else len(words)]))
    return commands


def doc_pages(docs_dir: Path) -> list[Path]:
    """Every Markdown page of the site, in a stable order."""
    return sorted(docs_dir.rglob("*.md"))


def results_markers(text: str) -> list[str]:
    """The names of the `<!-- RESULTS: name -->` marker lines in a Markdown text."""
    return [m.group("name") for line in text.splitlines() if (m := RESULTS.match(line.strip()))]

"""Every measured figure a page quotes is one that a benchmark's results file holds.

The benchmarks write what they measured to `docs/results/<bench>.json` (see
`bench/common.py: write_results`): per run, the exact command, the date, the machine,
the run's settings (`setup`) and its figures. A page marks the passages that quote them:

    <!-- results: feature_cache -->
    Measured with `python -m bench.feature_cache --head-learning-rate 1e-3`: ...
    <!-- /results -->

Within such a block (several names may follow `results:`):

- every command of a named bench that the block quotes (`python -m bench.NAME ...`, or
  `python examples/...` for the reference example) must be the command of one of its
  stored runs, word for word (or the bare `python -m bench.NAME`, which names the bench
  and claims no run);
- every number outside code spans, code blocks and link targets must be a number of
  those runs (figures, settings, or the machine's core count), at the precision the
  page shows it: `0.880` is any value that rounds to 0.880, `19x` any that rounds to
  19, `12%` 0.12 or 12, `1.4e-5` a value that rounds to it, `7 min 34 s` 454 s; after
  "about", within 5%.

This file is both a MkDocs hook (a block that fails warns, and `mkdocs build --strict`
aborts) and the checker that `tests/docs/test_docs_results.py` runs on README.md and
every page.
"""

import dataclasses
import json
import logging
import math
import re
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.results")

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"

BLOCK = re.compile(
    r"<!--\s*results:\s*(?P<names>[\w\s.-]+?)\s*-->(?P<body>.*?)<!--\s*/results\s*-->", re.S
)
FENCE = re.compile(r"^[ \t]*(`{3,}).*?^[ \t]*\1[ \t]*$", re.S | re.M)
CODE_SPAN = re.compile(r"(?<!`)`((?:[^`\n]|\n(?![ \t]*\n))+)`(?!`)")
LINK_TARGET = re.compile(r"\]\([^)]*\)")
COMMENT = re.compile(r"<!--.*?-->", re.S)
DURATION = re.compile(r"(?<![\w.])(\d+) min (\d+) s\b")
NUMBER = re.compile(
    r"(?<![\w.\-/^])(?P<about>about )?"
    r"(?P<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:e[-+]?\d+)?)"
    r"(?P<unit>%|x(?![a-wyz]))?(?![\w.]*\d)"
)
OWN_COMMAND = re.compile(r"^python (-m bench\.[\w.]+|examples/\S+\.py)\b")
# Results files that the reference example's command writes (it is not under bench/).
EXAMPLES = {"examples/cats_vs_dogs/train.py": "reference_example"}


@dataclasses.dataclass(frozen=True)
class Figure:
    """One number quoted on a page: its text, value and where it is."""

    text: str
    value: float
    decimals: int  # digits after the point as shown (negative for 1e3-style values)
    percent: bool
    about: bool
    line: int


def load_results(directory: Path = RESULTS_DIR) -> dict:
    """`{bench name: record}` of every results file in `directory`."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def runs_of(record: dict) -> list[dict]:
    """A results file's runs (one file may hold several commands of one bench)."""
    return record.get("runs", [record])


def numbers_in(value) -> list[float]:
    """Every number in a nested structure of figures (numeric strings included)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [] if math.isnan(value) else [float(value)]
    if isinstance(value, str):
        try:
            return [float(value)]
        except ValueError:
            return []
    if isinstance(value, dict):
        return [n for item in value.values() for n in numbers_in(item)]
    if isinstance(value, (list, tuple)):
        return [n for item in value for n in numbers_in(item)]
    return []


def run_numbers(run: dict) -> list[float]:
    """The numbers a page may quote from one run: figures, settings, the core count."""
    return [
        *numbers_in(run.get("figures", {})),
        *numbers_in(run.get("setup", {})),
        *numbers_in({"cores": run.get("machine", {}).get("cores")}),
    ]


def _blank(match: re.Match) -> str:
    # Keeps the line count, so that figures keep their line numbers.
    return "\n" * match.group(0).count("\n")


def quoted_commands(text: str) -> list[str]:
    """The commands of this repository quoted in code spans and shell blocks."""
    prose = FENCE.sub(_blank, COMMENT.sub(_blank, text))
    found = [" ".join(span.split()) for span in CODE_SPAN.findall(prose)]
    for block in FENCE.finditer(text):
        found += [line.strip().removeprefix("$ ") for line in block.group(0).splitlines()[1:-1]]
    commands = []
    for command in found:
        for part in re.split(r"\s*(?:&&|;|\|)\s*", command.split("  #")[0]):
            if OWN_COMMAND.match(part):
                commands.append(part.strip())
    return commands


def bench_of(command: str) -> str:
    """The results name of a command: `python -m bench.X ...` -> `X`."""
    words = command.split()
    if words[1] == "-m":
        return words[2].removeprefix("bench.")
    return EXAMPLES.get(words[1], words[1])


def figures_in(text: str, first_line: int = 1) -> list[Figure]:
    """The numbers of a passage that are not code, link targets or comments."""
    prose = COMMENT.sub(_blank, text)
    prose = FENCE.sub(_blank, prose)
    prose = CODE_SPAN.sub(" ", prose)
    prose = LINK_TARGET.sub("]", prose)
    figures = []

    def line_of(position):
        return first_line + prose.count("\n", 0, position)

    for match in DURATION.finditer(prose):
        seconds = 60 * int(match.group(1)) + int(match.group(2))
        figures.append(Figure(match.group(0), seconds, 0, False, False, line_of(match.start())))
    prose = DURATION.sub(lambda m: " " * len(m.group(0)), prose)
    for match in NUMBER.finditer(prose):
        text_ = match.group("number")
        mantissa, _, exponent = text_.replace(",", "").partition("e")
        decimals = len(mantissa.partition(".")[2]) - (int(exponent) if exponent else 0)
        figures.append(
            Figure(
                text=(match.group("about") or "") + text_ + (match.group("unit") or ""),
                value=float(text_.replace(",", "")),
                decimals=decimals,
                percent=match.group("unit") == "%",
                about=bool(match.group("about")),
                line=line_of(match.start("number")),
            )
        )
    return sorted(figures, key=lambda figure: figure.line)


def matches(figure: Figure, value: float) -> bool:
    """Whether a stored value, shown as the page shows it, is the quoted figure."""
    candidates = [(figure.value, figure.decimals)]
    if figure.percent:
        candidates.append((figure.value / 100, figure.decimals + 2))
    for quoted, decimals in candidates:
        if figure.about:
            if math.isclose(value, quoted, rel_tol=0.05):
                return True
        elif abs(value - quoted) <= 0.5 * 10.0 ** (-decimals) * (1 + 1e-9) + 1e-12:
            return True
    return False


@dataclasses.dataclass
class Problem:
    line: int
    message: str


def check_text(text: str, results: dict | None = None) -> tuple[int, list[Problem]]:
    """Checks every results block of a page: `(figures checked, problems)`."""
    results = load_results() if results is None else results
    checked, problems = 0, []
    for block in BLOCK.finditer(text):
        first_line = text.count("\n", 0, block.start("body")) + 1
        names = block.group("names").split()
        unknown = [name for name in names if name not in results]
        if unknown:
            problems.append(Problem(first_line, f"no results file docs/results/{unknown}.json"))
            continue
        runs = {name: runs_of(results[name]) for name in names}
        for command in quoted_commands(block.group("body")):
            bench = bench_of(command)
            if bench not in runs:
                problems.append(
                    Problem(first_line, f"`{command}` is not a command of {names}'s results")
                )
                continue
            if command == f"python -m bench.{bench}":
                continue  # names the bench, claims no particular run
            same = [
                run
                for run in runs[bench]
                if command == run["command"] or command in run.get("same_as", [])
            ]
            if not same:
                stored = [run["command"] for run in runs[bench]]
                message = f"`{command}` is not a stored command of {bench}: {stored}"
                problems.append(Problem(first_line, message))
        allowed = [number for each in runs.values() for run in each for number in run_numbers(run)]
        for figure in figures_in(block.group("body"), first_line):
            checked += 1
            if not any(matches(figure, value) for value in allowed):
                problems.append(
                    Problem(figure.line, f"{figure.text} is not in the results of {names}")
                )
    return checked, problems


def on_page_markdown(markdown, page, config, files, **kwargs):
    _, problems = check_text(markdown, load_results(Path(config["docs_dir"]) / "results"))
    for problem in problems:
        log.warning(f"{page.file.src_uri}:{problem.line}: {problem.message}")
    return markdown

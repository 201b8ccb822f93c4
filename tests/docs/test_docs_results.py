"""Every measured figure README.md and the docs quote is in a benchmark's results file.

The benchmarks store their runs in `docs/results/<bench>.json`; pages mark the passages
that quote them with `<!-- results: NAME -->` ... `<!-- /results -->`, and
`docs/hooks/results.py` checks each such passage (the docs build runs the same check).

    python -m pytest tests/docs/test_docs_results.py
"""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_spec = importlib.util.spec_from_file_location("results_hook", ROOT / "docs/hooks/results.py")
results = importlib.util.module_from_spec(_spec)
sys.modules["results_hook"] = results
_spec.loader.exec_module(results)

RESULTS = results.load_results()
PAGE_IDS = [str(page.relative_to(ROOT)) for page in PAGES]

if str(ROOT) not in sys.path:  # `python -m bench.X` runs from the repository's root
    sys.path.insert(0, str(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_quoted_figure_is_in_its_benchmarks_results(page):
    _, problems = results.check_text(page.read_text(), RESULTS)
    assert not problems, "\n".join(
        f"{page.relative_to(ROOT)}:{p.line}: {p.message}" for p in problems
    )


def test_the_check_covers_the_measured_figures():
    counted = {
        str(page.relative_to(ROOT)): results.check_text(page.read_text(), RESULTS)[0]
        for page in PAGES
    }
    # If the blocks or the extraction broke, the check above would pass on nothing.
    assert sum(counted.values()) >= 300, counted
    assert counted["README.md"] >= 100, counted


def _sections(text: str):
    parts = re.split(r"^(#+ .*)$", text, flags=re.M)
    return zip(parts[1::2], parts[2::2], strict=True)


def test_every_section_of_figures_is_checked():
    unchecked = [
        f"{page.relative_to(ROOT)}: {heading}"
        for page in PAGES
        for heading, body in _sections(page.read_text())
        if re.match(r"#+ (Measured|Results)", heading) and not results.BLOCK.search(body)
    ]
    assert not unchecked, "these sections quote figures outside a results block"


def _paragraphs_outside_blocks(text: str):
    text = results.BLOCK.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    text = results.FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    line = 1
    for paragraph in re.split(r"\n\s*\n", text):
        yield line, paragraph
        line += paragraph.count("\n") + 2


def test_a_paragraph_that_names_a_measuring_run_is_checked():
    # A paragraph that quotes a benchmark run with its arguments, and numbers with
    # decimals, units or "x", is quoting that run's figures: it must be in a block.
    loose = []
    for page in PAGES:
        for line, paragraph in _paragraphs_outside_blocks(page.read_text()):
            runs = [
                command
                for command in results.quoted_commands(paragraph)
                if command.startswith("python -m bench.") and len(command.split()) > 3
            ]
            measured = [
                figure
                for figure in results.figures_in(paragraph)
                if figure.decimals > 0 or figure.text.endswith(("x", "%"))
            ]
            if runs and measured:
                loose.append(f"{page.relative_to(ROOT)}:{line}: {runs[0]}")
    assert not loose, "put these passages in a results block:\n" + "\n".join(loose)


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_each_results_file_says_how_when_and_where(name):
    record = RESULTS[name]
    assert record["bench"] == name
    for run in results.runs_of(record):
        assert set(run) >= {"command", "date", "machine", "setup", "figures"}, run.keys()
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", run["date"]), run["date"]
        assert run["machine"].get("cores"), run["machine"]
        assert results.numbers_in(run["figures"]), f"{name}: a run with no figures"
        if run.get("recorded_from_earlier_run"):
            # Copied from the pages of an earlier run, not written by the bench: says so.
            assert run.get("note"), f"{name}: say where the recorded figures come from"
        assert results.bench_of(run["command"]) == name, run["command"]


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_each_stored_command_is_one_its_bench_takes(name):
    import importlib

    for run in results.runs_of(RESULTS[name]):
        words = run["command"].split()
        if words[1] != "-m":
            assert (ROOT / words[1]).is_file(), run["command"]
            continue
        parser = importlib.import_module(words[2]).build_parser()
        parser.parse_args(words[3:])  # exits (fails the test) on a flag it does not take


def test_the_measured_speed_ups_that_auto_reads_are_in_the_precision_results():
    # `precision="auto"` reads these figures on a CPU: they are measured figures too.
    from transferkit.precision import CPU_BFLOAT16_SPEEDUP

    figure = results.figures_in
    stored = [
        n
        for bench in ("precision", "backbones")
        for run in results.runs_of(RESULTS[bench])
        for n in results.run_numbers(run)
    ]
    for family, speedup in CPU_BFLOAT16_SPEEDUP.items():
        (quoted,) = figure(f"{speedup}x")
        assert any(results.matches(quoted, value) for value in stored), (family, speedup)


# === The check itself ===

RECORD = {
    "bench": "feature_cache",
    "runs": [
        {
            "command": "python -m bench.feature_cache --head-learning-rate 1e-3",
            "date": "2026-12-08",
            "machine": {"cores": 2},
            "setup": {"train_images": 2000},
            "figures": {"cached-20": {"seconds": 44.87, "test_accuracy": 0.8795}, "ratio": 16.6},
        },
        {
            "command": "python -m bench.feature_cache --train-images 4000",
            "date": "2026-12-08",
            "machine": {"cores": 2},
            "setup": {"train_images": 4000},
            "figures": {"cached-20": {"seconds": 80.0}},
        },
    ],
}


def _check(body: str, names: str = "feature_cache"):
    text = f"intro 1.23\n<!-- results: {names} -->\n{body}\n<!-- /results -->\n"
    return results.check_text(text, {"feature_cache": RECORD})


def test_figures_that_the_results_hold_pass_at_the_precision_shown():
    checked, problems = _check(
        "With `python -m bench.feature_cache --head-learning-rate 1e-3` on 2 cores and "
        "2,000 images: 44.9 s, 45 s, 0.880, 0.8795, 88% of them, 17x, about 44 s "
        "([link](page.md#x-1-2)), `code 123.4`."
    )
    assert problems == [] and checked == 9


def test_a_figure_the_results_do_not_hold_is_reported_with_its_line():
    _, problems = _check("first line\n20 head epochs took 19.7 s, 16.6x")
    assert [(p.line, p.message) for p in problems] == [
        (4, "20 is not in the results of ['feature_cache']"),
        (4, "19.7 is not in the results of ['feature_cache']"),
    ]


def test_figures_of_any_run_of_the_bench_count():
    # A passage may set one run against another (80 s is the 4,000-image run's).
    _, problems = _check("`python -m bench.feature_cache --head-learning-rate 1e-3`: 80 s")
    assert problems == []


def test_a_command_that_is_not_the_stored_one_is_reported():
    _, problems = _check("`python -m bench.feature_cache --head-learning-rate 1e-2`: 44.9 s")
    assert "is not a stored command of feature_cache" in problems[0].message
    _, problems = _check("`python -m bench.schedules --seed 1`: 44.9 s")
    assert "is not a command of ['feature_cache']'s results" in problems[0].message
    _, problems = _check("44.9 s", names="nowhere")
    assert "no results file" in problems[0].message


def test_figures_in_reads_durations_percentages_and_scientific_notation():
    figures = results.figures_in("7 min 34 s, 1.4e-5, 99.9%, 1.59x, 1,000 and ResNet50 float16")
    assert [(f.text, f.value, f.decimals) for f in figures] == [
        ("7 min 34 s", 454, 0),
        ("1.4e-5", 1.4e-5, 6),
        ("99.9%", 99.9, 1),
        ("1.59x", 1.59, 2),
        ("1,000", 1000, 0),
    ]
    assert results.matches(figures[2], 0.9991) and not results.matches(figures[2], 0.9984)
    assert results.matches(figures[1], 1.43e-5) and not results.matches(figures[1], 1.5e-5)

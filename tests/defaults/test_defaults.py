"""Every recipe default is defined once: docstrings, the tuner and the docs agree with it."""

import ast
import inspect
import re

import pytest

import transferkit as tk
from transferkit import defaults
from transferkit.tuning.space import default_hyperparameters

# "name: type. Meaning... Defaults to `VALUE`." in a Google-style Args section.
ARGUMENT = re.compile(r"^ {4}(\w+): (.*?)(?=^ {4}\w+: |\Z)", re.M | re.S)
DEFAULT = re.compile(r"Defaults to `([^`]+)`")


def _public_callables():
    for name in tk.__all__:
        obj = getattr(tk, name)
        if inspect.isclass(obj):
            yield name, obj
            for attribute, member in vars(obj).items():
                if inspect.isfunction(member) and not attribute.startswith("_"):
                    yield f"{name}.{attribute}", member
        elif inspect.isfunction(obj):
            yield name, obj


def _documented_defaults(function):
    doc = inspect.getdoc(function) or ""
    args = doc.split("Args:", 1)[1] if "Args:" in doc else ""
    args = re.split(r"^(Returns|Raises|Example|Note|Yields):", args, flags=re.M)[0]
    for name, text in ARGUMENT.findall(args):
        match = DEFAULT.search(" ".join(text.split()))
        if match:
            yield name, match.group(1)


CHECKED = [
    (f"{owner}({name})", default, written)
    for owner, function in _public_callables()
    for name, written in _documented_defaults(function)
    for default in [
        inspect.signature(function).parameters.get(name, inspect.Parameter.empty).default
        if name in inspect.signature(function).parameters
        else inspect.Parameter.empty
    ]
]


def test_the_check_reads_many_docstrings():
    # If the docstring format changed, the check below would pass vacuously.
    assert len(CHECKED) > 60
    owners = {name.split("(")[0] for name, _, _ in CHECKED}
    assert {"FineTuner", "FreezeUnfreeze", "ClassificationHead", "FineTuner.fit"} <= owners


@pytest.mark.parametrize("where, default, written", CHECKED, ids=[c[0] for c in CHECKED])
def test_docstring_defaults_are_the_signatures(where, default, written):
    if default is inspect.Parameter.empty:
        pytest.fail(f"{where}: the docstring gives a default, the signature has none")
    try:
        value = ast.literal_eval(written)
    except (ValueError, SyntaxError):
        return  # prose such as `ClassificationHead()` or "the backbone's"
    if isinstance(value, float) or isinstance(default, float):
        assert value == pytest.approx(default), f"{where}: docstring says {written}"
    else:
        as_list = list if isinstance(default, tuple) else (lambda same: same)
        assert as_list(value) == as_list(default), f"{where}: docstring says {written}"


def test_the_signatures_read_the_defaults_module():
    freeze_unfreeze = inspect.signature(tk.FreezeUnfreeze).parameters
    assert freeze_unfreeze["learning_rate"].default == defaults.LEARNING_RATE
    assert freeze_unfreeze["fine_tune_learning_rate"].default == defaults.FINE_TUNE_LEARNING_RATE
    assert freeze_unfreeze["lowest_block_multiplier"].default == defaults.LOWEST_BLOCK_MULTIPLIER
    assert freeze_unfreeze["warmup"].default == defaults.WARMUP
    assert freeze_unfreeze["frozen_epochs"].default == defaults.FROZEN_EPOCHS
    assert inspect.signature(tk.ClassificationHead).parameters["dropout"].default == (
        defaults.DROPOUT
    )
    assert inspect.signature(tk.FineTuner.fit).parameters["epochs"].default == defaults.EPOCHS


def test_the_tuners_default_trial_is_the_default_recipe():
    space = default_hyperparameters(epochs=5)
    assert space["learning_rate"].default == defaults.LEARNING_RATE
    assert space["fine_tune_learning_rate"].default == defaults.FINE_TUNE_LEARNING_RATE
    assert space["dropout"].default == defaults.DROPOUT
    assert space["frozen_epochs"].default == defaults.FROZEN_EPOCHS


def test_the_hypermodels_table_of_defaults_is_the_space():
    doc = inspect.getdoc(tk.FineTunerHyperModel)
    table = dict(re.findall(r"^\| `(\w+)` \| `([^`]+)`", doc, re.M))
    space = default_hyperparameters(epochs=5)
    assert set(table) >= {"learning_rate", "fine_tune_learning_rate", "dropout", "frozen_epochs"}
    for name, written in table.items():
        if name in space:
            assert ast.literal_eval(written) == pytest.approx(space[name].default), name


def test_the_docs_table_of_schedule_defaults_is_the_code():
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "guide" / "schedules.md").read_text()
    table = dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| `([^`]+)` \|$", page, re.M))
    expected = {
        "learning_rate": defaults.LEARNING_RATE,
        "fine_tune_learning_rate": defaults.FINE_TUNE_LEARNING_RATE,
        "lowest_block_multiplier": defaults.LOWEST_BLOCK_MULTIPLIER,
        "warmup": defaults.WARMUP,
        "train_bn": False,
        "frozen_epochs": defaults.FROZEN_EPOCHS,
    }
    assert set(table) >= set(expected), "the defaults table lost a row"
    for name, value in expected.items():
        assert ast.literal_eval(table[name]) == pytest.approx(value), name


def test_the_command_lines_help_states_the_defaults():
    from transferkit.cli import build_parser

    subparsers = build_parser()._subparsers._group_actions[0].choices
    fit_help = " ".join(subparsers["fit"].format_help().split())
    assert f"frozen (default: {defaults.LEARNING_RATE:g})" in fit_help
    assert f"lower rates (default: {defaults.FINE_TUNE_LEARNING_RATE:g})" in fit_help
    assert f"gradual_unfreeze (default: {defaults.FROZEN_EPOCHS})" in fit_help
    assert f"(default: {defaults.BACKBONE})" in fit_help
    assert subparsers["fit"].get_default("epochs") == defaults.EPOCHS
    assert subparsers["tune"].get_default("batch_size") == defaults.BATCH_SIZE

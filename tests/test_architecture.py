"""The layout shows the layers: imports point down, read from the source with `ast`.

Lower packages never import the composer (`transferkit.finetuner`), and the
packages' module-level imports form no cycle. An import inside a function is a
thin entry point (as Keras's `Model.export` imports its export package when
called): it may point up, but never at the composer.
"""

import ast
import graphlib
from pathlib import Path

import transferkit

PACKAGE = Path(transferkit.__file__).parent
# Everything the composer builds on; none of it may know the composer.
BELOW_THE_COMPOSER = [
    "backbones",
    "data",
    "evaluation",
    "export",
    "features",
    "interpret",
    "layers",
    "models",
    "plots",
    "schedules",
    "training",
]


def imports(path: Path):
    """`(module imported, at module level?)` for every transferkit import in `path`."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "transferkit":  # `from transferkit import finetuner`
                names += [f"transferkit.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("transferkit."):
                yield name, id(node) in top_level


def package_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def test_nothing_below_the_composer_imports_it():
    offenders = []
    for package in BELOW_THE_COMPOSER:
        for path in sorted((PACKAGE / package).rglob("*.py")):
            for name, _ in imports(path):
                if name == "transferkit.finetuner" or name.startswith("transferkit.finetuner."):
                    offenders.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert offenders == []


def test_the_packages_module_level_imports_form_no_cycle():
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        if path.parent == PACKAGE:
            continue  # transferkit/__init__.py re-exports everything
        package = package_of(path)
        graph.setdefault(package, set())
        for name, top_level in imports(path):
            imported = name.split(".")[1]
            if top_level and imported != package:
                graph[package].add(imported)
    order = list(graph_order(graph))
    assert order.index("finetuner") > order.index("training") > order.index("models")


def graph_order(graph):
    """The packages, lowest first; raises `graphlib.CycleError` naming a cycle."""
    return graphlib.TopologicalSorter(graph).static_order()


def test_the_check_finds_a_cycle():
    try:
        list(graph_order({"a": {"b"}, "b": {"a"}}))
    except graphlib.CycleError as error:
        assert "a" in str(error) and "b" in str(error)
    else:
        raise AssertionError("a cycle went unnoticed")

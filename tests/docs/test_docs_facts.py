"""What README.md and the API reference say about the package itself stays true."""

import pkgutil
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_layout_lists_every_module_of_the_package():
    import transferkit

    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1]
    listed = set(re.findall(r"^  (\w+)(?:/|\.py)\s", layout, flags=re.M))
    modules = {info.name for info in pkgutil.iter_modules(transferkit.__path__)}
    assert modules - listed == set(), "README's Layout omits these"
    assert listed - modules == set(), "README's Layout lists what the package does not have"


def test_every_public_constant_is_named_on_the_reference_index():
    import transferkit

    index = (ROOT / "docs" / "reference" / "index.md").read_text()
    modules = {"": transferkit}
    for name in transferkit.__all__:
        value = getattr(transferkit, name)
        if isinstance(value, type(transferkit)):
            modules[f"{name}."] = value
    missing = [
        f"{prefix}{name}"
        for prefix, module in modules.items()
        for name in getattr(module, "__all__", [])
        if not callable(getattr(module, name))
        and not isinstance(getattr(module, name), type(transferkit))
        and f"`{prefix}{name}`" not in index
    ]
    assert not missing, f"name these in docs/reference/index.md: {missing}"


def test_docstrings_and_comments_cite_only_files_the_repository_has():
    cited = []
    for folder in ("transferkit", "bench", "examples"):
        for source in sorted((ROOT / folder).rglob("*.py")):
            for number, line in enumerate(source.read_text().splitlines(), start=1):
                for path in re.findall(r"(?<![\w./-])([\w./-]+\.(?:py|md))\b", line):
                    if not any((base / path).exists() for base in (ROOT, source.parent)):
                        cited.append(f"{source.relative_to(ROOT)}:{number}: {path}")
    assert not cited, "these files do not exist:\n" + "\n".join(cited)

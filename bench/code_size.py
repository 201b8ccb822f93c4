"""How large the composer is: code lines of a class and its methods, counted with `ast`.

Code lines are the lines a class's or method's statements span, less its
docstring, blank lines and comment-only lines.

    python -m bench.code_size                       # transferkit's FineTuner
    python -m bench.code_size transferkit/training/trainer.py Trainer
"""

import argparse
import ast
import io
import tokenize
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[1] / "transferkit/finetuner/finetuner.py"


def code_lines(source: str, node: ast.AST) -> int:
    """Lines of `node` holding code: not blank, not only a comment, not its docstrings."""
    lines = set(range(node.lineno, node.end_lineno + 1))
    for inner in ast.walk(node):
        body = getattr(inner, "body", None)
        if (
            isinstance(inner, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            lines -= set(range(body[0].lineno, body[0].end_lineno + 1))
    text = source.splitlines()
    lines = {number for number in lines if text[number - 1].strip()}
    comments = {
        token.start[0]
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT and text[token.start[0] - 1].strip().startswith("#")
    }
    return len(lines - comments)


def measure(path: Path, class_name: str) -> dict:
    source = path.read_text()
    tree = ast.parse(source)
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    methods = {
        n.name: code_lines(source, n)
        for n in cls.body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    return {"class": code_lines(source, cls), "methods": methods}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("class_name", nargs="?", default="FineTuner")
    args = parser.parse_args()
    figures = measure(args.path, args.class_name)
    methods = figures["methods"]
    longest = max(methods, key=methods.get)
    print(f"{args.class_name}: {figures['class']} code lines, {len(methods)} methods")
    fit = methods.get("fit", 0)
    print(f"fit: {fit} code lines; longest method: {longest} ({methods[longest]})")
    for name, count in sorted(methods.items(), key=lambda item: -item[1])[:8]:
        print(f"  {name:28s} {count}")


if __name__ == "__main__":
    main()

"""Fail when a module of the package grows past its line limit or a function past its own.

The limits and the short allow-list of exceptions live in ``pyproject.toml`` under
``[tool.wamm.sizes]``; ``make lint`` runs this script. A function's length counts from its ``def``
line to its last line, decorators and docstring included.
"""

from __future__ import annotations

import ast
import pathlib
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "airflow_provider_wamm"


def _limits() -> tuple[int, int, dict[str, str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    sizes = config["tool"]["wamm"]["sizes"]
    return int(sizes["max_module_lines"]), int(sizes["max_function_lines"]), dict(sizes.get("allow", {}))


def _functions(tree: ast.AST) -> list[tuple[str, int, int]]:
    """(qualified name, first line, length) of every function, methods as ``Class.method``."""
    found: list[tuple[str, int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                found.append((name, child.lineno, (child.end_lineno or child.lineno) - child.lineno + 1))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def problems(package: pathlib.Path = PACKAGE) -> list[str]:
    """Every module and function of ``package`` over its limit and not on the allow-list."""
    max_module, max_function, allow = _limits()
    out: list[str] = []
    seen: set[str] = set()
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).as_posix()
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > max_module and rel not in allow:
            out.append(f"{rel}: {lines} lines (limit {max_module}): split it by job")
        for name, line, length in _functions(ast.parse(text, filename=rel)):
            key = f"{rel}::{name}"
            if length <= max_function:
                continue
            seen.add(key)
            if key not in allow:
                out.append(f"{rel}:{line} {name}: {length} lines (limit {max_function}): split it")
    stale = sorted(k for k in allow if "::" in k and k not in seen)
    out += [f"allow-list entry {k!r} is no longer needed: remove it from pyproject.toml" for k in stale]
    return out


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

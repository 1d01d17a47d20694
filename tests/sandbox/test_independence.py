"""The sandbox stays a second reading of Meta's rules: what it imports, and how its modules depend."""

from __future__ import annotations

import ast
import pathlib

import airflow_provider_wamm.sandbox as sandbox_package

PACKAGE = "airflow_provider_wamm.sandbox"
#: What the sandbox may take from the rest of the provider: data and shared mechanics, no validation.
ALLOWED_OUTSIDE = {"airflow_provider_wamm.graph.errors", "airflow_provider_wamm.webhooks.signature"}


def _imports() -> dict[str, list[tuple[str, list[str]]]]:
    """Per sandbox module: every imported module with the names taken from it (TYPE_CHECKING too)."""
    root = pathlib.Path(sandbox_package.__file__).parent
    found: dict[str, list[tuple[str, list[str]]]] = {}
    for path in sorted(root.glob("*.py")):
        name = PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"
        entries: list[tuple[str, list[str]]] = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                entries.extend((alias.name, []) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [alias.name for alias in node.names]
                if node.module == PACKAGE:  # ``from airflow_provider_wamm.sandbox import admin``
                    entries.extend((f"{PACKAGE}.{n}", []) for n in names)
                else:
                    entries.append((node.module, names))
        found[name] = entries
    return found


def test_it_imports_no_airflow_and_no_payload_validation() -> None:
    for module, entries in _imports().items():
        for imported, _names in entries:
            assert imported.split(".")[0] != "airflow", (module, imported)
            if imported.startswith("airflow_provider_wamm.") and not imported.startswith(PACKAGE):
                assert imported in ALLOWED_OUTSIDE, (module, imported)


def test_its_modules_import_no_private_names_from_each_other() -> None:
    for module, entries in _imports().items():
        for imported, names in entries:
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, (module, imported, private)


def test_its_modules_have_no_import_cycle() -> None:
    graph = {
        module: {imp for imp, _ in entries if imp.startswith(PACKAGE + ".")}
        for module, entries in _imports().items()
        if module != PACKAGE  # the package only re-exports
    }
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for dependency in graph.get(module, ()):
            visit(dependency, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())

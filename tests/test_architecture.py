"""The layering and the size limits hold for the whole package, and the checks would notice a breach."""

from __future__ import annotations

import ast
import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "airflow_provider_wamm"

#: The layers of DESIGN.md, from the wire up: a module may import its own layer and those above it.
LAYER_RANK = {
    "graph": 1,
    "campaign": 2,
    "hooks": 3,
    "operators": 3,
    "sensors": 3,
    "triggers": 3,
    "webhooks": 4,
    "sandbox": 5,
}
#: Layers that must never import Airflow (ruff's banned-api says the same at lint time).
AIRFLOW_FREE = ("graph", "campaign", "sandbox")
#: The sandbox is a second, independent reading of Meta's rules: it may not reuse the rules it checks.
SANDBOX_MAY_NOT_IMPORT = (
    "airflow_provider_wamm.graph.payload",
    "airflow_provider_wamm.graph.builders",
    "airflow_provider_wamm.graph.validation",
    "airflow_provider_wamm.graph.limits",
    "airflow_provider_wamm.graph.templates",
)


def _imports(path: pathlib.Path) -> list[str]:
    """Absolute module names imported anywhere in ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = parts if path.name == "__init__.py" else parts[:-1]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) > 1 and parts[0] == "airflow_provider_wamm" and parts[1] in LAYER_RANK:
        return parts[1]
    return None


def _violations(own: str, names: list[str]) -> list[str]:
    """What breaks the layering among ``names`` imported by a module of layer ``own``."""
    out = []
    for name in names:
        other = _layer(name)
        if other is not None and LAYER_RANK[other] > LAYER_RANK[own]:
            out.append(f"{own} imports {name} ({other}, a lower layer)")
        if own in AIRFLOW_FREE and (name == "airflow" or name.startswith("airflow.")):
            out.append(f"{own} imports {name} (Airflow)")
        if own == "sandbox" and name.startswith(SANDBOX_MAY_NOT_IMPORT):
            out.append(f"sandbox imports {name} (the rules it checks)")
    return out


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if _layer(".".join(p.relative_to(ROOT).parts)))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_each_module_imports_only_its_own_layer_and_those_above(path: pathlib.Path) -> None:
    own = _layer(".".join(path.relative_to(ROOT).with_suffix("").parts))
    assert own is not None
    assert _violations(own, _imports(path)) == []


def test_the_layer_check_sees_a_breach() -> None:
    assert len(_violations("campaign", ["airflow_provider_wamm.hooks.whatsapp", "airflow.sdk"])) == 2
    assert len(_violations("sandbox", ["airflow_provider_wamm.graph.validation"])) == 1
    assert _violations("webhooks", ["airflow_provider_wamm.campaign.ledger", "airflow.plugins_manager"]) == []
    assert "airflow_provider_wamm.campaign.ledger.records" in _imports(
        PACKAGE / "campaign" / "ledger" / "facade.py"
    )


def _check_sizes_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("check_sizes", ROOT / "tools" / "check_sizes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_module_or_function_of_the_package_is_over_its_limit() -> None:
    assert _check_sizes_module().problems() == []


def test_the_size_check_sees_a_long_module_and_a_long_function(tmp_path: pathlib.Path) -> None:
    package = tmp_path / "airflow_provider_wamm"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(70))
    (package / "long.py").write_text("def too_long():\n" + body + "\n" + "\n" * 600)
    found = _check_sizes_module().problems(package)
    assert any("long.py:" in line and "lines (limit 600)" in line for line in found), found
    assert any("too_long: 71 lines" in line for line in found), found

"""The documentation covers the code: every module, public class and parameter, every error code.

Fast checks read the Markdown sources and the code; the full Sphinx build (warnings as errors) is
``make docs``, and a slow test here builds the site and looks for every public class in the output.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import airflow_provider_wamm
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.report import CampaignReport
from airflow_provider_wamm.campaign.result import CampaignResult
from airflow_provider_wamm.graph.errors import (
    HALT_CODES,
    PAIR_LIMIT_CODES,
    RECIPIENT_CODES,
    RETRY_CODES,
    THROTTLE_CODES,
)
from airflow_provider_wamm.graph.payload import build_marketing_message
from airflow_provider_wamm.operators.marketing import CAMPAIGN_OPTIONS, MarketingMessageOperator
from airflow_provider_wamm.sensors.responses import MarketingResponsesSensor

DOCS = Path(__file__).resolve().parents[1] / "docs"
AUTOMODULE_RE = re.compile(r"^\.\. automodule:: (\S+)\s*$", re.M)
PYTHON_BLOCK_RE = re.compile(r"^(?P<indent>[ \t]*)```python\n(?P<code>.*?)^(?P=indent)```", re.M | re.S)


def _public_modules() -> Iterator[ModuleType]:
    """Every importable module of the package whose dotted name has no private part."""
    yield airflow_provider_wamm
    for info in pkgutil.walk_packages(airflow_provider_wamm.__path__, "airflow_provider_wamm."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        yield importlib.import_module(info.name)


def _public_classes(module: ModuleType) -> list[type]:
    return [
        obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj) and obj.__module__ == module.__name__ and not name.startswith("_")
    ]


def _automodules() -> set[str]:
    return set(AUTOMODULE_RE.findall((DOCS / "api.md").read_text(encoding="utf-8")))


def _init_params(cls: type) -> list[str]:
    signature = inspect.signature(cls.__init__)
    return [
        name
        for name, p in signature.parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]


def _docstring_params(cls: type) -> set[str]:
    return set(re.findall(r":param (\w+):", cls.__doc__ or ""))


def _backticked(page: str) -> set[str]:
    return set(re.findall(r"`([^`\s]+)`", (DOCS / page).read_text(encoding="utf-8")))


def _table_rows(page: str) -> set[str]:
    """Names in the first column of the page's tables (``| `name` | ...``)."""
    return set(re.findall(r"^\| `(\w+)` \|", (DOCS / page).read_text(encoding="utf-8"), re.M))


# -- the API reference ------------------------------------------------------------------------------


def test_every_public_module_has_an_automodule_directive() -> None:
    documented = _automodules()
    missing = sorted(m.__name__ for m in _public_modules() if m.__name__ not in documented)
    if airflow_provider_wamm.__name__ in missing:  # the root package only holds the version
        missing.remove(airflow_provider_wamm.__name__)
    assert not missing, f"add these modules to docs/api.md: {missing}"


def test_every_automodule_directive_names_a_module() -> None:
    for name in sorted(_automodules()):
        importlib.import_module(name)  # raises for a renamed or removed module


def test_autodoc_lists_every_public_name_a_module_defines() -> None:
    # With ignore-module-all, automodule documents every public member *defined* in the module,
    # whatever its __all__ says; without it a class missing from __all__ would silently vanish.
    conf = (DOCS / "conf.py").read_text(encoding="utf-8")
    assert re.search(r'"ignore-module-all":\s*True', conf)
    assert re.search(r'"members":\s*True', conf)


def test_every_public_class_has_its_own_docstring() -> None:
    # autodoc skips members without a docstring (no undoc-members), so an undocumented class would
    # be missing from the reference.
    undocumented = [
        f"{module.__name__}.{cls.__name__}"
        for module in _public_modules()
        for cls in _public_classes(module)
        if not (vars(cls).get("__doc__") or "").strip()
    ]
    assert not undocumented, f"public classes without a docstring: {undocumented}"


# -- the operator and sensor pages ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "page"),
    [(MarketingMessageOperator, "operator.md"), (MarketingResponsesSensor, "sensor.md")],
    ids=["operator", "sensor"],
)
def test_every_init_parameter_is_documented(cls: type, page: str) -> None:
    params = _init_params(cls)
    assert len(params) > 5
    undocumented = [p for p in params if p not in _docstring_params(cls)]
    assert not undocumented, f"{cls.__name__} docstring lacks :param: for {undocumented}"
    not_on_page = [p for p in params if p not in _table_rows(page)]
    assert not not_on_page, f"the parameter tables of docs/{page} lack {not_on_page}"
    stale = sorted(_docstring_params(cls) - set(params))
    assert not stale, f"{cls.__name__} documents parameters it does not take: {stale}"


def test_operator_page_lists_every_campaign_option() -> None:
    missing = sorted(CAMPAIGN_OPTIONS - _backticked("operator.md"))
    assert not missing, f"docs/operator.md does not mention campaign_options {missing}"


def test_operator_page_lists_every_xcom_key() -> None:
    keys = set(CampaignResult(campaign_id="c").to_dict())
    missing = sorted(keys - _backticked("operator.md"))
    assert not missing, f"docs/operator.md does not describe XCom keys {missing}"


def test_sensor_page_lists_every_report_key() -> None:
    keys = {f.name for f in dataclasses.fields(CampaignReport)}
    missing = sorted(keys - _backticked("sensor.md"))
    assert not missing, f"docs/sensor.md does not describe report keys {missing}"


# -- the error table ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def error_docs() -> Any:
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        return importlib.import_module("wamm_errors")
    finally:
        sys.path.remove(str(DOCS / "_ext"))


def test_every_classified_error_code_has_advice_and_a_title(error_docs: Any) -> None:
    assert error_docs.coverage_problems() == []


def test_error_table_has_one_row_per_code(error_docs: Any) -> None:
    rows = error_docs.table_rows()
    covered: set[int] = set()
    for label, title, handling, advice in rows:
        low, _, high = label.partition("-")
        codes = set(range(int(low), int(high or low) + 1))
        assert not covered & codes, f"code {label} appears twice"
        covered |= codes
        assert title and advice, label
        assert handling in error_docs.HANDLING, label
    assert covered == RETRY_CODES | THROTTLE_CODES | PAIR_LIMIT_CODES | RECIPIENT_CODES | HALT_CODES
    assert {name for name, _class, _text in error_docs.legend_rows()} == {row[2] for row in rows}


def test_error_table_follows_the_classifier(error_docs: Any) -> None:
    handling = {label: h for label, _title, h, _advice in error_docs.table_rows()}
    assert handling["131000"] == "retry"
    assert handling["130429"] == "throttle"
    assert handling["131056"] == "pair limit"
    assert handling["131026"] == "recipient"
    assert handling["131050"] == "suppress"
    assert handling["131049"] == "suppress 24 h"
    assert handling["190"] == "halt"  # token errors: an Airflow retry would fail the same way
    assert handling["132015"] == "halt"  # template errors too
    assert handling["131048"] == "halt, retried"  # account limits: a later retry may pass
    assert "without Airflow retries" in error_docs.operator_does(190)


def test_troubleshooting_page_renders_the_generated_table() -> None:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    assert "```{wamm-error-table}" in text


# -- the pages ------------------------------------------------------------------------------------------


def _pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def test_every_page_is_in_a_toctree() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^([a-z0-9_-]+)$", index, re.M))
    orphans = [p.stem for p in _pages() if p.stem != "index" and p.stem not in listed]
    assert not orphans, f"pages missing from the toctrees of docs/index.md: {orphans}"


def test_pages_carry_no_machine_paths() -> None:
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        for marker in ("/work/", "/home/", "/Users/"):
            assert marker not in text, f"{page.name} contains a machine path ({marker})"


def _python_blocks() -> Iterator[tuple[str, str]]:
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        for i, match in enumerate(PYTHON_BLOCK_RE.finditer(text)):
            indent = match.group("indent")
            code = "\n".join(line[len(indent) :] for line in match.group("code").splitlines())
            yield f"{page.name}#{i}", code


PYTHON_BLOCKS = list(_python_blocks())


@pytest.mark.parametrize(("where", "code"), PYTHON_BLOCKS, ids=[w for w, _ in PYTHON_BLOCKS])
def test_python_examples_compile(where: str, code: str) -> None:
    compile(code, where, "exec")


RUNNABLE = [
    (w, c) for w, c in PYTHON_BLOCKS if re.search(r"MarketingMessageOperator|MarketingResponsesSensor", c)
]


@pytest.mark.parametrize(("where", "code"), RUNNABLE, ids=[w for w, _ in RUNNABLE])
def test_operator_examples_build_and_personalise(
    where: str, code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run each example that builds the operator or the sensor: the arguments must exist, and every
    personalisation must render for the example's recipients into a payload Meta's rules accept."""
    built: list[MarketingMessageOperator] = []
    original = MarketingMessageOperator.__init__

    @functools.wraps(original)
    def recording_init(self: MarketingMessageOperator, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(MarketingMessageOperator, "__init__", recording_init)
    namespace: dict[str, Any] = {
        "MarketingMessageOperator": MarketingMessageOperator,
        "MarketingResponsesSensor": MarketingResponsesSensor,
        "timedelta": timedelta,
        "datetime": datetime,
        "__name__": "docs_example",
    }
    exec(compile(code, where, "exec"), namespace)
    for op in built:
        personaliser = Personaliser(
            body_parameters=op.body_parameters, header=op.header, buttons=op.buttons, components=op.components
        )
        rows = op.recipients if isinstance(op.recipients, list) else None
        rendered = [personaliser.render(row) for row in rows] if rows else [personaliser.sample_components()]
        for components in rendered:
            build_marketing_message(
                to="4915123456789",
                template_name=op.template_name,
                language=op.language,
                components=components or None,
            )


# -- the built site --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sphinx_build_has_no_warnings_and_documents_every_public_class(tmp_path: Path) -> None:
    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    api = (out / "api.html").read_text(encoding="utf-8")
    missing = [
        f"{module.__name__}.{cls.__name__}"
        for module in _public_modules()
        for cls in _public_classes(module)
        if f'id="{module.__name__}.{cls.__name__}"' not in api
    ]
    assert not missing, f"classes missing from the built API reference: {missing}"
    assert "131056" in (out / "troubleshooting.html").read_text(encoding="utf-8")

"""The provider metadata: schema-valid, importable, and seen by Airflow through the installed entry point."""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import airflow
import pytest
from jsonschema import Draft7Validator

from airflow_provider_wamm.get_provider_info import get_provider_info

AIRFLOW_DIR = pathlib.Path(airflow.__file__).parent
HOOK_CLASS = "airflow_provider_wamm.hooks.whatsapp.WhatsAppHook"
SECRET_FIELDS = {"app_secret", "webhook_verify_token"}
PLAIN_FIELDS = {"phone_number_id", "waba_id", "api_version", "app_id", "max_messages_per_second", "timeout"}


def _load_schema(name: str) -> dict[str, Any]:
    path = AIRFLOW_DIR / name
    assert path.exists(), f"Airflow no longer ships {name}"
    return json.loads(path.read_text())


def _errors(schema: dict[str, Any], instance: Any) -> list[str]:
    validator = Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def _listed_modules() -> list[str]:
    info = get_provider_info()
    modules: list[str] = []
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for entry in info.get(kind, []):
            modules.extend(entry["python-modules"])
    return modules


def _airflow_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )


def test_provider_info_validates_against_the_runtime_schema() -> None:
    assert _errors(_load_schema("provider_info.schema.json"), get_provider_info()) == []


def test_connection_types_validate_against_the_provider_yaml_schema() -> None:
    schema = _load_schema("provider.yaml.schema.json")
    conn_schema = schema["properties"]["connection-types"]
    # Resolve "#/definitions/..." references against the whole file.
    item_schema = {**conn_schema, "definitions": schema.get("definitions", {})}
    assert _errors(item_schema, get_provider_info()["connection-types"]) == []


def test_package_name_is_the_distribution_name() -> None:
    from importlib.metadata import distribution

    dist = distribution("airflow-provider-wamm")
    assert get_provider_info()["package-name"] == dist.metadata["Name"]
    entry_points = [ep for ep in dist.entry_points if ep.group == "apache_airflow_provider"]
    assert [ep.value for ep in entry_points] == ["airflow_provider_wamm.get_provider_info:get_provider_info"]


@pytest.mark.parametrize("module", _listed_modules())
def test_every_listed_module_imports(module: str) -> None:
    assert importlib.import_module(module).__name__ == module


def test_hook_class_name_resolves() -> None:
    from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook

    (conn_type,) = get_provider_info()["connection-types"]
    module_name, _, class_name = conn_type["hook-class-name"].rpartition(".")
    hook_class = getattr(importlib.import_module(module_name), class_name)
    assert hook_class is WhatsAppHook
    assert conn_type["connection-type"] == WhatsAppHook.conn_type
    assert conn_type["hook-name"] == WhatsAppHook.hook_name


def test_conn_fields_are_the_ones_the_hook_reads() -> None:
    (conn_type,) = get_provider_info()["connection-types"]
    fields = conn_type["conn-fields"]
    assert set(fields) == PLAIN_FIELDS | SECRET_FIELDS
    assert {
        name for name, spec in fields.items() if spec["schema"].get("format") == "password"
    } == SECRET_FIELDS


def test_airflow_cli_lists_the_provider_and_maps_the_hook() -> None:
    providers = _airflow_cli("providers", "list", "--output", "json")
    assert providers.returncode == 0, providers.stderr[-2000:]
    names = [p.get("package_name") for p in json.loads(providers.stdout)]
    assert "airflow-provider-wamm" in names

    hooks = _airflow_cli("providers", "hooks", "--output", "json")
    assert hooks.returncode == 0, hooks.stderr[-2000:]
    rows = {row["connection_type"]: row for row in json.loads(hooks.stdout)}
    assert rows["whatsapp"]["class"] == HOOK_CLASS
    assert rows["whatsapp"]["package_name"] == "airflow-provider-wamm"
    assert rows["whatsapp"]["conn_id_attribute_name"] == "whatsapp_conn_id"
    assert rows["whatsapp"]["hook_name"] == "WhatsApp Marketing Messages"


def test_providers_manager_ui_metadata() -> None:
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    metas = {m.connection_type: m for m in pm.iter_connection_type_hook_ui_metadata()}
    meta = metas["whatsapp"]
    assert meta.hook_name == "WhatsApp Marketing Messages"
    assert meta.hook_class_name == HOOK_CLASS
    behaviour = meta.field_behaviour
    assert behaviour is not None
    assert set(behaviour["hidden_fields"]) >= {"login", "port", "schema", "extra"}
    assert behaviour["relabeling"]["password"] == "Access token"
    assert behaviour["placeholders"]["extra__whatsapp__phone_number_id"] == "123456789012345"

    widgets = {
        key: w
        for key, w in pm._connection_form_widgets_from_metadata.items()
        if key.startswith("extra__whatsapp__")
    }
    assert {w.field_name for w in widgets.values()} == PLAIN_FIELDS | SECRET_FIELDS
    assert {w.field_name for w in widgets.values() if w.is_sensitive} == SECRET_FIELDS
    assert all(w.hook_class_name == HOOK_CLASS for w in widgets.values())
    api_version = widgets["extra__whatsapp__api_version"].field
    assert api_version["value"] == "v25.0" and api_version["schema"]["title"] == "Graph API version"


def test_hook_meta_service_serves_the_form() -> None:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    metas = {m.connection_type: m for m in HookMetaService.hook_meta_data()}
    meta = metas["whatsapp"]
    assert meta.hook_name == "WhatsApp Marketing Messages"
    assert meta.standard_fields is not None
    assert meta.standard_fields.password is not None
    assert meta.standard_fields.password.title == "Access token"
    assert meta.standard_fields.login is not None and meta.standard_fields.login.hidden
    assert meta.extra_fields is not None
    assert set(meta.extra_fields) == PLAIN_FIELDS | SECRET_FIELDS
    assert meta.extra_fields["app_secret"]["schema"].get("format") == "password"

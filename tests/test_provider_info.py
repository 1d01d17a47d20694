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
    # Port is shown: the 3.3 UI's Test button needs a stored port (it posts 0 for none; see docs).
    assert set(behaviour["hidden_fields"]) == {"login", "schema", "extra"}
    assert behaviour["relabeling"]["password"] == "Access token"
    assert behaviour["placeholders"]["port"] == "443"
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
    assert meta.standard_fields.port is not None and not meta.standard_fields.port.hidden
    assert meta.standard_fields.port.placeholder == "443"
    assert meta.extra_fields is not None
    assert set(meta.extra_fields) == PLAIN_FIELDS | SECRET_FIELDS
    assert meta.extra_fields["app_secret"]["schema"].get("format") == "password"


# -- the [wamm] configuration section ---------------------------------------------------------------


def test_wamm_options_are_registered_as_provider_configuration() -> None:
    from airflow_provider_wamm.get_provider_info import CONFIG_OPTIONS

    assert set(get_provider_info()["config"]["wamm"]["options"]) == set(CONFIG_OPTIONS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__WAMM__")}
    for option, expected in (("ledger_conn_id", ""), ("webhook_conn_id", "whatsapp_default")):
        result = subprocess.run(
            [sys.executable, "-m", "airflow", "config", "get-value", "wamm", option],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == expected
    listed = _airflow_cli("config", "list", "--section", "wamm", "--include-descriptions")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert all(f"# {option} =" in listed.stdout for option in CONFIG_OPTIONS)
    assert "Connection of the send ledger" in listed.stdout


def test_options_are_read_through_airflow_conf_with_the_registered_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    from airflow_provider_wamm.get_provider_info import config_default, read_config
    from airflow_provider_wamm.hooks.ledger import (
        configured_ledger_conn_id,
        configured_table_prefix,
        default_ledger_path,
        ledger_url,
    )

    for option in ("ledger_conn_id", "ledger_table_prefix", "webhook_conn_id", "webhook_max_body_bytes"):
        monkeypatch.delenv(f"AIRFLOW__WAMM__{option.upper()}", raising=False)
        assert read_config(option) == config_default(option)
    assert configured_ledger_conn_id() is None and configured_table_prefix() == "wamm_"
    assert ledger_url(None).database == str(default_ledger_path())

    # One setting moves every task that names no ledger, and the webhook receiver, to the same database.
    shared = json.dumps({"conn_type": "sqlite", "host": str(tmp_path)})
    monkeypatch.setenv("AIRFLOW_CONN_SHARED_LEDGER", shared)
    monkeypatch.setenv("AIRFLOW__WAMM__LEDGER_CONN_ID", " shared_ledger ")
    monkeypatch.setenv("AIRFLOW__WAMM__LEDGER_TABLE_PREFIX", "crm_")
    assert configured_ledger_conn_id() == "shared_ledger" and configured_table_prefix() == "crm_"
    assert ledger_url(None).database == str(tmp_path)
    assert ledger_url("").database == str(tmp_path)


# -- the connection form and its Test button ----------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        ("", "", 0, "https://graph.facebook.com"),  # what the 3.3 UI's Test button posts for empty fields
        (None, None, None, "https://graph.facebook.com"),
        ("https://graph.facebook.com", "", 443, "https://graph.facebook.com:443"),
        ("http://127.0.0.1:8090", "", 443, "http://127.0.0.1:8090"),  # the URL's own port wins
    ],
)
def test_the_hook_treats_port_0_and_empty_strings_as_unset(
    host: str | None, schema: str | None, port: int | None, expected: str
) -> None:
    from airflow_provider_wamm.hooks.whatsapp import base_url_from_connection

    assert base_url_from_connection(host, schema, port) == expected


def test_the_registered_table_prefix_is_the_ledgers_default() -> None:
    from airflow_provider_wamm.campaign.ledger import DEFAULT_TABLE_PREFIX
    from airflow_provider_wamm.get_provider_info import CONFIG_OPTIONS

    assert CONFIG_OPTIONS["ledger_table_prefix"]["default"] == DEFAULT_TABLE_PREFIX


def test_the_form_knows_the_graph_layers_default_version_and_pattern() -> None:
    from airflow_provider_wamm import get_provider_info as info
    from airflow_provider_wamm.graph import versions

    assert info.DEFAULT_API_VERSION == versions.DEFAULT_API_VERSION
    assert info.API_VERSION_FORM_PATTERN == versions.API_VERSION_FORM_PATTERN


def test_provider_discovery_imports_nothing_of_the_package() -> None:
    import subprocess
    import sys

    code = (
        "import sys, airflow_provider_wamm.get_provider_info as g; g.get_provider_info()\n"
        "print(sorted(m for m in sys.modules if m.startswith('airflow_provider_wamm.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['airflow_provider_wamm.get_provider_info']"

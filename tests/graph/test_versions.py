"""The Graph API version: one default and one pattern, used by the client, the hook and the form."""

from __future__ import annotations

import inspect
import re

import pytest

from airflow_provider_wamm.get_provider_info import CONN_FIELDS, get_provider_info
from airflow_provider_wamm.graph import ConfigurationError, GraphClient
from airflow_provider_wamm.graph.versions import (
    API_VERSION_FORM_PATTERN,
    DEFAULT_API_VERSION,
    GRAPH_API_VERSIONS,
    is_api_version,
)
from airflow_provider_wamm.hooks import connection_settings
from airflow_provider_wamm.hooks.whatsapp import DEFAULT_API_VERSION as HOOK_DEFAULT_API_VERSION
from tests.graph.conftest import TOKEN


def test_the_default_is_v25() -> None:
    assert DEFAULT_API_VERSION == "v25.0"


def test_every_default_comes_from_the_one_source() -> None:
    assert inspect.signature(GraphClient).parameters["api_version"].default == DEFAULT_API_VERSION
    assert connection_settings.DEFAULT_API_VERSION is DEFAULT_API_VERSION
    assert HOOK_DEFAULT_API_VERSION is DEFAULT_API_VERSION
    assert connection_settings.WhatsAppConnectionSettings.api_version == DEFAULT_API_VERSION
    schema = CONN_FIELDS["api_version"]["schema"]
    assert schema["default"] == DEFAULT_API_VERSION
    assert schema["pattern"] == API_VERSION_FORM_PATTERN
    (conn_type,) = get_provider_info()["connection-types"]
    assert conn_type["ui-field-behaviour"]["placeholders"]["api_version"] == DEFAULT_API_VERSION


@pytest.mark.parametrize("version", ["v23.0", "v24.0", "v25.0", "v26.0", "v27.0", "v100.1"])
def test_pinned_versions_keep_working(version: str) -> None:
    assert is_api_version(version)
    assert re.fullmatch(API_VERSION_FORM_PATTERN, version)
    client = GraphClient(TOKEN, phone_number_id="1", api_version=version)
    assert client.api_version == version


@pytest.mark.parametrize("version", ["23.0", "v23", "v23.0 ", "V23.0", "v\uff12\uff13.0", "", None, 25])
def test_malformed_versions_are_refused_everywhere(version: object) -> None:
    assert not is_api_version(version)
    if isinstance(version, str) and version:
        assert not re.fullmatch(API_VERSION_FORM_PATTERN, version)
    with pytest.raises(ConfigurationError, match="api_version"):
        GraphClient(TOKEN, api_version=version)  # type: ignore[arg-type]


def test_the_form_pattern_allows_an_empty_field() -> None:
    assert re.fullmatch(API_VERSION_FORM_PATTERN, "")


def test_the_calendar_is_newest_first_and_holds_the_default() -> None:
    introduced = [v.introduced for v in GRAPH_API_VERSIONS]
    assert introduced == sorted(introduced, reverse=True)
    by_name = {v.version: v for v in GRAPH_API_VERSIONS}
    default = by_name[DEFAULT_API_VERSION]
    assert default.available_until is not None and default.available_until.isoformat() == "2028-07-29"
    assert all(is_api_version(v.version) for v in GRAPH_API_VERSIONS)

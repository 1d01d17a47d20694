"""Checks of a :class:`~airflow_provider_wamm.graph.client.GraphClient`'s settings: the base URL (no
plain HTTP off the loopback interface), the token, the API version, timeouts, retries and backoff."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from airflow_provider_wamm.graph.errors import ConfigurationError, InsecureTransportError
from airflow_provider_wamm.graph.redaction import redact
from airflow_provider_wamm.graph.versions import DEFAULT_API_VERSION, is_api_version

__all__ = ["check_base_url", "check_settings", "check_token", "is_loopback_host"]


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` is on the loopback interface (``localhost``, 127.0.0.0/8, ``::1``)."""
    if not host:
        return False
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str, allow_insecure_http: bool) -> str:
    """``base_url`` without a trailing ``/`` (``https://`` added when it has no scheme); refuse URLs with
    credentials, a query or a fragment, and plain HTTP off the loopback interface unless allowed."""
    if not isinstance(base_url, str) or not base_url.strip():
        raise ConfigurationError("base_url must be a URL such as https://graph.facebook.com")
    url = base_url.strip().rstrip("/")
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"base_url must be an http(s) URL, got {redact(base_url)!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError("base_url must not contain credentials, a query or a fragment")
    if scheme == "http" and not allow_insecure_http and not is_loopback_host(parts.hostname):
        raise InsecureTransportError(
            f"refusing plain http to {parts.hostname}: the access token would travel unencrypted. "
            "Use https, or a loopback address for the local sandbox"
        )
    return url


def check_token(access_token: str) -> str:
    """The access token without surrounding white space; refuse a missing or malformed one."""
    if not isinstance(access_token, str) or not access_token.strip():
        raise ConfigurationError(
            "access_token is required: put the WhatsApp token in the connection's password"
        )
    if any(ch.isspace() for ch in access_token.strip()):
        raise ConfigurationError("access_token contains white space; check the connection's password")
    return access_token.strip()


def check_settings(
    api_version: str, timeouts: Mapping[str, float], max_retries: int, backoff: tuple[float, float]
) -> None:
    """Raise :class:`ConfigurationError` for the first unusable setting among these."""
    if not is_api_version(api_version):
        raise ConfigurationError(f"api_version must look like {DEFAULT_API_VERSION!r}, got {api_version!r}")
    for name, value in timeouts.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 600:
            raise ConfigurationError(f"{name} must be a number of seconds in (0, 600], got {value!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or not 0 <= max_retries <= 20:
        raise ConfigurationError(f"max_retries must be an integer 0-20, got {max_retries!r}")
    if not 0 <= backoff[0] <= backoff[1]:
        raise ConfigurationError("backoff_base and backoff_max must satisfy 0 <= backoff_base <= backoff_max")

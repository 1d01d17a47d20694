"""What Graph's ``debug_token`` says about an access token: :class:`TokenInfo`.

The provider inspects the token (with the connection's app id and app secret) to warn before it expires
and to name the permissions it lacks; the token itself is never part of the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, cast

from airflow_provider_wamm.hooks.connection_settings import optional_text

#: Permission the access token needs to send messages.
SCOPE_MESSAGING = "whatsapp_business_messaging"
#: Permission needed to read the WABA, its templates and their analytics.
SCOPE_MANAGEMENT = "whatsapp_business_management"
#: Scopes without which the provider cannot send at all.
REQUIRED_SCOPES: tuple[str, ...] = (SCOPE_MESSAGING,)


class DebugTokenData(TypedDict, total=False):
    """The ``data`` object of a ``debug_token`` answer (the fields the provider reads)."""

    is_valid: bool
    expires_at: int
    scopes: list[str]
    type: str
    app_id: str
    error: Mapping[str, Any] | str


def _expiry(expires: Any) -> datetime | None:
    """The expiry time of a ``debug_token`` ``expires_at`` (``0`` or garbage: never expires)."""
    try:
        if expires is not None and int(expires) > 0:
            return datetime.fromtimestamp(int(expires), tz=UTC)
    except (TypeError, ValueError):
        return None
    return None


def _error_text(error: Any) -> str | None:
    """Meta's explanation of an invalid token, from the ``error`` object or text."""
    if isinstance(error, Mapping):
        return str(error.get("message") or error.get("code") or "") or None
    if error:
        return str(error)
    return None


def _scopes(scopes: Any) -> frozenset[str]:
    """The granted permissions of a ``scopes`` list (anything else: none)."""
    if isinstance(scopes, (list, tuple)):
        return frozenset(str(s) for s in scopes if s)
    return frozenset()


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 3600:
        return f"{seconds // 3600} h"
    return f"{max(1, seconds // 60)} min"


@dataclass(frozen=True)
class TokenInfo:
    """What Graph's ``debug_token`` says about the access token (never the token itself)."""

    #: Whether Meta accepts the token now.
    is_valid: bool
    #: When it expires (UTC); ``None`` means it never expires.
    expires_at: datetime | None = None
    #: Granted permissions, e.g. ``whatsapp_business_messaging``.
    scopes: frozenset[str] = frozenset()
    #: Token type as Meta reports it (``SYSTEM_USER``, ``USER``, ``PAGE``, ``APP``...).
    token_type: str | None = None
    #: The app the token belongs to.
    app_id: str | None = None
    #: Meta's explanation when the token is not valid.
    error: str | None = None

    @classmethod
    def from_debug_token(cls, response: Mapping[str, Any]) -> TokenInfo:
        """Build from a ``debug_token`` answer (the whole body or its ``data`` object)."""
        inner = response.get("data")
        data = cast(DebugTokenData, inner if isinstance(inner, Mapping) else response)
        scopes = data.get("scopes")
        return cls(
            is_valid=bool(data.get("is_valid")),
            expires_at=_expiry(data.get("expires_at")),
            scopes=_scopes(scopes),
            token_type=optional_text(data.get("type")),
            app_id=optional_text(data.get("app_id")),
            error=_error_text(data.get("error")),
        )

    @property
    def never_expires(self) -> bool:
        """``True`` for tokens without an expiry (system-user tokens set to 'Never')."""
        return self.expires_at is None

    def expires_within(self, window: timedelta, *, now: datetime | None = None) -> bool:
        """Whether the token expires less than ``window`` from ``now`` (or already has)."""
        if self.expires_at is None:
            return False
        return self.expires_at - (now or datetime.now(UTC)) <= window

    @property
    def missing_scopes(self) -> tuple[str, ...]:
        """Required scopes the token lacks."""
        return tuple(s for s in REQUIRED_SCOPES if s not in self.scopes)

    def describe_expiry(self, *, now: datetime | None = None) -> str:
        """``"never expires"`` or ``"expires 2026-01-02 03:04 UTC (in 5 h)"``."""
        if self.expires_at is None:
            return "never expires"
        left = self.expires_at - (now or datetime.now(UTC))
        stamp = self.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        if left.total_seconds() <= 0:
            return f"expired {stamp}"
        return f"expires {stamp} (in {_human(left)})"


__all__ = ["REQUIRED_SCOPES", "SCOPE_MANAGEMENT", "SCOPE_MESSAGING", "DebugTokenData", "TokenInfo"]

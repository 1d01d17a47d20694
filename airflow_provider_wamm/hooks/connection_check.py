"""The connection test behind the UI's Test button: :class:`ConnectionCheck`.

It reads the phone number, the WABA's Marketing Messages onboarding status and the access token's
validity, expiry and scopes, sends nothing, and says what to fix first when something is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypedDict, cast

from airflow_provider_wamm.graph.account_health import onboarding_problem
from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.graph.errors import (
    AuthenticationError,
    GraphError,
    GraphTransportError,
    PermissionDeniedError,
)
from airflow_provider_wamm.hooks.connection_settings import (
    SYSTEM_USER_TOKEN_HELP,
    WhatsAppConnectionSettings,
    optional_text,
)
from airflow_provider_wamm.hooks.token_info import SCOPE_MANAGEMENT, SCOPE_MESSAGING, TokenInfo

#: Fields read from the phone-number object by the connection test.
PHONE_FIELDS: tuple[str, ...] = ("display_phone_number", "verified_name", "quality_rating", "throughput")
#: Fields read from the WABA by the connection test.
WABA_FIELDS: tuple[str, ...] = ("name", "marketing_messages_onboarding_status")


class PhoneNumberInfo(TypedDict, total=False):
    """The phone-number object the connection test reads (``GET /{phone-number-id}``)."""

    display_phone_number: str
    verified_name: str
    quality_rating: str
    #: ``{"level": "STANDARD"}`` (older versions: the level alone).
    throughput: Mapping[str, Any] | str


class WabaInfo(TypedDict, total=False):
    """The WABA object the connection test reads (``GET /{waba-id}``)."""

    name: str
    marketing_messages_onboarding_status: str
    #: The status under its earlier name, read when the current one is missing.
    marketing_messages_lite_api_status: str


def _short(exc: GraphError) -> str:
    return f"Graph error {exc.code}: {exc.message}"


def describe_phone(phone: PhoneNumberInfo, phone_number_id: str | None) -> str:
    """``Connected to +1 555-0100 (Acme, quality GREEN, throughput STANDARD)``, from the phone object."""
    number = optional_text(phone.get("display_phone_number")) or f"phone number {phone_number_id}"
    details: list[str] = []
    name = optional_text(phone.get("verified_name"))
    if name:
        details.append(name)
    quality = optional_text(phone.get("quality_rating"))
    if quality:
        details.append(f"quality {quality}")
    throughput = phone.get("throughput")
    level = throughput.get("level") if isinstance(throughput, Mapping) else throughput
    if optional_text(level):
        details.append(f"throughput {level}")
    return f"Connected to {number}" + (f" ({', '.join(details)})" if details else "")


class ConnectionCheck:
    """One run of the connection test: the facts it found and the problems to fix.

    :param settings: the parsed connection.
    :param client: its Graph API client.
    :param read_token_info: inspects the access token (``None`` without app credentials); may raise the
        client's errors.
    """

    def __init__(
        self,
        settings: WhatsAppConnectionSettings,
        client: GraphClient,
        read_token_info: Callable[[], TokenInfo | None],
    ) -> None:
        self.settings = settings
        self.client = client
        self.read_token_info = read_token_info
        #: What to fix, first things first.
        self.problems: list[str] = []
        #: What was found (shown after the problems, or alone when all is well).
        self.facts: list[str] = []

    def run(self) -> tuple[bool, str]:
        """``(ok, message)``; a failure message starts with what to fix. Secrets are not scrubbed here."""
        failure = self.check_phone()
        if failure is not None:
            return False, failure
        waba_id = self.settings.waba_id
        if waba_id:
            self.check_waba(waba_id)
        else:
            self.facts.append("waba_id not set (template checks, onboarding status and analytics are off)")
        self.check_token()
        summary = "; ".join(self.facts)
        if self.problems:
            return False, " ".join(self.problems) + " | " + summary
        return True, summary

    def check_phone(self) -> str | None:
        """Read the phone number; the failure message when it cannot be read (nothing else is checked)."""
        try:
            phone = cast(PhoneNumberInfo, self.client.get_phone_number(fields=list(PHONE_FIELDS)))
        except GraphError as exc:
            return self._explain_phone_error(exc)
        except GraphTransportError as exc:
            return (
                f"Could not reach the Graph API at {self.settings.base_url}: {exc}. Check the connection's "
                "host and the worker's network access."
            )
        self.facts.append(describe_phone(phone, self.settings.phone_number_id))
        return None

    def check_waba(self, waba_id: str) -> None:
        """Read the WABA's Marketing Messages onboarding status."""
        try:
            waba = cast(WabaInfo, self.client.get_waba(fields=list(WABA_FIELDS)))
        except PermissionDeniedError as exc:
            self.problems.append(
                f"The token may not read WABA {waba_id} ({_short(exc)}): give the system user access to this "
                f"WhatsApp account and the {SCOPE_MANAGEMENT} permission, or fix waba_id."
            )
            return
        except AuthenticationError as exc:
            self.problems.append(
                f"The token was rejected reading WABA {waba_id} ({_short(exc)}). {SYSTEM_USER_TOKEN_HELP}"
            )
            return
        except GraphError as exc:
            self.problems.append(
                f"WABA {waba_id} could not be read ({_short(exc)}): check waba_id (WhatsApp Manager > "
                "Account tools > WhatsApp Business Account ID)."
            )
            return
        except GraphTransportError as exc:
            self.problems.append(f"WABA {waba_id} could not be read: {exc}.")
            return
        self._check_onboarding(waba_id, waba)

    def _check_onboarding(self, waba_id: str, waba: WabaInfo) -> None:
        status = optional_text(waba.get("marketing_messages_onboarding_status"))
        if status is None:
            status = optional_text(waba.get("marketing_messages_lite_api_status"))
        if status is None:
            self.facts.append(
                f"WABA {waba_id} marketing messages: status not returned (needs api_version v23.0 or later "
                f"and the {SCOPE_MANAGEMENT} permission)"
            )
            return
        self.facts.append(f"WABA {waba_id} marketing messages: {status.upper()}")
        problem = onboarding_problem(dict(waba), waba_id)
        if problem is not None:
            self.problems.append(problem)

    def check_token(self) -> None:
        """Inspect the access token (with app_id and app_secret): validity, expiry and scopes."""
        settings = self.settings
        if not (settings.app_id and settings.app_secret):
            missing = " and ".join(n for n in ("app_id", "app_secret") if not getattr(settings, n))
            self.facts.append(f"token: expiry and scopes not checked (set {missing} to check them)")
            return
        try:
            info = self.read_token_info()
        except GraphError as exc:
            self.problems.append(
                f"Graph's debug_token refused the app credentials ({_short(exc)}): check app_id and "
                "app_secret (App dashboard > App settings > Basic); the app secret also verifies webhook "
                "signatures."
            )
            return
        except GraphTransportError as exc:
            self.facts.append(f"token: not checked ({exc})")
            return
        if info is None:  # pragma: no cover - both values were checked above
            return
        if not info.is_valid:
            self.problems.append(
                f"The access token is not valid ({info.error or 'no reason given'}). {SYSTEM_USER_TOKEN_HELP}"
            )
            self.facts.append(f"token: invalid, {info.describe_expiry()}")
            return
        self._describe_valid_token(info)

    def _describe_valid_token(self, info: TokenInfo) -> None:
        text = f"token: {info.describe_expiry()}"
        if info.expires_within(timedelta(days=1)):
            text += " - WARNING: replace it soon with a system-user token that never expires"
        elif not info.never_expires:
            text += " (consider a system-user token that never expires)"
        self.facts.append(text)
        if info.missing_scopes:
            self.problems.append(
                f"The access token lacks the {', '.join(info.missing_scopes)} permission: generate a new "
                f"system-user token with whatsapp_business_messaging and whatsapp_business_management ticked."
            )
        elif SCOPE_MANAGEMENT not in info.scopes:
            self.facts.append(f"token lacks {SCOPE_MANAGEMENT} (template checks and analytics will fail)")

    def _explain_phone_error(self, exc: GraphError) -> str:
        pnid = self.settings.phone_number_id
        if isinstance(exc, AuthenticationError):
            reason = ""
            try:
                info = self.read_token_info()
            except (GraphError, GraphTransportError):
                info = None
            if info is not None:
                reason = f" Token: {info.describe_expiry()}{', invalid' if not info.is_valid else ''}."
            return (
                f"The access token was rejected (Graph error {exc.code}: {exc.message}).{reason} "
                f"{SYSTEM_USER_TOKEN_HELP}"
            )
        if isinstance(exc, PermissionDeniedError):
            return (
                f"The token may not use phone number {pnid} (Graph error {exc.code}: {exc.message}): "
                f"give the system user access to the WhatsApp account that owns it and the "
                f"{SCOPE_MESSAGING} and {SCOPE_MANAGEMENT} permissions."
            )
        return (
            f"Phone number {pnid} could not be read (Graph error {exc.code}: {exc.message}"
            f"{'; ' + exc.details if exc.details else ''}): check phone_number_id (WhatsApp Manager > Phone "
            "numbers, or the app's WhatsApp > API Setup page) and api_version."
        )


__all__ = ["PHONE_FIELDS", "WABA_FIELDS", "ConnectionCheck", "PhoneNumberInfo", "WabaInfo", "describe_phone"]

"""The operator's preflight: is the template sendable as configured, before the first message goes out?

It reads the template from the WABA (read-only) and checks that it is an APPROVED MARKETING template in
the requested language whose parameters match what the operator will send, and fails the task with
what to fix when it is not. Nothing is sent and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_wamm.campaign.guards import TemplatePaused, Trip
from airflow_provider_wamm.campaign.pauses import WAIT_STATUSES
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.campaign.ttl import ttl_of
from airflow_provider_wamm.graph.client import GraphClient
from airflow_provider_wamm.graph.errors import (
    AuthenticationError,
    GraphError,
    GraphTransportError,
    PermissionDeniedError,
)
from airflow_provider_wamm.graph.templates import TemplateSpec, check_components
from airflow_provider_wamm.hooks.whatsapp import WhatsAppHook

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

_ReadT = TypeVar("_ReadT")


def guarded_read(
    read: Callable[[], _ReadT],
    *,
    what: str,
    denied: Callable[[PermissionDeniedError], str],
    skipping: str,
    explicit: bool,
    log: Any,
) -> _ReadT | None:
    """One read of a preflight check. A refused token fails the task; a token that may not read
    (``denied`` says so) fails it when the check was asked for (``explicit``), else the check is
    skipped with the warning ``skipping`` (``%s`` is the message) and ``None`` returned; any other
    Graph failure raises an error Airflow retries.

    :param what: the read, as the error messages name it (``"reading the account"``).
    """
    try:
        return read()
    except AuthenticationError as exc:
        raise AirflowFailException(f"Preflight: {what} failed: {exc}") from exc
    except PermissionDeniedError as exc:
        message = denied(exc)
        if explicit:
            raise AirflowFailException(message + ".") from exc
        log.warning(skipping, message)
        return None
    except (GraphError, GraphTransportError) as exc:
        raise AirflowException(f"Preflight: {what} failed: {exc}") from exc


def read_template(
    client: GraphClient, template_name: str, language: str
) -> tuple[dict[str, Any] | None, list[str]]:
    """The template in ``language`` (``None`` when missing) and, when missing, the languages it exists in."""
    template = client.get_template(template_name, language)
    if template is not None:
        return template, []
    languages = sorted(
        {
            str(t.get("language"))
            for t in client.list_templates(name=template_name)
            if t.get("name") == template_name
        }
    )
    return None, languages


def template_problems(template: dict[str, Any], personaliser: Personaliser | None) -> list[str]:
    """Why ``template`` cannot be sent with the parameters of ``personaliser`` (empty: it can)."""
    spec = TemplateSpec.from_api(template)
    problems = spec.marketing_problems()
    sample = personaliser.sample_components() if personaliser is not None else []
    mismatch = check_components(sample, spec)
    if mismatch:
        problems += mismatch
        problems.append(f"the template needs: {spec.describe()}")
    return problems


def _not_found(name: str, waba_id: str | None, languages: list[str]) -> str:
    if languages:
        where = f"it exists only in {', '.join(languages)}: set 'language' to one of them"
    else:
        where = "no template of that name exists; check the name (WhatsApp Manager > Message templates)"
    return f"Preflight: template {name} was not found in WABA {waba_id}: {where}. Nothing was sent."


def check_template(
    hook: WhatsAppHook,
    template_name: str,
    language: str,
    personaliser: Personaliser | None,
    *,
    explicit: bool,
    log: Logger,
) -> float | None:
    """Fail the task before the first send when the template cannot be sent as configured; return the
    template's time-to-live (``message_send_ttl_seconds``, ``None`` for Meta's default or unread).

    A template Meta paused raises :class:`~airflow_provider_wamm.campaign.guards.TemplatePaused` instead
    (the operator waits or fails by its ``on_template_paused``).

    :param explicit: the preflight was asked for (``preflight=True``): a token that may not read
        templates fails the task instead of skipping the check with a warning.
    """
    name = f"{template_name!r} ({language})"
    client = hook.get_conn()
    read = guarded_read(
        lambda: read_template(client, template_name, language),
        what=f"reading template {name}",
        denied=lambda exc: (
            f"Preflight: the access token may not read the templates of WABA {hook.waba_id} ({exc}); "
            "give it the whatsapp_business_management permission"
        ),
        skipping="%s, or set preflight=False. Sending without the template check.",
        explicit=explicit,
        log=log,
    )
    if read is None:
        return None
    template, languages = read
    if template is None:
        raise AirflowFailException(_not_found(name, hook.waba_id, languages))
    status = str(template.get("status") or "").upper()
    if status in WAIT_STATUSES:  # waited out or failed by on_template_paused
        message = f"template {name} is {status} (read before the first send)"
        raise TemplatePaused(Trip("template_paused", message, status=status))
    problems = template_problems(template, personaliser)
    if problems:
        raise AirflowFailException(
            f"Preflight: template {name} cannot be sent as configured: " + "; ".join(problems) + ". "
            "Nothing was sent."
        )
    log.info("Preflight: template %s is APPROVED MARKETING and the parameters match.", name)
    return ttl_of(template)


__all__ = ["check_template", "guarded_read", "read_template", "template_problems"]

"""Meta's signals in the sandbox: act on one (the sandbox's behaviour follows) and send its webhook.

A :class:`~airflow_provider_wamm.sandbox.config.SignalStep` changes what the sandbox does, the way
Meta's platform would, and schedules the signed webhook Meta would send:

* ``stop`` / ``resume``: the recipient joins or leaves ``stopped_users`` (sends to them are accepted,
  then fail with 131050); a ``user_preferences`` webhook.
* ``pause_template`` / ``approve_template`` / ``disable_template``: the template's status (a paused
  template answers 132015, a disabled one 132016, until approved again); a
  ``message_template_status_update`` webhook per template changed.
* ``template_quality``: a ``message_template_quality_update`` webhook with the new score.
* ``template_category``: the template's category (a template that is no longer MARKETING answers
  134100); a completed ``template_category_update`` webhook.
* ``account_update``: an ``account_update`` webhook for the event (``MM_LITE_TERMS_SIGNED`` also
  onboards the account, so sends stop falling back to the Cloud API).
* ``messaging_limit``: the number's ``whatsapp_business_manager_messaging_limit``; a
  ``business_capability_update`` and a ``phone_number_quality_update`` (``UPGRADE``/``DOWNGRADE``).
* ``quality``: the number's ``quality_rating``; a ``phone_number_quality_update`` ``FLAGGED`` when it
  turns ``RED``, ``UNFLAGGED`` when it leaves ``RED`` (other changes send nothing).

Steps run at once (``POST /_sandbox/signals``) or when their script says (``after_sends``: checked
after each accepted send; ``at_s``: checked by the webhook emitter's loop). Everything runs on the
server's event loop, like the rest of the sandbox's state changes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from airflow_provider_wamm.sandbox.config import SignalStep
from airflow_provider_wamm.sandbox.signals import (
    account_update_value,
    capability_value,
    limit_event,
    phone_quality_value,
    template_category_value,
    template_quality_value,
    template_status_value,
    user_preferences_value,
)
from airflow_provider_wamm.sandbox.state import SandboxContext
from airflow_provider_wamm.sandbox.templates import SandboxTemplate
from airflow_provider_wamm.sandbox.webhooks import schedule_signal

#: Template status a template action sets.
_TEMPLATE_STATUS = {
    "pause_template": "PAUSED",
    "approve_template": "APPROVED",
    "disable_template": "DISABLED",
}


def _emit(ctx: SandboxContext, field: str, value: dict[str, Any]) -> None:
    schedule_signal(ctx.config, ctx.state, field, value, time.monotonic())


def _preference(ctx: SandboxContext, step: SignalStep) -> list[str]:
    """Stop or resume marketing messages for one recipient."""
    users = set(ctx.config.stopped_users)
    if step.action == "stop":
        users.add(step.target)
    else:
        users.discard(step.target)
    ctx.install(ctx.config.replace(stopped_users=tuple(sorted(users))))
    _emit(
        ctx,
        "user_preferences",
        user_preferences_value(ctx.config, step.target, step.action, int(time.time())),
    )
    return ["user_preferences"]


def _matching(ctx: SandboxContext, step: SignalStep) -> dict[str, SandboxTemplate]:
    """The templates a template step names (by label), or a ValueError when none."""
    found = {
        label: t
        for label, t in ctx.config.templates.items()
        if t.name == step.target and (step.language is None or t.language == step.language)
    }
    if not found:
        which = step.target if step.language is None else f"{step.target} ({step.language})"
        raise ValueError(f"the sandbox has no template {which}")
    return found


def _template_status(ctx: SandboxContext, step: SignalStep) -> list[str]:
    """Pause, approve or disable a template (every language of it unless one is named)."""
    status = _TEMPLATE_STATUS[step.action]
    found = _matching(ctx, step)
    changed = {label: dataclasses.replace(t, status=status) for label, t in found.items()}
    ctx.install(ctx.config.replace(templates={**ctx.config.templates, **changed}))
    now = int(time.time())
    for label, template in changed.items():
        value = template_status_value(template, status, found[label].status, now)
        _emit(ctx, "message_template_status_update", value)
    return ["message_template_status_update"] * len(changed)


def _template_quality(ctx: SandboxContext, step: SignalStep) -> list[str]:
    """Change a template's quality score."""
    assert step.value is not None  # checked by SignalStep
    fields = []
    for template in _matching(ctx, step).values():
        key = f"{template.name}|{template.language}"
        previous = ctx.state.template_quality.get(key, "GREEN")
        ctx.state.template_quality[key] = step.value
        _emit(ctx, "message_template_quality_update", template_quality_value(template, previous, step.value))
        fields.append("message_template_quality_update")
    return fields


def _template_category(ctx: SandboxContext, step: SignalStep) -> list[str]:
    """Change a template's category (Meta's completed category change)."""
    assert step.value is not None  # checked by SignalStep
    found = _matching(ctx, step)
    changed = {label: dataclasses.replace(t, category=step.value) for label, t in found.items()}
    ctx.install(ctx.config.replace(templates={**ctx.config.templates, **changed}))
    for label, template in changed.items():
        value = template_category_value(template, found[label].category, step.value)
        _emit(ctx, "template_category_update", value)
    return ["template_category_update"] * len(changed)


def _account_update(ctx: SandboxContext, step: SignalStep) -> list[str]:
    """Send an account update; signing the Marketing Messages terms onboards the account."""
    if step.target == "MM_LITE_TERMS_SIGNED":
        ctx.install(ctx.config.replace(onboarding_status="ONBOARDED"))
    _emit(ctx, "account_update", account_update_value(ctx.config, step.target, int(time.time())))
    return ["account_update"]


def _messaging_limit(ctx: SandboxContext, step: SignalStep) -> list[str]:
    """Change the number's messaging limit."""
    previous = ctx.config.messaging_limit
    ctx.install(ctx.config.replace(messaging_limit=step.target))
    _emit(ctx, "business_capability_update", capability_value(step.target))
    event = limit_event(previous, step.target)
    _emit(ctx, "phone_number_quality_update", phone_quality_value(ctx.config, event, previous))
    return ["business_capability_update", "phone_number_quality_update"]


def _quality(ctx: SandboxContext, step: SignalStep) -> list[str]:
    """Change the number's quality rating; flag it when it turns red, unflag it when it recovers."""
    previous = ctx.config.quality_rating
    ctx.install(ctx.config.replace(quality_rating=step.target))
    if (step.target == "RED") == (previous == "RED"):
        return []
    event = "FLAGGED" if step.target == "RED" else "UNFLAGGED"
    _emit(ctx, "phone_number_quality_update", phone_quality_value(ctx.config, event))
    return ["phone_number_quality_update"]


_ACTIONS: dict[str, Callable[[SandboxContext, SignalStep], list[str]]] = {
    "stop": _preference,
    "resume": _preference,
    "pause_template": _template_status,
    "approve_template": _template_status,
    "disable_template": _template_status,
    "template_quality": _template_quality,
    "template_category": _template_category,
    "messaging_limit": _messaging_limit,
    "quality": _quality,
    "account_update": _account_update,
}


def apply_signal(ctx: SandboxContext, step: SignalStep) -> dict[str, Any]:
    """Act on ``step`` now and schedule its webhooks (sent only when ``webhook_url`` is set).

    :returns: what was done and which webhook fields were sent (also kept in the state's signal log).
    :raises ValueError: for a template the sandbox does not know.
    """
    fields = _ACTIONS[step.action](ctx, step)
    sent = fields if ctx.config.webhook_url else []  # without a webhook URL nothing is sent
    entry = {**step.to_dict(), "webhooks": sent, "at": time.time()}
    ctx.state.signal_log.append(entry)
    return entry


def run_due_steps(ctx: SandboxContext, now: float | None = None) -> int:
    """Act on every scripted step that is due and has not run since the last reset; returns how many."""
    state = ctx.state
    clock = time.monotonic() if now is None else now
    ran = 0
    for step in ctx.config.signal_steps:
        if step in state.steps_done:
            continue
        due = (step.after_sends is not None and len(state.messages) >= step.after_sends) or (
            step.at_s is not None and clock - state.started_at >= step.at_s
        )
        if not due and step.scripted:
            continue
        state.steps_done.add(step)
        try:
            apply_signal(ctx, step)
        except Exception as exc:  # e.g. a template the configuration lacks: record it, keep serving
            state.signal_log.append({**step.to_dict(), "error": str(exc), "at": time.time()})
        ran += 1
    return ran


__all__ = ["apply_signal", "run_due_steps"]

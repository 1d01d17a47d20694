"""Sphinx extension: the Graph error tables of the docs, rendered from the provider's own classifier.

The tables are built at documentation build time from :mod:`airflow_provider_wamm.graph.errors`
(``RETRY_CODES``, ``THROTTLE_CODES``, ``PAIR_LIMIT_CODES``, ``RECIPIENT_CODES``, ``HALT_CODES``,
``ERROR_TITLES``, :func:`~airflow_provider_wamm.graph.errors.error_class_for`), so they cannot drift
from what the code does. Only the last column, what a user should do about each code, is written
here (:data:`ADVICE`). A code the classifier knows that has no advice, or advice for a code the
classifier does not know, is a build warning, which ``sphinx-build -W`` turns into an error.

Markup it adds:

``wamm-error-table`` (directive)
    Two tables: the kinds of handling (what the operator does for each), then every code with
    Meta's title, its handling and what to do. Option ``:action:`` limits them to one class
    (``retry``, ``throttle``, ``pair_limit``, ``recipient``, ``halt``).
``wamm-codes`` (role)
    The codes of one class, inline: ``{wamm-codes}`halt```.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from airflow_provider_wamm.graph import errors as E

logger = logging.getLogger(__name__)

#: The classifier's code sets, by action.
CODE_SETS: dict[E.Action, frozenset[int]] = {
    E.Action.RETRY: E.RETRY_CODES,
    E.Action.THROTTLE: E.THROTTLE_CODES,
    E.Action.PAIR_LIMIT: E.PAIR_LIMIT_CODES,
    E.Action.RECIPIENT: E.RECIPIENT_CODES,
    E.Action.HALT: E.HALT_CODES,
}

#: Consecutive code ranges shown as one row (every code of the range has the same class).
RANGES: tuple[tuple[int, int], ...] = ((200, 299),)

#: Titles of classified codes that Meta's error table (``ERROR_TITLES``) does not name.
EXTRA_TITLES: dict[int, str] = {
    102: "API Session (the login key is invalid or no longer valid)",
    104: "Incorrect signature (access token missing or malformed)",
    613: "Calls to this API have exceeded the rate limit",
    200: "Permission error (the 200-299 family)",
}

_CONNECTION = "the connection page"
_TEMPLATE_CHECK = (
    "Check the template in WhatsApp Manager > Message templates: it must be APPROVED, category "
    "MARKETING, in this language, with the parameters you pass. Fix it, then clear the task."
)

#: What a user should do about each code (keys: codes, or the first code of a :data:`RANGES` entry).
ADVICE: dict[int, str] = {
    # -- transient ---------------------------------------------------------------------------------
    1: "Nothing, unless it persists: then check Meta's status page and quote the `fbtrace_id`.",
    2: "Nothing, unless it persists: then check Meta's status page.",
    131000: "Nothing, unless it persists; quote the `fbtrace_id` to Meta support.",
    131016: "Nothing, unless it persists: then check Meta's status page.",
    131057: "Nothing: the number is being upgraded (usually under a minute).",
    133004: "Nothing, unless it persists.",
    # -- throttling --------------------------------------------------------------------------------
    4: "Lower `max_messages_per_second`, or run fewer campaigns on the same app at once.",
    17: "Lower `max_messages_per_second`; avoid other heavy Graph API use with the same token.",
    341: "Lower `max_messages_per_second`; spread campaigns over time.",
    613: "Lower `max_messages_per_second`; spread campaigns over time.",
    80007: "Lower `max_messages_per_second`, or run fewer campaigns on this WABA at once.",
    80008: "Reduce other WhatsApp Business Management API calls (template reads, analytics).",
    130429: "Set the connection's `max_messages_per_second` to your number's real throughput (80 unless "
    "Meta upgraded it) and make sure only one campaign per number sends at a time.",
    133016: "Wait: the number was registered or deregistered too often.",
    # -- pair rate limit ---------------------------------------------------------------------------
    131056: "Nothing for a campaign (one message per person). If it is frequent, other senders on the "
    "same number are messaging the same people at the same time.",
    # -- recipient ---------------------------------------------------------------------------------
    100: "Read `details`: it names the invalid parameter. Usually a parameter value (fix the data or "
    "the personalisation) or a wrong `api_version`.",
    130472: "Nothing: Meta holds this user out of marketing messages for an experiment.",
    130497: "The WABA may not message users in this country: exclude them from the query.",
    131008: "Read `details` for the missing parameter and fix the personalisation.",
    131009: "Read `details`. On a new template (or one unused for 7 days) wait 10 minutes before a big "
    "send; otherwise fix the parameter value.",
    131021: "Remove the business's own number from the recipients.",
    131026: "Nothing to fix on your side: the number is not on WhatsApp, uses an old app or has not "
    "accepted the terms. Do not re-send right away.",
    131030: "Only for test numbers: add the recipient to the allowed list, or use a production number.",
    131047: "Nothing: marketing templates are not affected (free-form messages only).",
    131049: "Nothing: Meta's per-user marketing limit. The recipient is left alone for 24 h; a later run "
    "of the campaign may try again after that.",
    131050: "Nothing: the user stopped marketing messages from you. Remove them from your marketing "
    "audience as well; the suppression is kept in the ledger.",
    131051: "Use a supported template message; check the template's components.",
    131052: "Check the media link (public HTTPS URL, supported type and size) or media id.",
    131053: "Check the media file (supported type and size) and upload it again.",
    131061: "Templates with a max price must be sent through the Marketing Messages API; check the "
    "connection's host and the template's settings.",
    131062: "Send to phone numbers, not business-scoped user IDs, for this template.",
    132005: "Shorten the parameter values: the filled-in template text is too long.",
    132007: "Remove characters the template's format does not allow (newlines, tabs, many spaces).",
    132008: "Match the parameter types and formats to the template (text, currency, date_time, media).",
    132012: "Match the parameter types and formats to the template (text, currency, date_time, media).",
    132018: "Read `details` and fix the component parameter it names.",
    132068: "The flow is blocked: fix or replace it in WhatsApp Manager > Flows.",
    132069: "Nothing: the flow was sent too often in the last hour; send later.",
    134102: "Read `details`; the template or the user is not eligible for the Marketing Messages API.",
    134103: "Read `details` and quote the `fbtrace_id` to Meta support.",
    135000: "Read `details`; if it persists, quote the `fbtrace_id` to Meta support.",
    137000: "The user's identity changed since you set `recipient_identity_key_hash`: verify them again "
    "outside WhatsApp, then send without the hash.",
    # -- halt --------------------------------------------------------------------------------------
    0: "Generate a new system-user token that never expires and put it in the connection (see "
    f"{_CONNECTION}); clear the task.",
    3: "Check the app's WhatsApp product setup and the token's permissions; clear the task.",
    10: "Give the system user the `whatsapp_business_messaging` permission and access to the WABA that "
    "owns the number; clear the task.",
    102: "Generate a new system-user token and put it in the connection; clear the task.",
    104: "Put the access token in the connection's password field; clear the task.",
    190: "The token expired or was revoked: generate a system-user token that never expires (see "
    f"{_CONNECTION}); clear the task.",
    200: "Give the system user the missing permission (`whatsapp_business_messaging`, "
    "`whatsapp_business_management`) and access to the WABA; clear the task.",
    368: "The account is temporarily blocked for policy violations: see Account quality in Meta "
    "Business Suite; clear the task once lifted.",
    131005: "Check the token's permissions and that it may use this phone number; clear the task.",
    131031: "The WABA is locked: see Account quality in Meta Business Suite.",
    131037: "Get the display name of the number approved in WhatsApp Manager.",
    131042: "Fix the WABA's payment method in Meta Business Suite; clear the task.",
    131045: "Re-register the phone number with Cloud API; clear the task.",
    131048: "The number is limited for spam (low quality, many blocks): send less, only to people who "
    "opted in; retry later.",
    131055: "Onboard the WABA to the Marketing Messages API (accept the terms in WhatsApp Manager) and "
    "send only marketing templates.",
    131063: "Marketing templates are disabled on Cloud API for this WABA: finish Marketing Messages "
    "onboarding, or re-enable them in WhatsApp Manager.",
    131064: "The messaging limit is reached because of template classification issues: review your "
    "templates' categories; wait for the limit to reset.",
    133000: "Finish deregistering the number, then register it again.",
    133005: "Use the correct two-step verification PIN of the number.",
    133006: "Verify the phone number again in WhatsApp Manager.",
    133008: "Wait, then use the correct two-step verification PIN.",
    133009: "Wait before trying the two-step verification PIN again.",
    133010: "Register the phone number with Cloud API first.",
    133015: "Wait a few minutes before registering the number again.",
    132000: "Make the number of body parameters match the template's placeholders. " + _TEMPLATE_CHECK,
    132001: "The template does not exist in this language or is not approved. " + _TEMPLATE_CHECK,
    132015: "The template is paused for low quality: edit it or wait until Meta unpauses it, or send "
    "another template.",
    132016: "The template is disabled for good: create a new one.",
    134100: "Only MARKETING templates can be sent with this API: pick a marketing template.",
    134101: "The new template is not yet ready for the Marketing Messages API: wait 10 minutes, then "
    "clear the task.",
}

_ACTION_LABELS: dict[E.Action, str] = {
    E.Action.RETRY: "retry",
    E.Action.THROTTLE: "throttle",
    E.Action.PAIR_LIMIT: "pair limit",
    E.Action.RECIPIENT: "recipient",
    E.Action.HALT: "halt",
}

#: HALT errors that fail the task without Airflow retries (the operator raises AirflowFailException).
NO_RETRY_HALT_CLASSES: tuple[type[E.GraphError], ...] = (
    E.AuthenticationError,
    E.PermissionDeniedError,
    E.TemplateError,
)


def classified_codes() -> set[int]:
    """Every code the classifier maps explicitly."""
    return set().union(*CODE_SETS.values())


def action_of(code: int) -> E.Action:
    """The class of ``code``, as the sender sees it."""
    return E.classify(code)


def title_of(code: int) -> str:
    """Meta's title from the provider's table, or the docs' own for codes it does not name."""
    if code in E.ERROR_TITLES:
        return E.ERROR_TITLES[code]
    return EXTRA_TITLES.get(code, E.error_title(code))


#: What the operator does, by kind of handling (the "Operator" column of the table points here).
HANDLING: dict[str, str] = {
    "retry": (
        "Retries that recipient with exponential backoff and jitter, up to `max_attempts` requests; then "
        "records it `failed`, and the next run of the campaign tries again."
    ),
    "throttle": (
        "Retries later; when throttling answers are a real share of the traffic, halves the whole "
        "campaign's send rate, then raises it again after quiet seconds."
    ),
    "pair limit": (
        "Delays only that recipient (1, 4, 16, 64, 256 s); if it persists, records it `failed` and the "
        "next run of the campaign tries again."
    ),
    "recipient": "Records the recipient `failed` (never re-sent) and goes on with the campaign.",
    "suppress": (
        "Records the recipient `failed` and suppresses them, for good, in every campaign using this ledger."
    ),
    "suppress 24 h": (
        "Records the recipient `failed` and suppresses them for 24 hours in every campaign; a run of the "
        "same campaign after that may try again."
    ),
    "halt": (
        "Stops the campaign at once, records the requests in flight, releases unsent recipients; the task "
        "fails without Airflow retries. Clearing it after the fix resumes the campaign."
    ),
    "halt, retried": (
        "Stops the campaign at once, records the requests in flight, releases unsent recipients; the task "
        "fails, and its Airflow retries (if any) resume the campaign. Clearing it resumes it too."
    ),
}


def handling_of(code: int) -> str:
    """The kind of handling (a key of :data:`HANDLING`) of a send that fails with ``code``."""
    action = action_of(code)
    if action is E.Action.RECIPIENT:
        if code == E.CODE_STOPPED_MARKETING:
            return "suppress"
        if code == E.CODE_PER_USER_LIMIT:
            return "suppress 24 h"
        return "recipient"
    if action is E.Action.HALT:
        no_retry = issubclass(E.error_class_for(code), NO_RETRY_HALT_CLASSES)
        return "halt" if no_retry else "halt, retried"
    return _ACTION_LABELS[action]


def operator_does(code: int) -> str:
    """What :class:`MarketingMessageOperator` does when a send fails with ``code``."""
    return HANDLING[handling_of(code)]


def _range_of(code: int) -> tuple[int, int] | None:
    for low, high in RANGES:
        if low <= code <= high:
            return low, high
    return None


def table_rows(action: E.Action | None = None) -> list[tuple[str, str, str, str]]:
    """The rows of the code table: code (or range), Meta's title, handling, what to do."""
    rows: list[tuple[str, str, str, str]] = []
    seen_ranges: set[tuple[int, int]] = set()
    for code in sorted(classified_codes()):
        span = _range_of(code)
        if span is not None:
            if span in seen_ranges:
                continue
            seen_ranges.add(span)
            key, label = span[0], f"{span[0]}-{span[1]}"
        else:
            key, label = code, str(code)
        if action is not None and action_of(key) is not action:
            continue
        rows.append((label, title_of(key), handling_of(key), ADVICE.get(key, "")))
    return rows


def legend_rows(action: E.Action | None = None) -> list[tuple[str, str, str]]:
    """The rows of the handling table: handling, its class, what the operator does (only kinds in use)."""
    used = {row[2] for row in table_rows(action)}
    out: list[tuple[str, str, str]] = []
    for name, text in HANDLING.items():
        if name not in used:
            continue
        klass = next(
            _ACTION_LABELS[action_of(c)] for c in sorted(classified_codes()) if handling_of(c) == name
        )
        out.append((name, klass, text))
    return out


def coverage_problems() -> list[str]:
    """Codes the classifier knows without advice, advice for unknown codes, ranges of mixed classes."""
    problems: list[str] = []
    keys: set[int] = set()
    for code in classified_codes():
        span = _range_of(code)
        keys.add(span[0] if span else code)
    for low, high in RANGES:
        classes = {action_of(c) for c in range(low, high + 1)}
        if len(classes) != 1:
            problems.append(f"codes {low}-{high} are not all in one class: {sorted(map(str, classes))}")
    for key in sorted(keys - set(ADVICE)):
        problems.append(f"Graph error {key} is classified as {action_of(key)} but has no advice in the docs")
    for key in sorted(set(ADVICE) - keys):
        problems.append(f"the docs give advice for Graph error {key}, which the classifier does not know")
    for key in sorted(keys):
        if key not in E.ERROR_TITLES and key not in EXTRA_TITLES:
            problems.append(f"Graph error {key} has no title (ERROR_TITLES or the docs' EXTRA_TITLES)")
    return problems


_CODE_RE = re.compile(r"`([^`]+)`")


def _inline(text: str) -> list[nodes.Node]:
    """Plain text with ``\\`literal\\``` spans."""
    out: list[nodes.Node] = []
    pos = 0
    for match in _CODE_RE.finditer(text):
        if match.start() > pos:
            out.append(nodes.Text(text[pos : match.start()]))
        out.append(nodes.literal(match.group(1), match.group(1)))
        pos = match.end()
    if pos < len(text):
        out.append(nodes.Text(text[pos:]))
    return out


def _table(
    header: tuple[str, ...],
    rows: list[tuple[str, ...]],
    widths: tuple[int, ...],
    *,
    literal_first: bool = True,
) -> nodes.table:
    table = nodes.table(classes=["wamm-error-table"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)

    def row_of(cells: tuple[str, ...], literal_first: bool) -> nodes.row:
        row = nodes.row()
        for i, cell in enumerate(cells):
            entry = nodes.entry()
            para = nodes.paragraph()
            if i == 0 and literal_first:
                para += nodes.literal(cell, cell)
            else:
                para.extend(_inline(cell))
            entry += para
            row += entry
        return row

    thead = nodes.thead()
    thead += row_of(header, literal_first=False)
    group += thead
    tbody = nodes.tbody()
    for cells in rows:
        tbody += row_of(cells, literal_first=literal_first)
    group += tbody
    return table


def _action_option(value: str | None) -> E.Action:
    try:
        return E.Action(str(value).strip().lower())
    except ValueError:
        raise ValueError(f"expected one of {[a.value for a in E.Action]}, got {value!r}") from None


class ErrorTableDirective(SphinxDirective):
    """``wamm-error-table``: the Graph error table rendered from the classifier."""

    has_content = False
    option_spec = {"action": _action_option}

    def run(self) -> list[nodes.Node]:
        for problem in coverage_problems():
            logger.warning(problem, location=self.get_location())
        action = self.options.get("action")
        legend = _table(
            ("Operator", "Class", "What the operator does"),
            [tuple(row) for row in legend_rows(action)],
            (14, 10, 76),
            literal_first=False,
        )
        codes = _table(
            ("Code", "Meta's title", "Operator", "What you should do"),
            [tuple(row) for row in table_rows(action)],
            (9, 30, 13, 48),
        )
        return [legend, codes]


def codes_role(  # noqa: PLR0917 - the signature docutils calls roles with
    name: str,
    rawtext: str,
    text: str,
    lineno: int,
    inliner: Any,
    options: dict[str, Any] | None = None,
    content: list[str] | None = None,
) -> tuple[list[nodes.Node], list[nodes.system_message]]:
    """``wamm-codes``: the codes of one class, e.g. ``131056`` for ``pair_limit``."""
    try:
        action = _action_option(text)
    except ValueError as exc:
        msg = inliner.reporter.error(f"wamm-codes: {exc}", line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    out: list[nodes.Node] = []
    for i, label in enumerate(_labels(action)):
        if i:
            out.append(nodes.Text(", "))
        out.append(nodes.literal(label, label))
    return out, []


def _labels(action: E.Action) -> Iterator[str]:
    seen: set[tuple[int, int]] = set()
    for code in sorted(CODE_SETS[action]):
        span = _range_of(code)
        if span is None:
            yield str(code)
        elif span not in seen:
            seen.add(span)
            yield f"{span[0]}-{span[1]}"


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive and the role."""
    app.add_directive("wamm-error-table", ErrorTableDirective)
    app.add_role("wamm-codes", codes_role)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

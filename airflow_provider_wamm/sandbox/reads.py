"""The read endpoints: the phone number and WABA nodes, ``message_templates`` and ``debug_token``.

(``template_analytics`` has its own module, :mod:`airflow_provider_wamm.sandbox.analytics`.)
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_wamm.sandbox.config import SandboxConfig
from airflow_provider_wamm.sandbox.graph_call import GraphCall, bearer_token, run_graph_call
from airflow_provider_wamm.sandbox.params import decode_cursor, encode_cursor, parse_list, requested_fields
from airflow_provider_wamm.sandbox.responses import graph_error, json_response, unknown_node
from airflow_provider_wamm.sandbox.state import SandboxContext

_PHONE_DEFAULT_FIELDS = (
    "verified_name",
    "code_verification_status",
    "display_phone_number",
    "quality_rating",
    "platform_type",
    "throughput",
    "id",
)
_WABA_DEFAULT_FIELDS = ("id", "name", "timezone_id", "message_template_namespace")
_TEMPLATE_FIELDS = (
    "name",
    "parameter_format",
    "components",
    "language",
    "status",
    "category",
    "id",
    "message_send_ttl_seconds",
)


# ---------------------------------------------------------------------- GET /{phone number or WABA id}
async def get_node(request: Request, ctx: SandboxContext) -> Response:
    """``GET /{version}/{node}``: the phone number or the WABA, with the ``fields`` asked for."""
    return await run_graph_call(request, ctx, _node)


def _node(call: GraphCall) -> Response:
    cfg = call.config
    node = call.request.path_params["node"]
    if node == cfg.phone_number_id:
        return _select(_phone_number(cfg), call.request, _PHONE_DEFAULT_FIELDS, "WhatsAppBusinessPhoneNumber")
    if node == cfg.waba_id:
        return _select(_waba(cfg), call.request, _WABA_DEFAULT_FIELDS, "WhatsAppBusinessAccount")
    raise unknown_node(node)


def _phone_number(cfg: SandboxConfig) -> dict[str, Any]:
    """Every field of the phone number node."""
    return {
        "id": cfg.phone_number_id,
        "verified_name": cfg.verified_name,
        "code_verification_status": "VERIFIED",
        "display_phone_number": cfg.display_phone_number,
        "quality_rating": cfg.quality_rating,
        "platform_type": "CLOUD_API",
        "throughput": {"level": cfg.throughput_level},
        "name_status": "APPROVED",
        "status": "CONNECTED",
        "account_mode": "LIVE",
        "is_official_business_account": False,
        "messaging_limit_tier": cfg.messaging_limit,
        "whatsapp_business_manager_messaging_limit": cfg.messaging_limit,
        "health_status": _health("PHONE_NUMBER", cfg.phone_number_id, cfg.health_status),
    }


def _waba(cfg: SandboxConfig) -> dict[str, Any]:
    """Every field of the WhatsApp Business Account node."""
    return {
        "id": cfg.waba_id,
        "name": cfg.waba_name,
        "timezone_id": "1",
        "message_template_namespace": "sandbox_namespace",
        "currency": "USD",
        "account_review_status": "APPROVED",
        "business_verification_status": "verified",
        "ownership_type": "SELF",
        "country": "US",
        "marketing_messages_onboarding_status": cfg.onboarding_status,
        "marketing_messages_lite_api_status": cfg.onboarding_status
        if cfg.onboarding_status in ("ONBOARDED", "ELIGIBLE")
        else "INELIGIBLE",
        "disable_marketing_messages_on_cloud_api": False,
        "is_enabled_for_insights": True,
        "health_status": _health("WABA", cfg.waba_id),
    }


def _health(entity_type: str, entity_id: str, can_send: str = "AVAILABLE") -> dict[str, Any]:
    """Meta's ``health_status`` shape; an entity that is not AVAILABLE names an error and a solution."""
    entity: dict[str, Any] = {"entity_type": entity_type, "id": entity_id, "can_send_message": can_send}
    if can_send != "AVAILABLE":
        entity["errors"] = [
            {
                "error_code": 141000 if can_send == "BLOCKED" else 141001,
                "error_description": f"The sandbox's phone number is {can_send}.",
                "possible_solution": "Configure the sandbox with health_status=AVAILABLE.",
            }
        ]
    return {"can_send_message": can_send, "entities": [entity]}


def _select(values: dict[str, Any], request: Request, defaults: tuple[str, ...], node_type: str) -> Response:
    """The requested fields of a node (its defaults without ``fields``), always with its ``id``."""
    names = requested_fields(request.query_params.get("fields"), values, node_type) or list(defaults)
    data = {n: values[n] for n in names}
    data["id"] = values["id"]
    return json_response(200, data)


# ---------------------------------------------------------------------- GET /{waba}/message_templates
async def get_templates(request: Request, ctx: SandboxContext) -> Response:
    """``GET /{version}/{waba}/message_templates``: filtered, paged, with the ``fields`` asked for."""
    return await run_graph_call(request, ctx, _templates)


def _templates(call: GraphCall) -> Response:
    call.require_node(call.config.waba_id)
    params = call.request.query_params
    rows = _template_rows(call.config, params)
    limit, offset = _page_window(params)
    requested = requested_fields(params.get("fields"), _TEMPLATE_FIELDS, "WhatsAppMessageTemplate")
    page = rows[offset : offset + limit]
    if requested:
        page = [{k: row[k] for k in (*requested, "id") if k in row} for row in page]
    data: dict[str, Any] = {"data": page}
    if page:
        data["paging"] = _paging(call.request, offset, offset + len(page), len(rows), limit)
    return json_response(200, data)


def _template_rows(cfg: SandboxConfig, params: QueryParams) -> list[dict[str, Any]]:
    """The templates matching the ``name``, ``language``, ``status`` and ``category`` filters."""
    name = (params.get("name") or "").lower()
    language = params.get("language")
    statuses = {s.upper() for s in parse_list(params.get("status"))}
    categories = {c.upper() for c in parse_list(params.get("category"))}
    rows = []
    for tpl in sorted(cfg.templates.values(), key=lambda t: (t.name, t.language)):
        if name and name not in tpl.name:
            continue
        if language and tpl.language != language:
            continue
        if statuses and tpl.status not in statuses:
            continue
        if categories and tpl.category not in categories:
            continue
        rows.append(tpl.to_meta())
    return rows


def _page_window(params: QueryParams) -> tuple[int, int]:
    """``limit`` (1 to 1,000, default 25) and the offset of the ``after`` cursor."""
    try:
        limit = int(params.get("limit", "25"))
    except ValueError:
        raise graph_error(100, "Invalid parameter limit: must be an integer") from None
    if not 1 <= limit <= 1000:
        raise graph_error(100, "Invalid parameter limit: must be between 1 and 1000")
    offset = 0
    if params.get("after"):
        decoded = decode_cursor(params["after"])
        if decoded is None:
            raise graph_error(100, "Invalid parameter after: the cursor is not valid")
        offset = decoded
    return limit, offset


def _paging(request: Request, offset: int, end: int, total: int, limit: int) -> dict[str, Any]:
    """Graph's ``paging``: cursors, and ``next`` / ``previous`` links where there is more."""
    paging: dict[str, Any] = {"cursors": {"before": encode_cursor(offset), "after": encode_cursor(end)}}
    if end < total:
        paging["next"] = str(request.url.include_query_params(after=encode_cursor(end), limit=limit))
    if offset > 0:
        paging["previous"] = str(
            request.url.remove_query_params("after").include_query_params(
                before=encode_cursor(max(0, offset - limit)), limit=limit
            )
        )
    return paging


# ---------------------------------------------------------------------- GET /debug_token
async def debug_token(request: Request, ctx: SandboxContext) -> Response:
    """``GET /{version}/debug_token``: what the app (or the token itself) may know about a token."""
    return await run_graph_call(request, ctx, _debug_token, kind="token")


def _debug_token(call: GraphCall) -> Response:
    # An explicit ``access_token`` (usually the app token) wins over the Authorization header.
    cfg = call.config
    params = call.request.query_params
    token = params.get("access_token") or bearer_token(call.request)
    if not token:
        raise graph_error(190, message="An access token is required to request this resource.")
    app_token = f"{cfg.app_id}|{cfg.app_secret}"
    valid_caller = secrets.compare_digest(token.encode(), app_token.encode()) or (
        secrets.compare_digest(token.encode(), cfg.access_token.encode()) and not cfg.token_expired
    )
    if not valid_caller:
        raise graph_error(190, message="Invalid OAuth access token signature.")
    input_token = params.get("input_token")
    if not input_token:
        raise graph_error(100, "The parameter input_token is required.")
    if not secrets.compare_digest(input_token.encode(), cfg.access_token.encode()):
        invalid = {"error": {"code": 190, "message": "Invalid OAuth access token."}, "is_valid": False}
        return json_response(200, {"data": {**invalid, "scopes": []}})
    return json_response(200, {"data": _token_data(cfg)})


def _token_data(cfg: SandboxConfig) -> dict[str, Any]:
    """``debug_token``'s ``data`` for the configured access token."""
    now = int(time.time())
    data: dict[str, Any] = {
        "app_id": cfg.app_id,
        "type": "SYSTEM_USER",
        "application": cfg.waba_name,
        "data_access_expires_at": 0,
        "expires_at": cfg.token_expires_at,
        "is_valid": not cfg.token_expired,
        "issued_at": now - 86400,
        "scopes": list(cfg.token_scopes),
        "granular_scopes": [
            {"scope": scope, "target_ids": [cfg.waba_id]}
            for scope in cfg.token_scopes
            if scope.startswith("whatsapp_")
        ],
        "user_id": "400000000000001",
    }
    if cfg.token_expired:
        data["expires_at"] = cfg.token_expires_at or now - 300
        data["error"] = {
            "code": 190,
            "message": "Error validating access token: Session has expired.",
            "subcode": 463,
        }
    return data

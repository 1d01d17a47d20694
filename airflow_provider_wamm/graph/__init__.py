"""The Graph API layer: payloads, recipients, templates, errors, rate limiting, the HTTP client and its
transports.

Nothing here imports Airflow, so it can be used (and tested) on its own::

    from airflow_provider_wamm.graph import GraphClient, build_marketing_message, normalize_phone

    with GraphClient(token, phone_number_id="1234") as client:
        payload = build_marketing_message(
            to=normalize_phone("+49 151 2345-6789"), template_name="spring_sale", language="en"
        )
        result = client.send_marketing_message(payload)
"""

from __future__ import annotations

from airflow_provider_wamm.graph import builders as _builders
from airflow_provider_wamm.graph import errors as _errors
from airflow_provider_wamm.graph.analytics import (
    ANALYTICS_PRODUCT_TYPES,
    CONVERSION_METRIC_TYPES,
    PRODUCT_TYPE_CLOUD_API,
    PRODUCT_TYPE_MARKETING_MESSAGES,
    TemplateAnalytics,
)
from airflow_provider_wamm.graph.builders import *  # noqa: F403 (exactly the builders' __all__)
from airflow_provider_wamm.graph.client import (
    DEFAULT_BASE_URL,
    DEFAULT_PHONE_NUMBER_FIELDS,
    DEFAULT_TEMPLATE_FIELDS,
    DEFAULT_WABA_FIELDS,
    GraphClient,
    is_loopback_host,
)
from airflow_provider_wamm.graph.connections import SessionTransport, SocketPoolTransport
from airflow_provider_wamm.graph.errors import *  # noqa: F403 (exactly the errors' __all__)
from airflow_provider_wamm.graph.ratelimit import TokenBucket
from airflow_provider_wamm.graph.recipients import (
    RecipientKind,
    is_bsuid,
    is_parent_bsuid,
    mask_phone,
    normalize_phone,
    recipient_kind,
)
from airflow_provider_wamm.graph.results import SendResult
from airflow_provider_wamm.graph.templates import (
    ButtonSpec,
    CardSpec,
    TemplateSpec,
    check_components,
    example_components,
)
from airflow_provider_wamm.graph.transport import RawResponse, Transport
from airflow_provider_wamm.graph.validation import validate_marketing_message
from airflow_provider_wamm.graph.versions import DEFAULT_API_VERSION

__all__ = [
    "ANALYTICS_PRODUCT_TYPES",
    "CONVERSION_METRIC_TYPES",
    "DEFAULT_API_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_PHONE_NUMBER_FIELDS",
    "DEFAULT_TEMPLATE_FIELDS",
    "DEFAULT_WABA_FIELDS",
    "PRODUCT_TYPE_CLOUD_API",
    "PRODUCT_TYPE_MARKETING_MESSAGES",
    "ButtonSpec",
    "CardSpec",
    "GraphClient",
    "RawResponse",
    "RecipientKind",
    "SendResult",
    "SessionTransport",
    "SocketPoolTransport",
    "TemplateAnalytics",
    "TemplateSpec",
    "TokenBucket",
    "Transport",
    "check_components",
    "example_components",
    "is_bsuid",
    "is_loopback_host",
    "is_parent_bsuid",
    "mask_phone",
    "normalize_phone",
    "recipient_kind",
    "validate_marketing_message",
]
# The error tree and the payload builders are exported whole: their modules' __all__ is the list.
__all__ += _errors.__all__
__all__ += _builders.__all__

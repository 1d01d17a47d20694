"""Request payloads for ``POST /{Version}/{Phone-Number-ID}/marketing_messages``: the public import place.

The work is done in three modules, and every name stays importable from here:

* :mod:`airflow_provider_wamm.graph.builders`:
  :func:`~airflow_provider_wamm.graph.builders.build_marketing_message` and the builders of
  its parts, which return plain ``dict`` objects shaped exactly as Meta expects them;
* :mod:`airflow_provider_wamm.graph.validation`:
  :func:`~airflow_provider_wamm.graph.validation.validate_marketing_message` checks a whole payload
  (built there or by hand) and raises :class:`~airflow_provider_wamm.graph.errors.PayloadError`
  naming the offending field as a dotted path, e.g. ``template.components[1].parameters[0].text``;
* :mod:`airflow_provider_wamm.graph.limits`: Meta's limits as data (lengths, options, patterns) and
  the checks of single values.

Limits enforced (see Meta's template and parameter references):

* template name ``^[a-z0-9_]+$``, at most 512 characters;
* header text parameter at most 60 characters; body text parameter at most 1,024 characters,
  or 32,768 when the body is the only component sent;
* text parameters may not contain new lines, tabs or more than four consecutive spaces (Meta
  answers "Param text cannot have new-line/tab characters or more than 4 consecutive spaces");
* coupon codes at most 20 characters, one ``copy_code`` button per message;
* URL button suffix at most 2,000 characters, without white space (percent-encode it);
* at most 10 buttons, button ``index`` 0-9, at most 10 carousel cards;
* currency codes ISO 4217 (three capital letters), ``amount_1000`` a 32-bit integer;
* media (image, video, document, GIF) by ``id`` or by ``http(s)`` ``link``, never both;
* a ``product`` header names ``product_retailer_id`` and a ``catalog_id`` of digits;
* a ``catalog`` button may go without ``parameters`` (the catalogue's first product is shown);
* named parameters (``parameter_name``) and positional ones are never mixed in one component.

Validation is written for the hot path of a bulk sender (a few microseconds per payload).
"""

from __future__ import annotations

from airflow_provider_wamm.graph import builders as _builders
from airflow_provider_wamm.graph.builders import *  # noqa: F403 (exactly the builders' __all__)
from airflow_provider_wamm.graph.errors import InvalidRecipientError, PayloadError
from airflow_provider_wamm.graph.limits import (
    BODY_ONLY_TEXT_MAX,
    BODY_TEXT_MAX,
    BUTTON_SUB_TYPES,
    COUPON_CODE_MAX,
    HEADER_TEXT_MAX,
    LANGUAGE_POLICIES,
    MAX_BUTTONS,
    MAX_CAROUSEL_CARDS,
    PRODUCT_POLICIES,
    TEMPLATE_NAME_MAX,
    URL_SUFFIX_MAX,
)
from airflow_provider_wamm.graph.validation import validate_marketing_message

__all__ = [
    "BODY_ONLY_TEXT_MAX",
    "BODY_TEXT_MAX",
    "BUTTON_SUB_TYPES",
    "COUPON_CODE_MAX",
    "HEADER_TEXT_MAX",
    "LANGUAGE_POLICIES",
    "MAX_BUTTONS",
    "MAX_CAROUSEL_CARDS",
    "PRODUCT_POLICIES",
    "TEMPLATE_NAME_MAX",
    "URL_SUFFIX_MAX",
    "InvalidRecipientError",
    "PayloadError",
    "validate_marketing_message",
]
# Every builder, as the builders module lists them.
__all__ += _builders.__all__

"""The callback key each send carries in ``biz_opaque_callback_data``, so a status webhook finds its send.

The key names the ledger row without personal data: ``wamm1.<16 hex digits>.<campaign id>``, the hex
digits a short hash of the campaign and the recipient (not reversible without trying numbers one by one).
Meta echoes ``biz_opaque_callback_data`` in the status webhooks of Cloud API sends; it does not document
the echo for ``marketing_messages``, so the receiver also matches a status to an ``unknown`` send by its
recipient (:mod:`~airflow_provider_wamm.campaign.ledger.resolution`). ``callback_data`` in the campaign's
settings is the text sent: ``"{key}"`` (default) is the key alone, another text may hold ``{key}`` among
your own words, and ``None`` sends nothing.
"""

from __future__ import annotations

import hashlib
import re

#: Version prefix of the key.
CALLBACK_PREFIX = "wamm1"
#: The default ``callback_data``: the key alone.
DEFAULT_CALLBACK_DATA = "{key}"
#: Where the key goes in ``callback_data``.
KEY_PLACEHOLDER = "{key}"
#: Longest key (prefix, hash, the longest campaign id, two dots).
KEY_MAX = len(CALLBACK_PREFIX) + 16 + 255 + 2
_KEY_RE = re.compile(rf"{CALLBACK_PREFIX}\.([0-9a-f]{{16}})\.(\S{{1,255}})")


def row_hash(campaign_id: str, recipient: str) -> str:
    """16 hex digits naming the ledger row ``(campaign_id, recipient)``."""
    raw = f"{campaign_id}\x00{recipient}".encode()
    return hashlib.blake2b(raw, digest_size=8, person=b"wamm-callback").hexdigest()


def callback_key(campaign_id: str, recipient: str) -> str:
    """The key of one send: ``wamm1.<hash>.<campaign id>``."""
    return f"{CALLBACK_PREFIX}.{row_hash(campaign_id, recipient)}.{campaign_id}"


def render_callback_data(template: str | None, campaign_id: str, recipient: str) -> str | None:
    """The ``biz_opaque_callback_data`` of one send (``None``: none)."""
    if template is None:
        return None
    if KEY_PLACEHOLDER not in template:
        return template
    return template.replace(KEY_PLACEHOLDER, callback_key(campaign_id, recipient))


def find_callback_key(value: object) -> str | None:
    """The key inside a webhook's ``biz_opaque_callback_data`` (``None`` when there is none: anything
    that is not a string, or a string without a key, is no key)."""
    if not isinstance(value, str) or len(value) > 4096:
        return None
    found = _KEY_RE.search(value)
    return found.group(0) if found else None


__all__ = [
    "CALLBACK_PREFIX",
    "DEFAULT_CALLBACK_DATA",
    "KEY_MAX",
    "KEY_PLACEHOLDER",
    "callback_key",
    "find_callback_key",
    "render_callback_data",
    "row_hash",
]

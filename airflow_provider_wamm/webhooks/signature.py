"""Meta's webhook signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``.

The HMAC is keyed with the Meta app secret and computed over the request body exactly as received:
re-serialising the parsed JSON would change spaces and ``\\u`` escapes and break the check.
"""

from __future__ import annotations

import hashlib
import hmac
import re

#: The request header that carries Meta's signature.
SIGNATURE_HEADER = "X-Hub-Signature-256"

_SIGNATURE_RE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")


def sign(body: bytes, app_secret: str) -> str:
    """The header value Meta would send for ``body``: ``"sha256=" + hex HMAC-SHA256(app_secret, body)``.

    :param body: the raw request body.
    :param app_secret: the Meta app secret (the HMAC key).
    """
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(body: bytes, header: str | None, app_secret: str) -> bool:
    """Whether ``header`` is a valid signature of ``body`` under ``app_secret`` (constant-time compare).

    :param body: the raw request body, byte for byte as received.
    :param header: the value of the ``X-Hub-Signature-256`` header (``None`` when absent).
    :param app_secret: the Meta app secret; an empty secret never verifies anything.
    """
    if not header or not app_secret:
        return False
    match = _SIGNATURE_RE.match(header.strip())
    if match is None:
        return False
    expected = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), match.group(1).lower().encode("ascii"))


__all__ = ["SIGNATURE_HEADER", "sign", "verify_signature"]

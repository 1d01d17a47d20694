"""Secrets kept out of ``repr()``, exception text and log lines.

The access token travels in an ``Authorization`` header, and in one query string (``debug_token``'s
``input_token``); ``urllib3`` logs request lines at DEBUG level. :func:`redact` blanks the secrets a
URL or a header can carry, :class:`RedactingFilter` applies it to ``urllib3``'s log records (installed
when this module is imported), :func:`scrub` also blanks known secret values, and :class:`Secret`
holds a value so that ``repr``/``vars`` of its owner never show it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

__all__ = ["URLLIB3_LOGGERS", "RedactingFilter", "Secret", "install_log_filter", "redact", "scrub"]

#: Loggers of ``urllib3`` that write request URLs.
URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry")

_QUERY_SECRET_RE = re.compile(
    r"((?:access_token|input_token|client_secret|appsecret_proof|hub\.verify_token|fb_exchange_token)=)[^&\s\"']+",
    re.IGNORECASE,
)
_BEARER_RE = re.compile(r"(Bearer\s+)[A-Za-z0-9._|\-]+", re.IGNORECASE)
_FILTER_LOCK = threading.Lock()


def redact(text: str) -> str:
    """Blank out query-string secrets and bearer tokens in ``text``."""
    return _BEARER_RE.sub(r"\1***", _QUERY_SECRET_RE.sub(r"\1***", text))


#: Shorter values are not replaced: blanking every "abc" in a text would hide more than it protects.
MIN_SECRET_LENGTH = 4


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every value of ``secrets`` (of 4 characters or more) in ``text`` by ``***``, then
    :func:`redact` it: the one scrubber for texts people see (errors, logs, connection tests)."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH and secret in text:
            text = text.replace(secret, "***")
    return redact(text)


class RedactingFilter(logging.Filter):
    """Redacts secrets that ``urllib3`` would log with request URLs at DEBUG level."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record's arguments (or its message, when it has none); never drops a record."""
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install_log_filter(names: Iterable[str] = URLLIB3_LOGGERS) -> None:
    """Add a :class:`RedactingFilter` to each named logger that has none yet (safe to call again)."""
    with _FILTER_LOCK:
        for name in names:
            logger = logging.getLogger(name)
            if not any(isinstance(f, RedactingFilter) for f in logger.filters):
                logger.addFilter(RedactingFilter())


class Secret:
    """Holds a secret so that ``repr``/``vars`` of its owner never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The secret itself."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"


install_log_filter()

"""Keep every log line of a test run in one file, so CI can search the whole run (for a secret, say).

Active only when ``WAMM_TEST_LOG_FILE`` names a file: from the start of the session, every stdlib log
record (the root logger at DEBUG, with a handler at DEBUG) and every structlog event (Airflow's task
loggers, through a processor placed just before structlog's renderer) is appended to it, one line
each, exceptions with their traceback. Tests that lower the root logger's level themselves, or capture
structlog events (``airflow_logs``), leave their own gap; everything else lands in the file.

Example: ``WAMM_TEST_LOG_FILE=/tmp/run.log pytest; ! grep -F "$TOKEN" /tmp/run.log``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import MutableMapping
from typing import Any, TextIO

import pytest

ENV = "WAMM_TEST_LOG_FILE"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogFile:
    """Appends stdlib records and structlog events to ``path`` between :meth:`start` and :meth:`stop`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stream: TextIO | None = None
        self._handler: logging.Handler | None = None
        self._previous_level = logging.WARNING

    # -- stdlib --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the file, attach the root handler at DEBUG and the structlog processor."""
        self._stream = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed in stop()
        handler = logging.StreamHandler(self._stream)
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter(_FORMAT))
        self._handler = handler
        root = logging.getLogger()
        self._previous_level = root.level
        root.addHandler(handler)
        self.ensure()

    def ensure(self) -> None:
        """Re-attach what a test or a logging reconfiguration may have removed."""
        root = logging.getLogger()
        if self._handler is not None and self._handler not in root.handlers:
            root.addHandler(self._handler)
        if root.level > logging.DEBUG or root.level == logging.NOTSET:
            root.setLevel(logging.DEBUG)
        self._install_structlog()

    def stop(self) -> None:
        """Detach everything and close the file."""
        root = logging.getLogger()
        if self._handler is not None:
            root.removeHandler(self._handler)
            self._handler = None
        root.setLevel(self._previous_level)
        self._remove_structlog()
        if self._stream is not None:
            with self._lock:
                self._stream.close()
            self._stream = None

    # -- structlog -----------------------------------------------------------------------------------

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        """The structlog processor: write the event as one line, pass it on unchanged."""
        stream = self._stream
        if stream is not None:
            event = event_dict.get("event", "")
            level = event_dict.get("level") or event_dict.get("log_level") or method_name
            name = event_dict.get("logger") or event_dict.get("logger_name") or "structlog"
            rest = " ".join(
                f"{k}={v!r}"
                for k, v in event_dict.items()
                if k not in ("event", "level", "log_level", "logger")
            )
            line = f"structlog {str(level).upper()} {name}: {event} {rest}".rstrip()
            with self._lock:
                if not stream.closed:
                    stream.write(line.replace("\n", "\n    ") + "\n")
        return event_dict

    def _processors(self) -> list[Any] | None:
        try:
            import structlog
        except ImportError:  # pragma: no cover - structlog comes with Airflow
            return None
        processors = structlog.get_config().get("processors")
        return processors if isinstance(processors, list) else None

    def _install_structlog(self) -> None:
        processors = self._processors()
        if processors is None or any(p is self for p in processors):
            return
        # In place, so loggers already bound to this list see it too; before the renderer, so the
        # event is formatted (positional arguments applied) but not yet turned into text.
        processors.insert(max(0, len(processors) - 1), self)

    def _remove_structlog(self) -> None:
        processors = self._processors()
        if processors is not None:
            processors[:] = [p for p in processors if p is not self]


_ACTIVE: list[LogFile] = []


def pytest_configure(config: pytest.Config) -> None:
    """Start writing when ``WAMM_TEST_LOG_FILE`` is set."""
    path = os.environ.get(ENV)
    if path and not _ACTIVE:
        log_file = LogFile(path)
        log_file.start()
        _ACTIVE.append(log_file)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before each test: the handler and the processor are still in place (Airflow may reconfigure)."""
    for log_file in _ACTIVE:
        log_file.ensure()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop writing at the end of the session."""
    while _ACTIVE:
        _ACTIVE.pop().stop()

"""The run-wide log file of ``tests/plugins/log_capture.py`` gets stdlib records and structlog events."""

from __future__ import annotations

import logging
import pathlib

import structlog

from tests.plugins.log_capture import LogFile


def test_log_file_collects_stdlib_and_structlog_lines(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.log"
    log_file = LogFile(str(path))
    root = logging.getLogger()
    level = root.level
    log_file.start()
    try:
        log_file.ensure()  # idempotent: one handler, one processor
        assert sum(1 for p in structlog.get_config()["processors"] if p is log_file) == 1
        logging.getLogger("wamm.capture.test").debug("stdlib debug %s", "line-one")
        try:
            raise ValueError("boom-in-traceback")
        except ValueError:
            logging.getLogger("wamm.capture.test").exception("failed")
        structlog.get_logger("wamm.capture.structlog").warning("structlog %s", "line-two")
    finally:
        log_file.stop()
    text = path.read_text(encoding="utf-8")
    assert "DEBUG wamm.capture.test: stdlib debug line-one" in text
    assert "boom-in-traceback" in text
    assert "structlog WARNING" in text and "structlog line-two" in text
    assert all(p is not log_file for p in structlog.get_config()["processors"])
    assert root.level == level
    logging.getLogger("wamm.capture.test").warning("after stop")
    assert "after stop" not in path.read_text(encoding="utf-8")

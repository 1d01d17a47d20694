"""``wamm-webhooks``: run the status-webhook receiver on its own, without an Airflow API server.

Secrets come from environment variables (or files), never from flags, so they do not show up in
process listings or shell history:

* ``WAMM_APP_SECRET`` (or ``--app-secret-file``): the Meta app secret that signs the webhooks;
* ``WAMM_VERIFY_TOKEN`` (or ``--verify-token-file``): the verify token of the handshake;
* ``WAMM_LEDGER_URL`` (or ``--ledger-url``): the ledger's SQLAlchemy URL, e.g.
  ``postgresql+psycopg://user:pw@db/wamm`` (default: the SQLite file the operators use on this machine,
  ``$AIRFLOW_HOME/wamm/ledger.db``);
* ``WAMM_WEBHOOK_HOST`` / ``WAMM_WEBHOOK_PORT`` (or ``--host`` / ``--port``).

Meta requires HTTPS with a valid certificate: put the receiver behind a TLS-terminating proxy, or pass
``--ssl-certfile`` and ``--ssl-keyfile``. The callback URL is ``https://<host>/``.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import re
import sys
from collections.abc import Sequence
from typing import Any

from airflow_provider_wamm.campaign.ledger.schema import DEFAULT_TABLE_PREFIX, default_ledger_path
from airflow_provider_wamm.webhooks.app import DEFAULT_MAX_BODY_BYTES, WebhookSettings, create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090

log = logging.getLogger("airflow_provider_wamm.webhooks")


_VERIFY_TOKEN_RE = re.compile(r"(hub\.verify_token=)[^&\s\"]*")


class RedactVerifyToken(logging.Filter):
    """Blank out ``hub.verify_token=...`` in log records (uvicorn's access log prints query strings)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _VERIFY_TOKEN_RE.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _VERIFY_TOKEN_RE.sub(r"\1***", record.msg)
        return True


def default_ledger_url() -> str:
    """The SQLite ledger the operators use by default on this machine (``$AIRFLOW_HOME/wamm/ledger.db``)."""
    return f"sqlite:///{default_ledger_path()}"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (flags default to the ``WAMM_*`` environment variables)."""
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="wamm-webhooks",
        description="Receive WhatsApp status and click webhooks and store them in the campaign ledger.",
    )
    parser.add_argument("--host", default=env.get("WAMM_WEBHOOK_HOST", DEFAULT_HOST), help="bind address")
    parser.add_argument(
        "--port", type=int, default=int(env.get("WAMM_WEBHOOK_PORT", DEFAULT_PORT)), help="bind port"
    )
    parser.add_argument(
        "--ledger-url",
        default=env.get("WAMM_LEDGER_URL"),
        help="SQLAlchemy URL of the ledger (env WAMM_LEDGER_URL; default the local SQLite ledger)",
    )
    parser.add_argument(
        "--table-prefix",
        default=env.get("WAMM_LEDGER_TABLE_PREFIX", DEFAULT_TABLE_PREFIX),
        help="prefix of the ledger's tables (env WAMM_LEDGER_TABLE_PREFIX)",
    )
    parser.add_argument(
        "--app-secret-file", type=pathlib.Path, help="file holding the Meta app secret (else WAMM_APP_SECRET)"
    )
    parser.add_argument(
        "--verify-token-file",
        type=pathlib.Path,
        help="file holding the verify token (else WAMM_VERIFY_TOKEN)",
    )
    parser.add_argument(
        "--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="largest accepted body"
    )
    parser.add_argument("--ssl-certfile", help="TLS certificate (PEM) when not behind a TLS proxy")
    parser.add_argument("--ssl-keyfile", help="TLS private key (PEM)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


def _secret(path: pathlib.Path | None, env_name: str) -> str | None:
    if path is not None:
        value = path.read_text(encoding="utf-8").strip()
    else:
        value = os.environ.get(env_name, "").strip()
    return value or None


def build_app(args: argparse.Namespace) -> Any:
    """The receiver app for parsed ``args``; ``SystemExit(2)`` with a message when a secret is missing."""
    from airflow_provider_wamm.campaign.ledger import Ledger

    app_secret = _secret(args.app_secret_file, "WAMM_APP_SECRET")
    verify_token = _secret(args.verify_token_file, "WAMM_VERIFY_TOKEN")
    missing = [
        name
        for name, value in (("WAMM_APP_SECRET", app_secret), ("WAMM_VERIFY_TOKEN", verify_token))
        if not value
    ]
    if missing:
        print(f"wamm-webhooks: set {' and '.join(missing)} (or pass the matching --*-file).", file=sys.stderr)
        raise SystemExit(2)
    url = args.ledger_url or default_ledger_url()
    if url.startswith("sqlite:///") and not args.ledger_url:
        pathlib.Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    ledger = Ledger.from_url(url, table_prefix=args.table_prefix)
    ledger.ensure_schema()
    settings = WebhookSettings(
        app_secret=app_secret,
        verify_token=verify_token,
        ledger=ledger,
        max_body_bytes=args.max_body_bytes,
    )
    return create_app(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the receiver until interrupted; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        app = build_app(args)
    except SystemExit as exc:
        return int(exc.code or 2)
    import uvicorn

    logging.getLogger("uvicorn.access").addFilter(RedactVerifyToken())
    log.info("Receiving WhatsApp webhooks on %s:%d.", args.host, args.port)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        proxy_headers=True,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

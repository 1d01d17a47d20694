"""Throw-away PostgreSQL and MariaDB servers for the ledger's portability tests.

Each server runs from a temporary directory on a free local port and is stopped at the end of the
test session. When the server binaries are not installed the tests using them are skipped.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user(user: str, argv: list[str]) -> list[str]:
    """Database servers refuse to run as root: drop to their service user when we are root."""
    if os.geteuid() == 0 and shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *argv]
    return argv


def _owned_tmpdir(user: str) -> pathlib.Path:
    path = pathlib.Path(tempfile.mkdtemp(prefix=f"wamm-{user}-"))
    if os.geteuid() == 0:
        shutil.chown(path, user=user)
    return path


def _wait_connect(url: str, timeout: float = 30.0) -> None:
    engine = sa.create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                return
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        engine.dispose()


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start PostgreSQL; yield a SQLAlchemy URL (psycopg 3)."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = _owned_tmpdir("postgres")
    data, port = root / "data", _free_port()
    try:
        subprocess.run(
            _as_user(
                "postgres",
                [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
            ),
            check=True,
            capture_output=True,
        )
        options = f"-k {root} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_user(
                "postgres", [pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(root / "log"), "start"]
            ),
            check=True,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start PostgreSQL: {exc}")
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    try:
        _wait_connect(url)
        yield url
    finally:
        subprocess.run(
            _as_user("postgres", [pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def mariadb_server() -> Iterator[str]:
    """Start MariaDB (or MySQL); yield a SQLAlchemy URL (PyMySQL)."""
    server = shutil.which("mariadbd") or shutil.which("mysqld", path="/usr/sbin:/usr/bin")
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if not server or not install:
        pytest.skip("MariaDB server binaries (mariadbd, mariadb-install-db) are not installed")
    root = _owned_tmpdir("mysql")
    data, port = root / "data", _free_port()
    user_args = ["--user=mysql"] if os.geteuid() == 0 else []
    try:
        subprocess.run(
            [
                install,
                "--no-defaults",
                f"--datadir={data}",
                *user_args,
                "--skip-test-db",
                "--auth-root-authentication-method=normal",
            ],
            check=True,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not initialise MariaDB: {exc}")
    log = (root / "log").open("wb")
    proc = subprocess.Popen(
        [
            server,
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={root / 'sock'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--skip-grant-tables",
            "--innodb-flush-log-at-trx-commit=0",
            "--skip-log-bin",
            *user_args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"mysql+pymysql://root@127.0.0.1:{port}"
    try:
        try:
            _wait_connect(base + "/mysql")
        except sa.exc.OperationalError as exc:
            pytest.skip(f"could not start MariaDB: {exc}")
        engine = sa.create_engine(base + "/mysql")
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE DATABASE IF NOT EXISTS wamm CHARACTER SET utf8mb4"))
        engine.dispose()
        yield base + "/wamm?charset=utf8mb4"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)

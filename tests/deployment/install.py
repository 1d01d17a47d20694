"""The provider installed as a user installs it: a wheel, in a fresh virtual environment made by ``uv``.

The wheel is built from this checkout (``uv build``). The environment gets the wheel, Airflow pinned to
the version of the test environment, the Celery provider with ``redis``, ``psycopg`` for the PostgreSQL
metadata database and ledger, and the SQLite provider for the examples' CRM. Every package the test
environment already has is pinned to the same version (a constraints file), so ``uv`` takes them from its
cache and resolves only what is new.
"""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parents[2]

#: What the deployment installs besides the wheel (Airflow itself comes pinned, see ``requirements``).
EXTRA_PACKAGES = (
    "apache-airflow-providers-celery",
    "apache-airflow-providers-sqlite",
    "psycopg[binary]",
    "redis",
)


@dataclass(frozen=True)
class InstalledAirflow:
    """A virtual environment holding Airflow and the provider's wheel."""

    root: pathlib.Path
    wheel: pathlib.Path
    seconds: float

    @property
    def bin(self) -> pathlib.Path:
        return self.root / "bin"

    def command(self, name: str) -> str:
        """The path of a console script of the environment (``airflow``, ``wamm-sandbox``...)."""
        return str(self.bin / name)


def find_uv() -> str | None:
    """``uv`` next to the test interpreter (``make venv`` installs it there) or on ``PATH``."""
    beside = pathlib.Path(sys.executable).parent / "uv"
    if beside.exists():
        return str(beside)
    return shutil.which("uv")


def requirements() -> list[str]:
    """The packages to install, Airflow pinned to the test environment's version."""
    airflow_version = importlib.metadata.version("apache-airflow")
    return [f"apache-airflow=={airflow_version}", *EXTRA_PACKAGES]


def constraints() -> str:
    """``name==version`` of every distribution of the test environment but the provider itself."""
    pins = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in ("airflow-provider-wamm", "pip", "uv"):
            pins[name.lower()] = f"{name}=={dist.version}"
    return "\n".join(sorted(pins.values())) + "\n"


def _run(args: list[str], log: pathlib.Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "AIRFLOW"))}
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(args)}\n")
        out.flush()
        result = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, env=env, check=False, timeout=900)
    if result.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{args[:3]} failed (exit {result.returncode}):\n{tail}")


def install(workdir: pathlib.Path, uv: str) -> InstalledAirflow:
    """Build the wheel and install it with Airflow into ``workdir / "venv"``."""
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "install.log"
    dist = workdir / "dist"
    _run([uv, "build", "--wheel", "--out-dir", str(dist), str(ROOT)], log)
    (wheel,) = sorted(dist.glob("airflow_provider_wamm-*.whl"))
    venv = workdir / "venv"
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], log)
    pins = workdir / "constraints.txt"
    pins.write_text(constraints(), encoding="utf-8")
    python = str(venv / "bin" / "python")
    _run(
        [uv, "pip", "install", "--python", python, "--constraint", str(pins), str(wheel), *requirements()],
        log,
    )
    return InstalledAirflow(root=venv, wheel=wheel, seconds=time.monotonic() - started)

"""Shared pieces of the benchmarks: the sandbox in its own process, child processes, machine facts.

The sandbox always runs as a separate process (``wamm-sandbox``), so the server and the measured
client never share an interpreter lock. Measured code also runs in child processes
(``benchmarks/child.py``), each reporting its own CPU time and peak RSS, so the figures are the
sending process's own and nothing else's.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
CHILD = HERE / "child.py"

#: Token, phone number id and template every benchmark uses (the sandbox defaults).
TOKEN = "sandbox-token"
PHONE_NUMBER_ID = "100000000000001"
WABA_ID = "200000000000001"
TEMPLATE = "spring_sale"
LANGUAGE = "en_US"
#: Personalisation of ``spring_sale``: two body parameters and a URL button suffix.
PERSONALISATION: dict[str, Any] = {
    "body_parameters": ["{name}", "{discount}"],
    "buttons": [{"type": "url", "index": 0, "text": "{slug}"}],
}


def phone(i: int) -> str:
    """A valid German mobile number, as a CRM would hold it."""
    return f"+49 151 {i:08d}"


def digits(i: int) -> str:
    """The same number as E.164 digits."""
    return f"49151{i:08d}"


def recipient_row(i: int) -> dict[str, Any]:
    """One recipient row for ``spring_sale``."""
    return {"phone": phone(i), "name": f"Ana{i}", "discount": f"{10 + i % 40}%", "slug": f"s{i}"}


def payload(i: int) -> dict[str, Any]:
    """The JSON body the provider sends for recipient ``i`` (what a hand-written loop would post)."""
    row = recipient_row(i)
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": digits(i),
        "type": "template",
        "template": {
            "name": TEMPLATE,
            "language": {"code": LANGUAGE},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": row["name"]},
                        {"type": "text", "text": row["discount"]},
                    ],
                },
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": "0",
                    "parameters": [{"type": "text", "text": row["slug"]}],
                },
            ],
        },
    }


# --------------------------------------------------------------------------------------------
# The sandbox process
# --------------------------------------------------------------------------------------------


class SandboxProcess:
    """``wamm-sandbox`` in a subprocess, driven through its ``/_sandbox/`` admin endpoints."""

    def __init__(self, *args: str) -> None:
        self.args = ["--port", "0", "--no-pair-limit", "--mps-cap", "0", *args]
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> SandboxProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [PYTHON, str(HERE / "sandbox_server.py"), *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                self.url = match.group(1)
                return self
        self.__exit__()
        raise RuntimeError("the sandbox did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 120) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def reset(self, **config: Any) -> None:
        """Forget every message; apply ``config`` (``SandboxConfig`` fields) on top of the current one."""
        self._call("POST", "/_sandbox/reset", {"config": config} if config else {})

    def counts(self) -> dict[str, Any]:
        """Accepted messages, errors by code, ``max_window_count`` and more."""
        return self._call("GET", "/_sandbox/counts")

    def cpu_seconds(self) -> float:
        """CPU time (user + sys) the sandbox process used so far (Linux ``/proc``)."""
        assert self.proc is not None
        return proc_cpu_seconds(self.proc.pid)


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, from ``/proc/<pid>/stat``."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# --------------------------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------------------------


@dataclass
class ChildResult:
    """What a child process printed as its last JSON line, plus its exit status and stderr tail."""

    data: dict[str, Any]
    returncode: int
    stderr: str = ""
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def run_child(
    kind: str, spec: dict[str, Any], *, timeout: float = 900, env: dict[str, str] | None = None
) -> ChildResult:
    """Run ``child.py <kind> <json spec>`` and return its last JSON line."""
    started = time.monotonic()
    proc = subprocess.run(
        [PYTHON, str(CHILD), kind, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )
    wall = time.monotonic() - started
    data: dict[str, Any] = {}
    for raw in reversed(proc.stdout.splitlines()):
        line = raw.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
                break
            except ValueError:
                continue
    tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
    if proc.returncode != 0 or not data:
        raise RuntimeError(f"child {kind} failed (exit {proc.returncode}):\n{tail}")
    return ChildResult(data=data, returncode=proc.returncode, stderr=tail, wall_s=wall)


class Background:
    """A long-running child process (a web server), ready once ``health_url`` answers 200."""

    def __init__(self, argv: list[str], health_url: str, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.health_url = health_url
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> Background:
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})},
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        printed = self.output()
        self.__exit__()
        raise RuntimeError(f"{self.argv[:3]} did not start:\n{printed[-2000:]}")

    def output(self) -> str:
        """What the process printed so far."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def cpu_seconds(self) -> float:
        """CPU time the process used so far."""
        assert self.proc is not None
        return proc_cpu_seconds(self.proc.pid)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------
# Measuring oneself (used inside children)
# --------------------------------------------------------------------------------------------


def cpu_now() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Current resident set size in MiB."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# --------------------------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, Python and OS of this machine, for the report's header."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = ""
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    os_name = platform.platform()
    try:
        release = pathlib.Path("/etc/os-release").read_text()
        match = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', release, re.MULTILINE)
        if match:
            os_name = f"{match.group(1)} (Linux {platform.release()})"
    except OSError:
        pass
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count() or "?"),
        "ram": ram,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": os_name,
        "load": load,
    }

"""Airflow's public REST API (``/api/v2``), as a user's script drives it.

Authentication is the simple auth manager's: ``POST /auth/token`` with a user name and password gives a
JWT, sent as ``Authorization: Bearer <token>`` (Airflow's "API authentication" docs). Runs are triggered
with ``logical_date: null``, as the UI, ``airflow dags trigger`` and most scripts do in Airflow 3.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

#: Task instance states after which a try is over.
FINISHED = {"success", "failed", "skipped", "upstream_failed", "removed"}


class ApiError(RuntimeError):
    """An answer outside 2xx, with its status and body."""


@dataclass
class AirflowApi:
    """A logged-in client of one API server."""

    base_url: str
    username: str
    password: str
    session: requests.Session = field(default_factory=requests.Session)

    def login(self) -> None:
        """Get a token from the API server (simple auth manager) and use it from now on."""
        answer = requests.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=30,
        )
        if answer.status_code not in (200, 201):
            raise ApiError(f"login failed: {answer.status_code} {answer.text[:500]}")
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """``method`` on ``/api/v2{path}``; the JSON answer (``ApiError`` when not 2xx)."""
        kwargs.setdefault("timeout", 60)
        answer = self.session.request(method, f"{self.base_url}/api/v2{path}", **kwargs)
        if answer.status_code == 401:  # the token expired: log in again once
            self.login()
            answer = self.session.request(method, f"{self.base_url}/api/v2{path}", **kwargs)
        if not 200 <= answer.status_code < 300:
            raise ApiError(f"{method} {path}: {answer.status_code} {answer.text[:1000]}")
        if not answer.content:
            return None
        if "json" in answer.headers.get("content-type", ""):
            return answer.json()
        return answer.text

    # -- DAGs and runs ---------------------------------------------------------------------------

    def dag_ids(self) -> set[str]:
        return {d["dag_id"] for d in self.call("GET", "/dags", params={"limit": 100})["dags"]}

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/importErrors")["import_errors"])

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
        """A manual run with no logical date, as ``airflow dags trigger`` makes."""
        return dict(
            self.call("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        )

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"])

    def set_run_state(self, dag_id: str, run_id: str, state: str) -> None:
        """Mark a run ``success`` or ``failed`` (its unfinished task instances follow)."""
        self.call("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": state})

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict[str, Any]:
        """Poll until the run is over; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(dag_id, run_id)
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                states = {t["task_id"]: t["state"] for t in self.task_instances(dag_id, run_id)}
                raise TimeoutError(f"{dag_id} {run_id} still {run['state']} after {timeout} s: {states}")
            time.sleep(1)

    # -- task instances --------------------------------------------------------------------------

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return list(self.call("GET", path, params={"limit": 100})["task_instances"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``task_id`` (``task_id[i]`` for a mapped one) -> state."""
        return {
            f"{t['task_id']}[{t['map_index']}]" if t["map_index"] >= 0 else t["task_id"]: t["state"]
            for t in self.task_instances(dag_id, run_id)
        }

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """One task instance (``state``, ``try_number``, ``pid`` of the process running it...)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        if map_index >= 0:
            path += f"/{map_index}"
        return dict(self.call("GET", path))

    def wait_task(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        states: Iterable[str],
        timeout: float = 180,
        map_index: int = -1,
    ) -> dict[str, Any]:
        """Poll until the task instance is in one of ``states``."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while True:
            ti = self.task_instance(dag_id, run_id, task_id, map_index)
            if ti["state"] in wanted:
                return ti
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id}.{task_id} is {ti['state']}, not in {sorted(wanted)}")
            time.sleep(0.3)

    def clear(self, dag_id: str, run_id: str, task_ids: list[Any]) -> list[dict[str, Any]]:
        """Clear task instances of a run and what follows them, running ones too (the UI's Clear
        button); ``task_ids`` items are ids or ``[task_id, map_index]``."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": task_ids,
            "only_failed": False,
            "reset_dag_runs": True,
            "include_downstream": True,
        }
        return list(self.call("POST", f"/dags/{dag_id}/clearTaskInstances", json=body)["task_instances"])

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, key: str = "return_value"
    ) -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        params = {"map_index": map_index, "deserialize": True, "stringify": False}
        return self.call("GET", path, params=params)["value"]

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """The task's log for one try, as text (each structured line's event and fields)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        params = {"full_content": True, "map_index": map_index}
        answer = self.call("GET", path, params=params, headers={"Accept": "application/json"})
        lines: list[str] = []
        for entry in answer.get("content", []) if isinstance(answer, dict) else []:
            lines.append(" ".join(str(v) for v in entry.values()) if isinstance(entry, dict) else str(entry))
        return "\n".join(lines)

    def set_pool_slots(self, pool: str, slots: int) -> None:
        """Resize a pool; with 0 slots nothing new starts (running task instances keep theirs)."""
        self.call("PATCH", f"/pools/{pool}", params={"update_mask": ["slots"]}, json={"slots": slots})

    # -- connections -----------------------------------------------------------------------------

    def put_connection(self, connection: dict[str, Any]) -> None:
        """Create the connection (or replace it when it exists)."""
        conn_id = connection["connection_id"]
        with contextlib.suppress(ApiError):
            self.call("DELETE", f"/connections/{conn_id}")
        self.call("POST", "/connections", json=connection)

    def test_connection(self, body: dict[str, Any]) -> tuple[int, Any]:
        """``POST /connections/test`` with ``body``; the HTTP status and the answer (never raises)."""
        answer = self.session.post(f"{self.base_url}/api/v2/connections/test", json=body, timeout=60)
        try:
            return answer.status_code, answer.json()
        except ValueError:
            return answer.status_code, answer.text

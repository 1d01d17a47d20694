"""What every benchmark job shares: the figures it measures, the detail it writes, its work directory.

The jobs (``throughput.py``, ``latency.py``, ``shared_cap.py``, ``memory.py``, ``ledger_scale.py``)
are functions of a :class:`Bench`; ``run.py`` runs them and ``report.py`` writes the page.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

#: The command that runs the benchmarks (quoted in the report beside each figure).
RUN = "python benchmarks/run.py"
#: The flat answer time of the older benchmarks, seconds.
LATENCY_S = 0.1


@dataclass
class Figure:
    """One measured figure with its target (``passed`` is ``None`` for figures without one)."""

    bench: str
    what: str
    value: str
    target: str
    baseline: str
    passed: bool | None
    notes: str = ""


@dataclass
class Section:
    """The detail of one benchmark for the report: settings and raw numbers."""

    bench: str
    title: str
    lines: list[str] = field(default_factory=list)


class Bench:
    """Runs the benchmarks and keeps their figures."""

    def __init__(self, work: pathlib.Path, *, quick: bool) -> None:
        self.work = work
        self.quick = quick
        self.figures: list[Figure] = []
        self.sections: dict[str, Section] = {}
        self.errors: list[str] = []
        self.timings: dict[str, float] = {}

    def scale(self, n: int, quick: int) -> int:
        """``n``, or ``quick`` in a ``--quick`` run (a smoke test of the harness, not a measurement)."""
        return quick if self.quick else n

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        mark = {True: "pass", False: "FAIL", None: "info"}[figure.passed]
        print(f"  [{mark}] {figure.bench} {figure.what}: {figure.value} (target {figure.target})", flush=True)

    def section(self, bench: str, title: str) -> Section:
        return self.sections.setdefault(bench, Section(bench, title))

    def ledger_path(self, name: str) -> str:
        path = self.work / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            pathlib.Path(f"{path}{suffix}").unlink(missing_ok=True)
        return str(path)


__all__ = ["LATENCY_S", "RUN", "Bench", "Figure", "Section"]

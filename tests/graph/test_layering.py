"""The graph layer stands alone: no Airflow import, picklable errors, a complete public namespace."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys

import airflow_provider_wamm.graph as graph
from airflow_provider_wamm.graph import (
    GraphTransportError,
    InvalidRecipientError,
    PayloadError,
    UnknownOutcomeError,
    errors,
    parse_error_envelope,
)


def test_graph_does_not_import_airflow() -> None:
    code = (
        "import sys, airflow_provider_wamm.graph\n"
        "bad = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""


def test_public_names_are_exported() -> None:
    for name in graph.__all__:
        assert hasattr(graph, name), name
    for name in (
        "GraphClient",
        "TokenBucket",
        "build_marketing_message",
        "normalize_phone",
        "check_components",
    ):
        assert name in graph.__all__


def test_errors_survive_pickling() -> None:
    for err in (
        PayloadError("template.name", "bad"),
        InvalidRecipientError("to", "is empty"),
        GraphTransportError("refused", request_sent=False),
        UnknownOutcomeError("no answer"),
        parse_error_envelope(
            {"error": {"code": 131050, "message": "stopped", "fbtrace_id": "T"}}, http_status=400
        ),
    ):
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err)
        assert str(copy) == str(err)
        for attr in ("field", "reason", "request_sent", "code", "fbtrace_id", "http_status"):
            assert getattr(copy, attr, None) == getattr(err, attr, None)


def test_the_error_tree_drawn_in_the_docstring_is_the_class_tree() -> None:
    doc = errors.__doc__ or ""
    drawn = re.findall(r"^    ((?:[| ]   )*)(?:\+-- )?(\w+(?:Error)?)\s{2,}\S", doc, re.M)
    assert drawn and drawn[0][1] == "WammError"
    parents: list[str] = []
    names = set()
    for indent, name in drawn:
        depth = len(indent) // 4 + (0 if name == "WammError" else 1)
        parents[depth:] = [name]
        names.add(name)
        cls = getattr(errors, name)
        if depth:
            assert cls.__bases__[0] is getattr(errors, parents[depth - 1]), name
    ours = {
        name
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, errors.WammError) and obj.__module__ == errors.__name__
    }
    assert ours == names

"""Statements built once and run many times with rows of plain values: the ledger's busiest writes.

A statement built per call costs SQLAlchemy its construction, a cache key and a cache lookup; and every
row of an ``executemany`` is turned into the driver's parameters in Python, value by value (on SQLite
every time is formatted by a Python function). A campaign sending a thousand messages a second claims
recipients and writes outcomes many times a second, so these statements are built once, compiled once
per database and run with tuples the driver takes as they are (:class:`Prepared`).

What the database stores does not change: times are written to SQLite in the text SQLAlchemy writes
(``YYYY-MM-DD HH:MM:SS.ffffff``, checked against SQLAlchemy's own conversion when a statement is
compiled), and passed as they are to PostgreSQL and MySQL/MariaDB, whose drivers convert them; any
other value SQLAlchemy would convert is converted by SQLAlchemy's own function.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult, Dialect
from sqlalchemy.sql.elements import ClauseElement

#: Converts one value to what the driver is given.
Convert = Callable[[Any], Any]

#: Times the fast SQLite conversion is checked against SQLAlchemy's on.
_SAMPLES = (
    datetime(2025, 6, 1, 12, 0),
    datetime(1, 2, 3, 4, 5, 6, 7),
    datetime(9999, 12, 31, 23, 59, 59, 999999),
)


def sqlite_time(value: datetime) -> str:
    """A time as SQLAlchemy stores it on SQLite: ``YYYY-MM-DD HH:MM:SS.ffffff`` (any time zone left out,
    as SQLAlchemy does)."""
    if value.tzinfo is not None:
        value = value.replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


@dataclass(frozen=True, slots=True)
class _Shape:
    """One statement compiled for one database: its SQL and how a row of values becomes parameters."""

    sql: str
    params: Callable[[tuple[Any, ...]], Any]
    """Row values (the row's, then the call's, then the statement's constants) -> driver parameters."""
    row_converts: tuple[tuple[int, Convert], ...]
    """Positions in a row whose values are converted first (values ``None`` stay ``None``)."""
    common_converts: tuple[tuple[int, Convert], ...]
    constants: tuple[Any, ...]


class Prepared:
    """A statement built once per database by ``build`` and run with rows of plain values.

    :param build: the statement for a dialect name (``sqlite``, ``postgresql``, ``mysql``...); every
        value it takes is a :func:`sqlalchemy.bindparam` named in ``names`` or ``common`` (values
        written into it, such as ``state="claimed"``, are constants of the statement), and it leaves no
        column default for SQLAlchemy to fill in.
    :param names: the bound parameters each row gives, in the order of the row's tuple.
    :param common: the bound parameters one call gives for all its rows.
    """

    def __init__(
        self,
        build: Callable[[str], ClauseElement],
        names: Sequence[str],
        common: Sequence[str] = (),
    ) -> None:
        self._build = build
        self.names = tuple(names)
        self.common = tuple(common)
        self._shapes: dict[tuple[str, str], _Shape] = {}
        self._lock = threading.Lock()

    def execute(
        self, conn: Connection, rows: Sequence[tuple[Any, ...]], common: tuple[Any, ...] = ()
    ) -> CursorResult[Any]:
        """Run the statement once per row (one ``executemany``) on ``conn``; ``common`` holds the values
        of :attr:`common`, in order."""
        shape = self._shape(conn.dialect)
        if shape.common_converts:
            values = list(common)
            for i, convert in shape.common_converts:
                if values[i] is not None:
                    values[i] = convert(values[i])
            common = tuple(values)
        tail = common + shape.constants
        if shape.row_converts:
            rows = [_converted(row, shape.row_converts) for row in rows]
        params = shape.params
        return conn.exec_driver_sql(shape.sql, [params(row + tail) for row in rows])

    def _shape(self, dialect: Dialect) -> _Shape:
        key = (dialect.name, dialect.driver)
        shape = self._shapes.get(key)
        if shape is None:
            with self._lock:
                shape = self._shapes.get(key)
                if shape is None:
                    shape = _compile(self._build(dialect.name), dialect, self.names, self.common)
                    self._shapes[key] = shape
        return shape


def _converted(row: tuple[Any, ...], converts: tuple[tuple[int, Convert], ...]) -> tuple[Any, ...]:
    values = list(row)
    for i, convert in converts:
        if values[i] is not None:
            values[i] = convert(values[i])
    return tuple(values)


def _compile(
    statement: ClauseElement, dialect: Dialect, names: tuple[str, ...], common: tuple[str, ...]
) -> _Shape:
    """Compile ``statement`` for ``dialect``; refuse what plain parameters cannot carry."""
    compiled: Any = statement.compile(dialect=dialect)
    if compiled.insert_prefetch or compiled.update_prefetch or compiled.post_compile_params:
        raise ValueError("a prepared statement must leave no default or expanding value to SQLAlchemy")
    if compiled.escaped_bind_names:
        raise ValueError("a prepared statement's parameter names must be plain identifiers")
    binds: dict[str, sa.BindParameter[Any]] = {name: bind for bind, name in compiled.bind_names.items()}
    given = names + common
    missing = [name for name, bind in binds.items() if name not in given and bind.required]
    unknown = [name for name in given if name not in binds]
    if missing or unknown or len(set(given)) != len(given):
        raise ValueError(f"prepared statement parameters: missing {missing}, unknown {unknown}")
    constant_names = tuple(name for name in binds if name not in given)
    converts = {name: _convert_of(bind, dialect) for name, bind in binds.items()}
    constants = tuple(_apply(converts[name], binds[name].effective_value) for name in constant_names)
    order = given + constant_names
    if dialect.positional:
        index = {name: i for i, name in enumerate(order)}
        params: Callable[[tuple[Any, ...]], Any] = _getter([index[name] for name in compiled.positiontup])
    else:
        params = _named(order)
    return _Shape(
        sql=compiled.string,
        params=params,
        row_converts=tuple((i, c) for i, name in enumerate(names) if (c := converts[name]) is not None),
        common_converts=tuple((i, c) for i, name in enumerate(common) if (c := converts[name]) is not None),
        constants=constants,
    )


def _convert_of(bind: sa.BindParameter[Any], dialect: Dialect) -> Convert | None:
    """What SQLAlchemy would do to a value of ``bind``: nothing (``None``) or its function; for a time
    on SQLite a faster one giving the same text (checked here)."""
    impl = bind.type.dialect_impl(dialect)
    process: Convert | None = impl.bind_processor(dialect)
    if process is None or dialect.name != "sqlite" or not isinstance(impl, sa.DateTime):
        return process
    if any(process(t) != sqlite_time(t) for t in _SAMPLES):
        return process
    fallback = process

    def convert(value: Any) -> Any:
        return sqlite_time(value) if type(value) is datetime else fallback(value)

    return convert


def _apply(convert: Convert | None, value: Any) -> Any:
    return value if convert is None or value is None else convert(value)


def _getter(indexes: list[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """Row values -> the driver's positional parameters (a tuple, even of one value)."""
    if len(indexes) == 1:
        only = indexes[0]
        return lambda values: (values[only],)
    return operator.itemgetter(*indexes)


def _named(order: tuple[str, ...]) -> Callable[[tuple[Any, ...]], dict[str, Any]]:
    """Row values -> the driver's named parameters."""
    return lambda values: dict(zip(order, values, strict=False))


__all__ = ["Prepared", "sqlite_time"]

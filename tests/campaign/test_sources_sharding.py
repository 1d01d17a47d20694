"""Recipient sources (iterables, DB-API cursors streamed with fetchmany) and stable sharding."""

from __future__ import annotations

import collections
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_wamm.campaign.sharding import in_shard, shard_of, validate_shard
from airflow_provider_wamm.campaign.sources import SourceRow, iter_cursor_rows, iter_rows
from airflow_provider_wamm.graph.errors import ConfigurationError

# --- iterables ----------------------------------------------------------------------------------


def test_strings_dicts_and_none_become_rows() -> None:
    out = list(iter_rows(["+4915100000001", None, 4915100000002], recipient_field="phone"))
    assert out == [
        SourceRow(1, "+4915100000001", {"phone": "+4915100000001"}),
        SourceRow(2, None, {"phone": None}),
        SourceRow(3, 4915100000002, {"phone": 4915100000002}),
    ]
    dicts = list(iter_rows([{"mobile": "1", "name": "a"}, {"name": "b"}], recipient_field="mobile"))
    assert dicts[0] == SourceRow(1, "1", {"mobile": "1", "name": "a"})
    assert dicts[1].phone is None and dicts[1].error == "missing field 'mobile'"


def test_recipient_field_matches_lower_cased_columns() -> None:
    out = list(iter_rows([{"phone": "1"}, {"phone": "2"}], recipient_field="Phone"))
    assert [r.phone for r in out] == ["1", "2"]


def test_missing_recipient_field_in_the_first_row_names_the_fields() -> None:
    with pytest.raises(ConfigurationError, match=r"'phone' not found.*\['mobile', 'name'\]"):
        list(iter_rows([{"mobile": "1", "name": "a"}]))


def test_iter_rows_is_lazy() -> None:
    pulled = 0

    def source() -> Iterator[str]:
        nonlocal pulled
        for i in range(10**9):
            pulled += 1
            yield str(i)

    rows = iter_rows(source())
    first = [next(rows) for _ in range(3)]
    assert [r.number for r in first] == [1, 2, 3] and pulled == 3


USES = {"first_name": ("body_parameters[0]",), "city": ("header.text", "body_parameters[1]")}


def test_personalisation_fields_missing_in_the_first_row_fail_at_once() -> None:
    rows = iter_rows([{"phone": "1", "firstname": "Ana"}], required_fields=USES)
    with pytest.raises(ConfigurationError) as info:
        next(rows)
    message = str(info.value)
    assert "personalisation fields 'first_name' (used in body_parameters[0]); 'city' (used in " in message
    assert "header.text, body_parameters[1]) not found in the first recipient row" in message
    assert "which has ['firstname', 'phone']" in message


def test_personalisation_fields_of_the_first_row_found_later_rows_stay_per_row() -> None:
    data: list[Any] = [None, {"phone": "1", "first_name": "A", "CITY": "x"}, {"phone": "2"}]
    out = list(iter_rows(data, required_fields={"first_name": (), "CITY": ()}))
    assert [r.number for r in out] == [1, 2, 3]  # an empty first row is not the one checked
    assert out[2].error is None  # a later row without the fields is invalid when personalised
    # A field is also found under its lower-case name, as personalisation looks it up.
    assert len(list(iter_rows([{"phone": "1", "city": "x"}], required_fields={"City": ()}))) == 1


def test_bare_numbers_have_only_the_recipient_field() -> None:
    with pytest.raises(
        ConfigurationError, match=r"'first_name' \(used in body_parameters\[0\]\).*\['phone'\]"
    ):
        list(iter_rows(["+4915100000001"], required_fields=USES))
    assert len(list(iter_rows(["+4915100000001"], required_fields={"phone": ("buttons[0].text",)}))) == 1


# --- cursors ------------------------------------------------------------------------------------


class SpyCursor:
    """Wraps a sqlite3 cursor and records fetch calls (fetchall would load everything)."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self.fetchmany_sizes: list[int] = []

    @property
    def description(self) -> Any:
        return self._cursor.description

    def fetchmany(self, size: int) -> list[Any]:
        self.fetchmany_sizes.append(size)
        return self._cursor.fetchmany(size)

    def fetchall(self) -> list[Any]:  # pragma: no cover - must not be called
        raise AssertionError("fetchall loads the whole result")


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE customers (Phone TEXT, First_Name TEXT, opted_in INTEGER)")
    conn.executemany(
        "INSERT INTO customers VALUES (?, ?, ?)", [(f"+49151{i:08d}", f"N{i}", i % 2) for i in range(1050)]
    )
    yield conn
    conn.close()


def test_cursor_rows_stream_in_batches_with_lower_cased_columns(db: sqlite3.Connection) -> None:
    spy = SpyCursor(db.execute("SELECT Phone, First_Name FROM customers ORDER BY rowid"))
    rows = iter_cursor_rows(spy, batch_size=100, required_field="PHONE")
    first = next(rows)
    assert first == {"phone": "+4915100000000", "first_name": "N0"}
    assert spy.fetchmany_sizes == [100]  # only one batch read so far
    rest = list(rows)
    assert len(rest) == 1049 and rest[-1]["first_name"] == "N1049"
    assert spy.fetchmany_sizes == [100] * 12  # 11 full batches, a partial one, then an empty one


def test_cursor_rows_feed_iter_rows(db: sqlite3.Connection) -> None:
    cursor = db.execute("SELECT phone AS mobile, first_name FROM customers WHERE opted_in = 1 LIMIT 3")
    out = list(iter_rows(iter_cursor_rows(cursor, required_field="mobile"), recipient_field="mobile"))
    assert [r.fields["first_name"] for r in out] == ["N1", "N3", "N5"]


def test_missing_column_is_a_clear_error(db: sqlite3.Connection) -> None:
    cursor = db.execute("SELECT first_name, opted_in FROM customers")
    with pytest.raises(ConfigurationError, match=r"'phone' not found.*\['first_name', 'opted_in'\]"):
        next(iter_cursor_rows(cursor, required_field="phone"))


def test_missing_personalisation_column_is_a_clear_error(db: sqlite3.Connection) -> None:
    cursor = db.execute("SELECT Phone, First_Name FROM customers")
    with pytest.raises(ConfigurationError) as info:
        next(iter_cursor_rows(cursor, required_field="phone", required_fields=USES))
    message = str(info.value)
    assert "personalisation field 'city' (used in header.text, body_parameters[1])" in message
    assert "not found in the query result, which has ['phone', 'first_name']" in message
    # Compared case-insensitively, like the phone column.
    found = db.execute("SELECT Phone, First_Name AS FIRST_NAME, 'x' AS City FROM customers LIMIT 1")
    assert next(iter_cursor_rows(found, required_fields={"First_Name": (), "city": ()}))["city"] == "x"


def test_cursor_without_result_set(db: sqlite3.Connection) -> None:
    cursor = db.execute("UPDATE customers SET opted_in = 0 WHERE 0")
    with pytest.raises(ConfigurationError, match="no result set"):
        next(iter_cursor_rows(cursor))
    with pytest.raises(ConfigurationError, match="batch_size"):
        next(iter_cursor_rows(db.execute("SELECT 1"), batch_size=0))


def test_dict_cursors_are_supported() -> None:
    class DictCursor:
        description = (("Phone",), ("Name",))

        def __init__(self) -> None:
            self.batches = [[{"Phone": "1", "Name": "a"}], []]

        def fetchmany(self, size: int) -> list[dict[str, str]]:
            return self.batches.pop(0)

    assert list(iter_cursor_rows(DictCursor())) == [{"phone": "1", "name": "a"}]


# --- sharding -----------------------------------------------------------------------------------


def test_shards_are_stable_across_processes() -> None:
    keys = [f"49151{i:08d}" for i in range(50)]
    here = [shard_of(k, 7) for k in keys]
    code = (
        "from airflow_provider_wamm.campaign.sharding import shard_of;"
        f"print([shard_of(k, 7) for k in {keys!r}])"
    )
    # A different hash seed must not matter (unlike the builtin hash()).
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    )
    assert other.stdout.strip() == str(here)


def test_shards_are_balanced_and_partition_the_recipients() -> None:
    keys = [f"4915{i:09d}" for i in range(30000)]
    counts = collections.Counter(shard_of(k, 4) for k in keys)
    assert set(counts) == {0, 1, 2, 3}
    assert all(abs(n - 7500) < 7500 * 0.05 for n in counts.values())
    for k in keys[:500]:
        assert sum(in_shard(k, i, 4) for i in range(4)) == 1
    assert shard_of("4915100000001", 1) == 0 and in_shard("x", 0, 1)


@pytest.mark.parametrize(("index", "count"), [(0, 0), (-1, 2), (2, 2)])
def test_invalid_shards(index: int, count: int) -> None:
    with pytest.raises(ConfigurationError):
        validate_shard(index, count)

"""The SQL session contract (``storage.session``), for every backend: one dialect in, the same rows out."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from takt.storage.base import Storage

DDL = """
CREATE TABLE IF NOT EXISTS session_t (id VARCHAR PRIMARY KEY, n INTEGER, x DOUBLE, b BLOB, ts TIMESTAMPTZ);
CREATE INDEX IF NOT EXISTS session_t_n ON session_t (n)
"""


def test_script_execute_and_parameters(storage: Storage) -> None:
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    with storage.session() as s:
        assert s.dialect == storage.dialect
        s.script(DDL)
        s.script(DDL)  # idempotent schema creation
        assert s.execute("INSERT INTO session_t VALUES (?, ?, ?, ?, ?)", ["a", 1, 0.5, b"\x00\xff", at]) == []
        s.execute("INSERT INTO session_t VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET n = excluded.n",
                  ["a", 2, 0.5, b"\x00\xff", at])
        rows = s.execute("SELECT id, n, x, b, ts FROM session_t WHERE id IN (?, ?) ORDER BY id", ["a", "zz"])
    assert len(rows) == 1
    id_, n, x, b, when = rows[0]
    assert (id_, n, x, bytes(b)) == ("a", 2, 0.5, b"\x00\xff")
    assert when == at


def test_bulk_insert(storage: Storage) -> None:
    table = pa.table({"id": ["p1", "p2", "p3"], "n": pa.array([1, None, 3], pa.int32())})
    with storage.session(transaction=True) as s:
        s.script(DDL)
        s.insert("session_t", table)
    with storage.session() as s:
        assert s.execute("SELECT id, n FROM session_t ORDER BY id") == [("p1", 1), ("p2", None), ("p3", 3)]


def test_transaction_rolls_back_on_error(storage: Storage) -> None:
    with storage.session() as s:
        s.script(DDL)
    with pytest.raises(RuntimeError), storage.session(transaction=True) as s:
        s.lock(42)
        s.execute("INSERT INTO session_t (id, n) VALUES (?, ?)", ["gone", 1])
        raise RuntimeError("boom")
    with storage.session() as s:
        assert s.execute("SELECT count(*) FROM session_t") == [(0,)]


def test_sessions_in_threads(storage: Storage) -> None:
    with storage.session() as s:
        s.script(DDL)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            with storage.session(transaction=True) as s:
                s.lock(7)
                s.execute("INSERT INTO session_t (id, n) VALUES (?, ?)", [f"t{i}", i])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with storage.session() as s:
        assert s.execute("SELECT sum(n) FROM session_t") == [(6,)]


def test_index_is_idempotent_and_lookups_work(storage: Storage) -> None:
    with storage.session(transaction=True) as s:
        s.script(DDL)
        s.index("session_t", ("n",))
        s.index("session_t", ("n",))
        s.insert("session_t", pa.table({"id": [f"p{i}" for i in range(100)], "n": pa.array(range(100), pa.int32())}))
    with storage.session() as s:
        assert s.execute("SELECT id FROM session_t WHERE n = ?", [42]) == [("p42",)]


def test_lock_needs_a_transaction(storage: Storage) -> None:
    with pytest.raises(RuntimeError, match="transaction"), storage.session() as s:
        s.lock(1)


def test_a_list_parameter(storage: Storage) -> None:
    with storage.session(transaction=True) as s:
        s.script(DDL)
        s.insert("session_t", pa.table({"id": ["a", "b", "c"], "n": pa.array([1, 2, 3], pa.int32())}))
        s.execute("DELETE FROM session_t WHERE id IN (SELECT unnest(CAST(? AS VARCHAR[])))", [["a", "c", "zz"]])
    with storage.session() as s:
        assert s.execute("SELECT id FROM session_t") == [("b",)]


def test_a_sqlglot_tree_runs_in_the_engines_dialect(storage: Storage) -> None:
    from sqlglot import exp

    with storage.session(transaction=True) as s:
        s.script(DDL)
        s.insert("session_t", pa.table({"id": ["a", "b"], "n": pa.array([1, 2], pa.int32())}))
    tree = exp.select(exp.Count(this=exp.Star())).from_("session_t").where(exp.column("n").eq(2))
    with storage.session() as s:
        assert s.query(tree) == [(1,)]
        assert s.native(tree.sql(dialect=s.dialect)) == [(1,)]

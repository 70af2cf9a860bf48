"""The engine-specific duties a storage takes off the domain (issue 13: no engine branches outside storage/), for
every backend: what a caller may rely on whichever engine holds the workspace."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from takt.errors import TaktError
from takt.storage import engines
from takt.storage.base import Storage


def test_has_table(storage: Storage) -> None:
    assert not storage.has_table("engine_t")
    with storage.session() as s:
        s.script("CREATE TABLE engine_t (id VARCHAR PRIMARY KEY)")
    assert storage.has_table("engine_t")
    assert storage.has_table("profile_states")  # the profile store's, created with the storage


def test_reclaim_keeps_the_data(storage: Storage) -> None:
    """Reclaiming after an erasure (checkpoint, vacuum) changes no row, and may run with a session open."""
    with storage.session() as s:
        s.script("CREATE TABLE engine_r (id VARCHAR PRIMARY KEY, n INTEGER)")
        s.execute("INSERT INTO engine_r VALUES ('a', 1), ('b', 2)")
        s.execute("DELETE FROM engine_r WHERE id = 'a'")
    storage.reclaim()
    storage.reclaim()
    with storage.session() as s:
        assert s.execute("SELECT id, n FROM engine_r") == [("b", 2)]


def test_parquet_export_writes_or_refuses(storage: Storage, tmp_path: Path) -> None:
    with storage.session() as s:
        s.script("CREATE TABLE engine_p (id VARCHAR, n INTEGER)")
        s.execute("INSERT INTO engine_p VALUES ('a', 1), ('b', 2)")
    out = tmp_path / "out"
    if storage.parquet_export():
        assert storage.write_parquet(["engine_p"], out) == {"engine_p": 2}
        assert sorted(pq.read_table(out / "engine_p.parquet").column("id").to_pylist()) == ["a", "b"]
    else:
        with pytest.raises(TaktError) as e:
            storage.write_parquet(["engine_p"], out)
        assert e.value.code == "unsupported"


def test_a_database_file_is_one_a_duckdb_connection_can_read(storage: Storage) -> None:
    """Where the engine keeps one file (it can be compacted), DuckDB's SQL runs on the workspace's data; where it
    does not, work that needs DuckDB's SQL is refused with a clear error."""
    if storage.database_file is not None:
        assert storage.database_file.exists()
        con = storage.duckdb_connection("testing")
        assert con.execute("SELECT count(*) FROM profile_states").fetchall() == [(0,)]
    else:
        with pytest.raises(TaktError) as e:
            storage.duckdb_connection("the model factory computes features")
        assert e.value.code == "unsupported" and "the model factory computes features" in e.value.message


def test_compact_file_keeps_the_data(tmp_path: Path) -> None:
    from takt.storage.duckdb import DuckDBStorage

    path = tmp_path / "takt.duckdb"
    with DuckDBStorage(path) as storage:
        with storage.session() as s:
            s.script("CREATE TABLE engine_c (id VARCHAR)")
            s.execute("INSERT INTO engine_c VALUES ('kept')")
        assert storage.database_file == path
    engines.compact_file(path)
    with DuckDBStorage(path) as storage, storage.session() as s:
        assert s.execute("SELECT id FROM engine_c") == [("kept",)]


def test_scratch_has_the_contract_tables() -> None:
    with engines.scratch() as con:
        assert con.execute("SELECT count(*) FROM profiles").fetchall() == [(0,)]
        assert con.execute("SELECT current_setting('TimeZone')").fetchall() == [("UTC",)]

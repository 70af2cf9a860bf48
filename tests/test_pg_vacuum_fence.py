"""The erasure's ``VACUUM FULL`` of the projection tables waits for every snapshot older than it: a query of
another session that started before the delete committed would otherwise keep the deleted row versions (and
their personal data) in the rewritten table files."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import psycopg

from takt.storage import pg_projection_tables as ppt
from tests.test_erasure_canary import pg_data_dir_or_skip


def test_vacuum_waits_for_older_snapshots_and_then_drops_the_dead_rows(pg_url: str) -> None:
    data_dir = pg_data_dir_or_skip(pg_url)
    secret = f"fence-canary-{secrets.token_hex(6)}".encode()
    with psycopg.connect(pg_url, autocommit=True) as admin:
        ppt.create(admin, "CREATE TABLE IF NOT EXISTS profile_states (id TEXT PRIMARY KEY, position BIGINT NOT NULL, "
                          "data BYTEA NOT NULL)")
        admin.execute("INSERT INTO profile_states VALUES (%s, 1, %s)", [secret.decode(), secret])
        ppt.vacuum_projection_tables(admin)  # written through to the table file (nobody else is connected)
        path = data_dir / str(admin.execute("SELECT pg_relation_filepath('profile_states')").fetchone()[0])  # type: ignore[index]
        assert secret in path.read_bytes()

        # another session holds a snapshot from before the delete (REPEATABLE READ keeps it for the transaction)
        reader = psycopg.connect(pg_url)
        reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT 1").fetchone()
        admin.execute("DELETE FROM profile_states WHERE id = %s", [secret.decode()])

        done = threading.Event()
        result: list[object] = []

        def vacuum() -> None:
            with psycopg.connect(pg_url, autocommit=True) as con:
                result.append(ppt.vacuum_projection_tables(con))
            done.set()

        t = threading.Thread(target=vacuum)
        t.start()
        # it is waiting for the reader's snapshot (without the fence it would finish at once, keeping the row)
        assert not done.wait(1.0)
        reader.rollback()
        reader.close()
        assert done.wait(60)
        t.join()
        assert "profile_states" in result[0]  # type: ignore[operator]
        new_path = data_dir / str(admin.execute("SELECT pg_relation_filepath('profile_states')").fetchone()[0])  # type: ignore[index]
        assert secret not in new_path.read_bytes()
        assert not Path(path).exists() or secret not in Path(path).read_bytes()


def test_the_wait_gives_up_after_its_timeout(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as admin:
        reader = psycopg.connect(pg_url)
        reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT 1").fetchone()
        try:
            assert ppt.wait_for_older_snapshots(admin, timeout_s=0.2) is False
        finally:
            reader.rollback()
            reader.close()
        assert ppt.wait_for_older_snapshots(admin, timeout_s=5) is True

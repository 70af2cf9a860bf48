"""Erasure leaves no trace: canary personal data is seeded through the HTTP API, folded into profiles,
snapshotted, exported (Parquet, event JSONL), then erased; afterwards no file of the workspace (database,
WAL, key files, anything else there), no table of the database, and no decompressed export holds a byte of it.

The test shows first that the same search *does* find the canaries before the erasure, so it can fail.
"""

from __future__ import annotations

import base64
import gzip
import os
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from takt import workspace as ws_mod
from takt.api.app import create_app
from takt.cli.main import main
from takt.clock import FixedClock
from takt.policy.segment_functions import ContactabilityListener
from takt.profiles.sealed import profile_subject

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def canaries() -> dict[str, str]:
    tag = secrets.token_hex(6)
    return {"email": f"canary.{tag}@example.org", "name": f"Canary Zq{tag}", "phone": f"+49151{int(tag, 16) % 10**8:08d}",
            "user": f"cu{tag}"}


def _cli(*args: str) -> str:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def _needles(c: dict[str, str]) -> list[bytes]:
    out = []
    for v in (c["email"], c["name"], c["phone"], c["user"]):
        out += [v.encode(), v.encode("utf-16-le")]
    return out


def _files(*roots: Path) -> Iterable[Path]:
    for root in roots:
        for dirpath, _, names in os.walk(root):  # tolerates folders removed meanwhile (other tests' databases)
            yield from (Path(dirpath) / n for n in names)


def raw_hits(c: dict[str, str], *roots: Path) -> list[str]:
    """Every (file, canary) pair found in the bytes of every file under ``roots``; gzip files also searched
    decompressed."""
    hits = []
    for f in _files(*roots):
        try:
            data = f.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            continue  # removed meanwhile
        if data[:2] == b"\x1f\x8b":
            data += gzip.decompress(data)
        hits += [f"{f.name}: {n!r}" for n in _needles(c) if n in data]
    return hits


def parquet_hits(c: dict[str, str], root: Path) -> list[str]:
    """Parquet pages are compressed: search the decoded values of every column of every file."""
    hits = []
    for f in root.glob("*.parquet"):
        text = orjson.dumps(pq.read_table(f).to_pylist(), default=lambda v: v.hex() if isinstance(v, bytes) else str(v))
        hits += [f"{f.name}: {n!r}" for n in _needles(c)[::2] if n in text]
    return hits


def table_hits(c: dict[str, str], db: Path) -> list[str]:
    """DuckDB compresses columns on disk: search every value of every table, read back through SQL."""
    hits = []
    con = duckdb.connect(str(db), read_only=True)
    try:
        for (name,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
                                   ).fetchall():
            cols = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [name]).fetchall()]
            for col in cols:
                for (v,) in con.execute(f'SELECT DISTINCT CAST("{col}" AS VARCHAR) FROM "{name}"').fetchall():
                    hits += [f"{name}.{col}: {n!r}" for n in _needles(c)[::2] if v is not None and n.decode() in v]
    finally:
        con.close()
    return hits


def _seed(ws: ws_mod.Workspace, c: dict[str, str]) -> None:
    storage = ws.open_storage()
    try:
        _, write = storage.keys.create("write", "w", None, "customer_provided", now=NOW)
        basic = {"Authorization": "Basic " + base64.b64encode(f"{write.reveal()}:".encode()).decode()}
        app = create_app(storage, ws.settings, FixedClock(NOW))
        with TestClient(app) as client:
            batch = [
                *_canary_person(c),
                {"type": "page", "anonymousId": "anon-" + c["user"], "name": "Home",
                 "properties": {"path": "/", "search": c["email"]}},
                {"type": "identify", "userId": "other-person", "traits": {"email": "other@example.com"}},
            ]
            r = client.post("/v1/batch", json={"batch": batch}, headers=basic)
            assert r.status_code == 200, r.text
            runner = client.app.state.ctx.extras["profiles"]  # type: ignore[attr-defined]
            runner.catch_up()
            runner.save()  # a snapshot holds the profiles
    finally:
        storage.close()


def _export(ws: ws_mod.Workspace, out: Path) -> None:
    _cli("export", "parquet", "-w", str(ws.path), str(out / "parquet"))
    _cli("events", "export", "-w", str(ws.path), "-o", str(out / "events.jsonl"))
    jsonl = (out / "events.jsonl").read_bytes()
    (out / "events.jsonl.gz").write_bytes(gzip.compress(jsonl))



def _canary_person(c: dict[str, str]) -> list[dict[str, object]]:
    """The canary person's identify and order: the canary PII in traits, context and properties."""
    return [
        {"type": "identify", "userId": c["user"], "anonymousId": "anon-" + c["user"],
         "traits": {"email": c["email"], "name": c["name"], "phone": c["phone"]},
         "context": {"ip": "192.0.2.7", "traits": {"email": c["email"]}}},
        {"type": "track", "userId": c["user"], "event": "Order Completed",
         "properties": {"billing_email": c["email"], "recipient": c["name"], "phone": c["phone"], "revenue": 42}},
    ]

def test_erasure_leaves_zero_canary_bytes_on_duckdb(tmp_path: Path) -> None:
    c = canaries()
    ws = ws_mod.init(tmp_path / "ws")
    _seed(ws, c)
    exports = tmp_path / "exports"
    _export(ws, exports)

    # the search finds the canaries before the erasure: in the segment tables the Parquet export refreshed (the
    # profile store holds them only sealed), the exports (also when compressed) and the database
    assert raw_hits(c, ws.path)
    assert table_hits(c, ws.duckdb_path)
    assert parquet_hits(c, exports / "parquet")
    assert raw_hits(c, exports)
    assert any("gz" in h for h in raw_hits(c, exports))

    out = _cli("privacy", "erase", f"email:{c['email']}", "-w", str(ws.path), "--yes")
    assert "erased profile" in out and "keys destroyed" in out
    _export(ws, exports)  # the exports the workspace gives now

    assert raw_hits(c, ws.path) == []  # every file of the workspace, WAL included
    assert table_hits(c, ws.duckdb_path) == []
    assert raw_hits(c, exports) == []
    assert parquet_hits(c, exports / "parquet") == []
    # the other person is untouched and the erased one is gone
    events = [orjson.loads(line) for line in (exports / "events.jsonl").read_bytes().splitlines()]
    assert any(e.get("userId") == "other-person" for e in events)
    assert sum(1 for e in events if e.get("context", {}).get("erased")) == 3
    assert "privacy.erase" in _cli("audit", "-w", str(ws.path))


def pg_data_dir_or_skip(url: str) -> Path:
    """The server's data directory; outside CI a skip when this user cannot read it (the server runs as another
    user), under CI a failure (CI's server, scripts/pg, is local and readable: never let this pass unseen)."""
    data_dir = _pg_data_dir(url)
    if data_dir is None:
        if os.environ.get("CI"):
            pytest.fail("the PostgreSQL data directory is not readable by this user: the byte search cannot run")
        pytest.skip("the PostgreSQL data directory is not readable by this user (the server runs as another user)")
    return data_dir


def _pg_data_dir(url: str) -> Path | None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        try:
            row = con.execute("SHOW data_directory").fetchone()
        except psycopg.Error:
            return None  # not a superuser: the server's files are out of reach
    path = Path(str(row[0])) if row else None
    if path is None or not path.is_dir():
        return None
    try:
        next((path / "pg_wal").iterdir(), None)
    except OSError:
        return None
    return path


def test_erasure_leaves_zero_canary_bytes_in_the_postgres_log_and_wal(pg_url: str, tmp_path: Path) -> None:
    """On PostgreSQL the event log is sealed before it reaches the server, so neither the table, its dead
    tuples nor the WAL ever hold the canaries of an event; after erasure the keys are gone as well. (Profile
    state is in UNLOGGED tables: test_erasure_over_http_leaves_zero_canary_bytes_on_postgres.)"""
    import psycopg

    from takt.log.base import EventLog
    from takt.storage.postgres import PostgresStorage

    data_dir = pg_data_dir_or_skip(pg_url)
    c = canaries()
    with PostgresStorage(pg_url) as storage:
        from takt.events.model import Event

        log: EventLog = storage.log
        ev = Event(kind="identify", message_id="canary-1", source="web", timestamp=NOW, received_at=NOW,
                   user_id=c["user"], traits={"email": c["email"], "name": c["name"], "phone": c["phone"]})
        log.append([ev])
        assert log.read()[0].event.traits["email"] == c["email"]  # readable before
        assert raw_hits(c, data_dir / "pg_wal") == []  # sealed before it reached the server
        # the search does see what the server writes: a plaintext control value is found in the WAL at once
        control = canaries()
        with psycopg.connect(pg_url, autocommit=True) as con:
            con.execute("CREATE TABLE canary_control (t text)")
            con.execute("INSERT INTO canary_control VALUES (%s)", [control["email"]])
        assert raw_hits(control, data_dir / "pg_wal")
        assert log.erase([log.read()[0].position]).keys == 1
        assert log.read()[0].event.traits == {}
    assert raw_hits(c, data_dir / "pg_wal") == []
    assert raw_hits(c, data_dir / "base") == []


def _served_table_hits(c: dict[str, str], con: duckdb.DuckDBPyConnection) -> list[str]:
    """table_hits through the serving process's own connection (the file is open there)."""
    hits = []
    cur = con.cursor()
    for (name,) in cur.execute("SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
                               ).fetchall():
        cols = [r[0] for r in cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [name]).fetchall()]
        for col in cols:
            for (v,) in cur.execute(f'SELECT DISTINCT CAST("{col}" AS VARCHAR) FROM "{name}"').fetchall():
                hits += [f"{name}.{col}: {n!r}" for n in _needles(c)[::2] if v is not None and n.decode() in v]
    return hits


def test_erasure_over_http_leaves_zero_canary_bytes_on_a_served_duckdb_workspace(tmp_path: Path) -> None:
    """Through the running server's API, with no compaction step: the profile store holds the person only
    sealed under their key (profile state, identity cluster, a keyed hash for each identifier), so once the key
    is destroyed no file of the workspace (database, WAL, free blocks) holds a byte of them, while the server
    still runs and after it stopped."""
    c = canaries()
    ws = ws_mod.init(tmp_path / "ws")
    storage = ws.open_storage()
    try:
        _, write = storage.keys.create("write", "w", None, "customer_provided", now=NOW)
        _, admin = storage.keys.create("admin", "a", now=NOW)
        basic = {"Authorization": "Basic " + base64.b64encode(f"{write.reveal()}:".encode()).decode()}
        bearer = {"Authorization": f"Bearer {admin.reveal()}"}
        app = create_app(storage, ws.settings, FixedClock(NOW))
        with TestClient(app) as client:
            batch = [*_canary_person(c),
                     {"type": "identify", "userId": "other-person", "traits": {"email": "other@example.com"}}]
            r = client.post("/v1/batch", json={"batch": batch}, headers=basic)
            assert r.status_code == 200, r.text
            runner = client.app.state.ctx.extras["profiles"]  # type: ignore[attr-defined]
            runner.catch_up()
            runner.save()  # the profile store holds the person: state, cluster, identifiers
            r = client.get("/v1/profiles", params={"identifier": f"email:{c['email']}"}, headers=bearer)
            assert r.status_code == 200 and r.json()["traits"]["name"]["value"] == c["name"], r.text
            pid = r.json()["id"]
            assert c["email"].encode() in storage.profiles.load([pid])[pid]  # what the rows hold, opened
            # the search finds what the database writes in plaintext: a control value, in the file at once
            control = canaries()
            con = storage.con  # type: ignore[attr-defined]
            con.cursor().execute("CREATE TABLE canary_control (t VARCHAR)")
            con.cursor().execute("INSERT INTO canary_control VALUES (?)", [control["email"]])
            con.cursor().execute("FORCE CHECKPOINT")  # the server's own transactions may be open
            assert raw_hits(control, ws.path) and _served_table_hits(control, con)
            # the person's values are in no file and no table (sealed), though the server shows them
            assert raw_hits(c, ws.path) == [] and _served_table_hits(c, con) == []

            sealer = storage.log.sealer  # type: ignore[attr-defined]
            profile_key = sealer.master.subject_id(profile_subject(pid))
            assert sealer.fetch([profile_key])
            r = client.post("/v1/privacy/erase", json={"identifier": f"phone:{c['phone']}"}, headers=bearer)
            assert r.status_code == 200 and r.json()["erased"], r.text
            r = client.get("/v1/profiles", params={"identifier": f"email:{c['email']}"}, headers=bearer)
            assert r.status_code == 404, r.text
            assert sealer.fetch([profile_key]) == {}  # what older copies of its rows were sealed under: gone
            assert raw_hits(c, ws.path) == []  # the server still runs: no compaction
            assert _served_table_hits(c, con) == []
            r = client.get("/v1/events", params={"limit": 1000}, headers=bearer)
            assert r.status_code == 200 and not [n for n in _needles(c) if n in r.content], r.text
    finally:
        storage.close()
    assert raw_hits(c, ws.path) == []
    assert table_hits(c, ws.duckdb_path) == []
    exports = tmp_path / "exports"
    _export(ws, exports)
    assert raw_hits(c, exports) == [] and parquet_hits(c, exports / "parquet") == []
    assert raw_hits(c, ws.path) == []


def _pg_files(url: str, data_dir: Path) -> list[Path]:
    """The server's files this test's database can reach: its own folder of ``base/``, ``global/``, ``pg_wal/``,
    every other folder of the data directory but ``base/`` (whose other folders are other databases), and the
    server log (``scripts/pg`` writes it next to the data directory)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        row = con.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()
    assert row is not None
    roots = [data_dir / "base" / str(row[0])] + [p for p in data_dir.iterdir() if p.name != "base"]
    roots += [p for p in data_dir.parent.glob("*.log")]
    return roots


def test_erasure_over_http_leaves_zero_canary_bytes_on_postgres(pg_url: str, tmp_path: Path) -> None:
    """Profiles, identity graph, snapshot, segment contract tables and contactability on PostgreSQL: the
    projection tables are UNLOGGED, so the WAL never holds the canaries; their files do (once written), and
    after the erasure (``VACUUM FULL`` + ``CHECKPOINT``) no file of the server does."""
    import psycopg

    from takt.settings import load
    from takt.storage import pg_projection_tables
    from takt.storage.postgres import PostgresStorage

    data_dir = pg_data_dir_or_skip(pg_url)
    c = canaries()
    with PostgresStorage(pg_url) as storage:
        _, write = storage.keys.create("write", "w", None, "customer_provided", now=NOW)
        _, admin = storage.keys.create("admin", "a", now=NOW)
        basic = {"Authorization": "Basic " + base64.b64encode(f"{write.reveal()}:".encode()).decode()}
        bearer = {"Authorization": f"Bearer {admin.reveal()}"}
        app = create_app(storage, load(None, env={}), FixedClock(NOW))
        with TestClient(app) as client:
            batch = [
                *_canary_person(c),
                {"type": "identify", "userId": "other-person", "traits": {"email": "other@example.com"}},
            ]
            r = client.post("/v1/batch", json={"batch": batch}, headers=basic)
            assert r.status_code == 200, r.text
            runner = client.app.state.ctx.extras["profiles"]  # type: ignore[attr-defined]
            runner.catch_up()
            runner.save()
            storage.snapshots.save("canary", runner.position, orjson.dumps(c))  # a snapshot holding them too
            for listener in runner.listeners:  # contactability rows now, not at the follower's next tick
                if isinstance(listener, ContactabilityListener):
                    listener.flush(runner, NOW)
            for name, definition in (("mail", "trait.email exists"), ("reach", 'contactable("email", "service")')):
                r = client.post("/v1/segments", json={"name": name, "definition": definition}, headers=bearer)
                assert r.status_code == 201, r.text
                r = client.get(f"/v1/segments/{name}/count", headers=bearer)
                assert r.status_code == 200 and r.json()["count"] >= 1, r.text
            r = client.get("/v1/profiles", params={"identifier": f"email:{c['email']}"}, headers=bearer)
            assert r.status_code == 200, r.text
            with psycopg.connect(pg_url, autocommit=True) as con:
                persistence = dict(con.execute(
                    "SELECT relname, relpersistence FROM pg_class WHERE relname = ANY(%s)",
                    [pg_projection_tables.PROJECTION_TABLES]).fetchall())
                traits = con.execute("SELECT count(*) FROM profile_traits WHERE strpos(value, %s) > 0",
                                     [c["email"]]).fetchone()
                # the profile store holds the person only sealed (state, cluster) or hashed (identifiers)
                for v in (c["email"], c["name"], c["user"]):
                    n = con.execute(
                        "SELECT (SELECT count(*) FROM profile_states WHERE position(%s::bytea IN data) > 0) + "
                        "(SELECT count(*) FROM identity_clusters WHERE position(%s::bytea IN data) > 0 "
                        "OR position(%s::bytea IN idx) > 0) + "
                        "(SELECT count(*) FROM identity_members WHERE strpos(identifier, %s) > 0)",
                        [v.encode(), v.encode(), v.encode(), v]).fetchone()
                    assert n == (0,), v
                assert storage.profiles.count() == 2
                con.execute("ANALYZE")  # statistics of personal-data columns are off: nothing goes to pg_statistic
                # the table files are written through (what a busy server's writer does on its own): the
                # search then finds the canaries in base/, so it can fail
                pg_projection_tables.vacuum_projection_tables(con)
            assert set(persistence) >= {"profile_states", "identity_members", "projection_snapshots",
                                        "profile_stored_traits", "profile_events"}
            assert set(persistence.values()) == {"u"}, persistence  # all UNLOGGED
            assert traits and traits[0] == 0, "an identifying trait is only a marker in the segment tables"
            roots = _pg_files(pg_url, data_dir)
            assert raw_hits(c, roots[0]), "the canaries are in the table files (base/) before the erasure"
            assert raw_hits(c, data_dir / "pg_wal") == []  # and never in the WAL
            storage.snapshots.delete("canary")  # a dead tuple now: the erasure's VACUUM FULL must drop it
            r = client.post("/v1/privacy/erase", json={"identifier": f"email:{c['email']}"}, headers=bearer)
            assert r.status_code == 200 and r.json()["erased"], r.text
            r = client.get("/v1/profiles", params={"identifier": f"email:{c['email']}"}, headers=bearer)
            assert r.status_code == 404, r.text
            r = client.get("/v1/segments/mail/count", headers=bearer)
            assert r.status_code == 200 and r.json()["count"] == 1, r.text  # the other person
    assert raw_hits(c, *_pg_files(pg_url, data_dir)) == []

"""``bench/replicate_store.py``: a tiny workspace (merges, a unique-id conflict, a split, contactability rows, a
contactability marker with a pending profile) replicated three times has unique, consistent ids across every
table, and a copied profile reads back through the profile store with renamed identifiers, the source's
stats and positions, and its merges' redirects."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pytest

import takt.policy.segment_functions as sf
from takt.clock import FixedClock
from takt.errors import TaktError
from takt.events.model import Event
from takt.policy.config import PolicySettings
from takt.profiles.config import ProfileConfig
from takt.profiles.projector import Projector
from takt.projections.runner import ProfileRunner
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage
from takt.workspace import init

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CONFIG = ProfileConfig.from_settings(load(None, env={}))


def _bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "replicate_store.py"
    spec = importlib.util.spec_from_file_location("takt_bench_replicate_store", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


rs = _bench()


def _ev(i: int, kind: str, user: str | None = None, anon: str | None = None, **fields: Any) -> Event:
    at = T0 + timedelta(minutes=i)
    return Event(kind=kind, message_id=f"m-{i}", source=fields.pop("source", "web"), timestamp=at, received_at=at,
                 provenance="customer_provided", user_id=user, anonymous_id=anon, **fields)


def _events() -> list[Event]:
    return [
        _ev(1, "page", None, "a1", name="Home"),
        _ev(2, "identify", "u1", "a1", traits={"email": "Ann@Example.com", "phone": "+49 30 1234567",
                                               "first_name": "Ann"}),
        _ev(3, "page", None, "a2", name="Home"),
        _ev(4, "identify", "u1", "a2"),  # merges a2's profile into u1's
        _ev(5, "consent", "u1", properties={"purpose": "marketing", "channel": "email", "status": "granted",
                                            "actor": "customer", "evidence": {"method": "double_opt_in"}}),
        _ev(6, "identify", "u2", "a1"),  # a second user id on a1: a unique-type conflict
        _ev(7, "identify", "u3", None, traits={"email": "bob@example.com"}),
        _ev(8, "identify", "u3", "a3"),
        _ev(9, "identity.unmerge", None, None, source="admin", properties={"identifier": "anonymous_id:a3"}),
        _ev(10, "track", "u3", None, event="Order Completed", properties={"order_id": "o1", "revenue": 12.5}),
    ]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    ws = tmp_path / "src"
    init(ws)
    storage = DuckDBStorage(ws / "takt.duckdb")
    try:
        storage.log.append(_events())
        runner = ProfileRunner(storage, CONFIG, FixedClock(NOW))
        runner.load()
        runner.catch_up()
        runner.save()
        runner.load()
        assert sf.refresh_all(storage, runner, PolicySettings(), NOW) > 0
        marker = sf.load_marker(storage)
        assert marker is not None
        u1 = runner.projector.profile_for("user_id:u1")
        assert u1 is not None
        sf.save_marker(storage, sf.Marker(marker.position, marker.fingerprint, (u1.id,), marker.direct))
    finally:
        storage.close()
    return ws


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_three_copies_have_unique_consistent_ids(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = {t: _rows(source / "takt.duckdb", f"SELECT count(*) FROM {t}")[0][0]
              for t in ("profile_states", "identity_clusters", "identity_members", "profile_contactability")}
    assert before["profile_states"] >= 3 and before["profile_contactability"] > 0
    counts = rs.replicate(source, out, 3, say=lambda _: None)
    assert not (tmp_path / "out.partial").exists()
    db = out / "takt.duckdb"
    for table, n in before.items():
        assert counts[table] == 3 * n
        assert _rows(db, f"SELECT count(*) FROM {table}")[0][0] == 3 * n
    assert (out / "takt.duckdb.master-key").read_bytes() == (source / "takt.duckdb.master-key").read_bytes()
    assert (out / "takt.toml").exists()
    # unique ids, every state, member and contactability row naming one of them
    assert _rows(db, "SELECT count(DISTINCT id) = count(*) FROM profile_states")[0][0]
    assert _rows(db, "SELECT count(DISTINCT identifier) = count(*) FROM identity_members")[0][0]
    assert _rows(db, "SELECT count(DISTINCT id) = count(*) FROM identity_clusters")[0][0]
    # a profile state per cluster that has events (a cluster founded by a refused identifier has none)
    assert _rows(db, "SELECT count(*) FROM profile_states p ANTI JOIN identity_clusters c USING (id)")[0][0] == 0
    assert _rows(db, "SELECT count(*) FROM identity_members m ANTI JOIN identity_clusters c ON m.cluster = c.id")[0][0] == 0
    assert _rows(db, "SELECT count(*) FROM profile_contactability t "
                     "ANTI JOIN identity_clusters c ON t.profile_id = c.id")[0][0] == 0
    # sealed as the server writes them: a key per profile id, identifiers as keyed hashes only
    assert _rows(db, "SELECT count(*) FROM identity_members WHERE identifier NOT LIKE '~%'")[0][0] == 0
    for table in ("profile_states", "identity_clusters"):
        assert _rows(db, f"SELECT count(*) FROM {table} WHERE strpos(CAST(data AS VARCHAR), 'user_id:u1') > 0 "
                         "OR strpos(CAST(data AS VARCHAR), 'xample.com') > 0")[0][0] == 0, table
    # the log is the source's
    assert _rows(db, "SELECT count(*) FROM events")[0][0] == len(_events())


def test_a_copy_reads_back_with_renamed_identifiers(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rs.replicate(source, out, 3, say=lambda _: None)
    storage = DuckDBStorage(out / "takt.duckdb")
    try:
        p = Projector.from_store(storage.profiles, CONFIG)
        assert p is not None
        assert len(p.profiles()) == 3 * len(_rows(source / "takt.duckdb", "SELECT id FROM identity_clusters"))
        src = p.profile_for("user_id:u1")
        assert src is not None
        src_cluster = p.identity.clusters[src.id]
        assert "email:ann@example.com" in src_cluster.identifiers and src_cluster.merges
        seen = {src.id}
        for k in (1, 2):
            tag = f"{k:04d}"
            copy = p.profile_for(f"user_id:u1-r{tag}")
            assert copy is not None and copy.id not in seen and copy.id.startswith("p_x")
            seen.add(copy.id)
            assert len(copy.id) == len(src.id)
            assert p.profile_for(f"email:r{tag}.ann@example.com") is not None
            assert p.profile_for(f"email:r{tag}.ann@example.com").id == copy.id  # type: ignore[union-attr]
            again = Projector.from_store(storage.profiles, CONFIG).profile(copy.id)  # type: ignore[union-attr]
            assert again is not None and again.id == copy.id
            cluster = p.identity.clusters[copy.id]
            assert sorted(cluster.identifiers) == sorted(
                rs.Renamer(CONFIG.identity).fill(rs.Renamer(CONFIG.identity).ident(i), k)
                for i in src_cluster.identifiers)
            assert f"user_id:u1-r{tag}" in cluster.identifiers
            assert f"anonymous_id:a2-r{tag}" in cluster.identifiers
            assert not set(cluster.identifiers) & set(src_cluster.identifiers)
            # contact points and identifier traits renamed; the rest as the source's
            assert f"email:r{tag}.ann@example.com" in again.contacts
            assert again.contacts[f"email:r{tag}.ann@example.com"]["value"] == f"r{tag}.ann@example.com"
            phones = [c for c in again.contacts if c.startswith("phone:")]
            assert phones == [f"{c}{tag}" for c in src.contacts if c.startswith("phone:")] and phones
            assert again.traits["email"]["value"] == f"r{tag}.Ann@Example.com"
            assert again.traits["first_name"] == src.traits["first_name"]
            assert again.stats == src.stats and again.positions == src.positions
            # merges: the copy's absorbed id redirects to the copy, the merge id is the copy's
            assert len(cluster.merges) == len(src_cluster.merges)
            for m, sm in zip(cluster.merges, src_cluster.merges, strict=True):
                assert m.absorbed != sm.absorbed and p.identity.current_id(m.absorbed) == copy.id
                # (read from the sealed store's index: the linking identifier as its keyed hash)
                assert m.id != sm.id and p.identity.merge_index[m.id] == storage.profiles.lookup_id(  # type: ignore[attr-defined]
                    f"user_id:u1-r{tag}")
            # the conflict (u2 on a1) is the copy's
            assert cluster.conflicts and not set(cluster.conflicts) & set(src_cluster.conflicts)
            for cf in cluster.conflicts.values():
                assert all(i.endswith(f"-r{tag}") for i in cf.identifiers)
            body = p.to_json(copy.id, NOW)
            assert body["id"] == copy.id
        # the split (a3 off u3) and its profiles
        split_src = p.profile_for("anonymous_id:a3")
        split_copy = p.profile_for("anonymous_id:a3-r0001")
        assert split_src is not None and split_copy is not None and split_copy.id != split_src.id
        u3 = p.identity.clusters[p.identity.profile_of("user_id:u3-r0001")]  # type: ignore[index]
        assert u3.splits and split_copy.id in u3.splits[0].profiles and split_src.id not in u3.splits[0].profiles
        # contactability rows and the marker's pending profiles, per copy
        rows = sf.table_of(storage).rows()
        src_rows = sorted((ch, pu) for pid, ch, pu in rows if pid == src.id)
        assert src_rows and all(sorted((ch, pu) for pid, ch, pu in rows if pid == c) == src_rows for c in seen)
        marker = sf.load_marker(storage)
        assert marker is not None and set(marker.pending) == seen
    finally:
        storage.close()


def test_a_server_starting_on_the_copy_recomputes_only_the_pending_profiles(source: Path, tmp_path: Path) -> None:
    """As ``takt serve`` starts: the runner loads the store, the contactability listener's first tick finds the
    marker (same position, same fingerprint) and marks only the pending profiles, copies included."""
    out = tmp_path / "out"
    rs.replicate(source, out, 3, say=lambda _: None)
    storage = DuckDBStorage(out / "takt.duckdb")
    try:
        runner = ProfileRunner(storage, CONFIG, FixedClock(NOW))
        listener = sf.ContactabilityListener(storage, PolicySettings())
        runner.add_listener(listener)
        assert runner.load()
        assert runner.catch_up() == 0  # the store is at the log's end: nothing to fold
        with runner.lock:
            listener._start(runner)
        assert listener.start_mode == "marker"
        u1 = [runner.projector.profile_for(f"user_id:{u}") for u in ("u1", "u1-r0001", "u1-r0002")]
        assert set(listener.dirty) == {s.id for s in u1 if s is not None} and len(listener.dirty) == 3
        assert len(runner.profile_ids()) == 3 * len(_rows(source / "takt.duckdb", "SELECT id FROM identity_clusters"))
    finally:
        storage.close()


def test_copies_of_one_keep_the_source_and_bad_arguments_are_refused(source: Path, tmp_path: Path) -> None:
    with pytest.raises(TaktError, match="--copies"):
        rs.replicate(source, tmp_path / "x", 0, say=lambda _: None)
    with pytest.raises(TaktError, match="not a takt workspace"):
        rs.replicate(tmp_path / "nothing", tmp_path / "x", 2, say=lambda _: None)
    out = tmp_path / "one"
    counts = rs.replicate(source, out, 1, say=lambda _: None)
    assert counts["profile_states"] == _rows(source / "takt.duckdb", "SELECT count(*) FROM profile_states")[0][0]
    with pytest.raises(TaktError, match="exists"):
        rs.replicate(source, out, 2, say=lambda _: None)
    counts = rs.replicate(source, out, 2, force=True, say=lambda _: None)
    assert counts["profile_states"] == 2 * _rows(source / "takt.duckdb", "SELECT count(*) FROM profile_states")[0][0]

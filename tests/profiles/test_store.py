"""The profile store: rows per profile and cluster, a bounded cache that reloads what it evicted, restarts."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from takt.clock import FixedClock
from takt.events.model import StoredEvent
from takt.profiles.projector import MemoryEvents, Projector
from takt.profiles.sealed import SealedProfileStore, profile_subject
from takt.profiles.state import ProfileState
from takt.profiles.store import LOAD_BATCH, ProfileStore, StoreWrite
from takt.projections.runner import SNAPSHOT_NAME, ProfileRunner
from takt.storage.base import Storage
from takt.storage.duckdb import DuckDBStorage
from tests.factories import T0, ev
from tests.profiles.test_properties import BASE, CONFIG, SETTINGS, logs


class DictStore(ProfileStore):
    """The store contract in memory: for fast property tests of the projector's cache."""

    def __init__(self) -> None:
        self.rows: dict[str, bytes] = {}
        self.row_at: dict[str, int] = {}
        self.cluster_rows: dict[str, tuple[bytes, bytes]] = {}
        self.member_rows: dict[str, str] = {}
        self.at: int | None = None
        self.writes = 0

    def position(self) -> int | None:
        return self.at

    def load(self, ids: Sequence[str]) -> dict[str, bytes]:
        return {i: self.rows[i] for i in ids if i in self.rows}

    def profile_ids(self) -> list[str]:
        return sorted(self.rows)

    def profiles(self, batch: int = LOAD_BATCH) -> Iterator[tuple[str, bytes]]:
        yield from sorted(self.rows.items())

    def changed_since(self, position: int) -> list[str]:
        return sorted(pid for pid in self.rows if self.row_at[pid] > position)

    def clusters(self, batch: int = LOAD_BATCH) -> Iterator[bytes]:
        yield from (self.cluster_rows[k][0] for k in sorted(self.cluster_rows))

    def cluster_index(self, batch: int = LOAD_BATCH) -> Iterator[tuple[str, bytes]]:
        yield from ((k, self.cluster_rows[k][1]) for k in sorted(self.cluster_rows))

    def load_clusters(self, ids: Sequence[str]) -> dict[str, bytes]:
        return {i: self.cluster_rows[i][0] for i in ids if i in self.cluster_rows}

    def members(self, identifiers: Sequence[str]) -> dict[str, str]:
        return {i: self.member_rows[i] for i in identifiers if i in self.member_rows}

    def write(self, w: StoreWrite) -> None:
        if w.replace:
            self.rows.clear()
            self.cluster_rows.clear()
            self.member_rows.clear()
        for pid in w.removed_profiles:
            self.rows.pop(pid, None)
        gone = {*w.removed_clusters, *(c for c, _, _ in w.clusters)}
        for cid in w.removed_clusters:
            self.cluster_rows.pop(cid, None)
        self.member_rows = {i: c for i, c in self.member_rows.items() if c not in gone}
        self.rows.update(w.profiles)
        self.row_at.update((pid, w.position) for pid, _ in w.profiles)
        self.cluster_rows.update((c, (d, x)) for c, d, x in w.clusters)
        self.member_rows.update(w.members)
        self.at = w.position
        self.writes += 1

    def clear(self) -> None:
        self.rows.clear()
        self.cluster_rows.clear()
        self.at = None

    def count(self) -> int:
        return len(self.rows)


def views(p: Projector) -> dict[str, object]:
    now = BASE + timedelta(days=400)
    return {pid: p.to_json(pid, now) for pid in p.profiles()}


# ---- the state's bytes ----
def test_state_blob_and_dict_round_trip_and_dedupe() -> None:
    p, _ = Projector(CONFIG), None
    p.apply([StoredEvent(i, ev(i, user_id="u1", anonymous_id="a", event="Order Completed",
                                   properties={"order_id": f"o{i}", "revenue": 3.5})) for i in range(1, 4)])
    (pid,) = p.profiles()
    state = p.profile(pid)
    assert state is not None and state.positions == [1, 2, 3]
    back = ProfileState.from_blob(pid, state.to_blob())
    assert back.to_dict() == state.to_dict()
    assert ProfileState.from_dict(state.to_dict()).to_dict() == state.to_dict()
    assert back.has("web", "m-2") and not back.has("web", "m-9") and not back.has("app", "m-2")
    with pytest.raises(ValueError, match="not a profile state blob"):
        ProfileState.from_blob(pid, b"nope" + state.to_blob()[4:])


def test_state_reads_the_older_dict_form() -> None:
    old = {"id": "p_1", "events": [[4, "web", "m-4"], [9, "app", "x"]], "traits": {}, "contacts": {},
           "stats": ProfileState("p").stats, "touchpoints": {"web": {"count": 2, "last_at": None, "hours": [0] * 168}},
           "interests": {"k": [1, 2]}, "top_interest": None, "shifts": []}
    s = ProfileState.from_dict(old)
    assert s.positions == [4, 9] and s.has("app", "x") and not s.has("web", "x")
    assert list(s.touchpoints["web"]["hours"]) == [0] * 168


# ---- the projector's cache over a store ----
@SETTINGS
@given(log=logs, cuts=st.lists(st.integers(0, 40), max_size=4), cache=st.integers(1, 3), tail=logs)
def test_a_small_cache_over_a_store_gives_what_an_unbounded_one_gives(
    log: list[StoredEvent], cuts: list[int], cache: int, tail: list[StoredEvent]
) -> None:
    """Evicting states and reading them back (at any persist points, with any cache size) changes nothing:
    profile JSON, derived events and identity equal those of a projector that keeps everything; and a projector
    restarted from the store continues identically."""
    lookup = MemoryEvents()
    ref = Projector(CONFIG, lookup)
    ref_derived = ref.apply(log)
    store = DictStore()
    p = Projector(CONFIG, lookup, store, cache_size=cache)
    derived = []
    bounds = sorted({0, len(log), *(c for c in cuts if c <= len(log))})
    for a, b in pairwise(bounds):
        derived += p.apply(log[a:b])
        p.persist()
        assert p.cached() <= cache and p.clusters_cached() <= cache
    assert [e.message_id for e in derived] == [e.message_id for e in ref_derived]
    assert views(p) == views(ref)
    assert orjson.dumps(p.snapshot(), option=orjson.OPT_SORT_KEYS) == \
        orjson.dumps(ref.snapshot(), option=orjson.OPT_SORT_KEYS)
    assert sorted(store.rows) == sorted(s.id for s in ref.states())
    restarted = Projector.from_store(store, CONFIG, lookup, cache_size=cache)
    assert restarted is not None and restarted.position == ref.position and restarted.cached() == 0
    shift = log[-1].position + 1
    more = [StoredEvent(s.position + shift, s.event.with_changes(message_id="t" + s.event.message_id))
            for s in tail]
    d1, d2 = ref.apply(more), restarted.apply(more)
    assert [e.message_id for e in d1] == [e.message_id for e in d2]
    assert views(restarted) == views(ref)


def test_changed_states_stay_until_persisted() -> None:
    store = DictStore()
    p = Projector(CONFIG, MemoryEvents(), store, cache_size=1)
    p.apply([StoredEvent(i, ev(i, user_id=f"u{i}")) for i in range(1, 6)])
    assert p.cached() == 5 and p.needs_persist()  # nothing written yet: nothing may leave
    assert p.clusters_cached() == 5
    w = p.persist()
    assert len(w.profiles) == 5 and len(w.clusters) == 5 and store.at == 5
    assert p.cached() == 1 and not p.needs_persist() and p.clusters_cached() == 1
    before = p.loads
    state = p.profile_for("user_id:u1")
    assert state is not None and state.positions == [1] and p.loads == before + 1
    assert p.identity.profile_of("user_id:u2") == p.profile_for("user_id:u2").id  # type: ignore[union-attr]
    assert p.identity.profile_of("user_id:nobody") is None


def test_a_failed_write_keeps_the_changes_for_the_next_one() -> None:
    class Failing(DictStore):
        fail = True

        def write(self, w: StoreWrite) -> None:
            if self.fail:
                raise OSError("disk full")
            super().write(w)

    store = Failing()
    p = Projector(CONFIG, MemoryEvents(), store, cache_size=1)
    p.apply([StoredEvent(i, ev(i, user_id=f"u{i}")) for i in range(1, 4)])
    with pytest.raises(OSError, match="disk full"):
        p.persist()
    assert store.rows == {} and p.cached() == 3
    store.fail = False
    w = p.persist()
    assert len(w.profiles) == 3 and len(store.cluster_rows) == 3


def test_a_small_cache_over_duckdb_equals_an_unbounded_projector() -> None:
    log = [StoredEvent(i, ev(i, user_id=f"u{i % 7}", anonymous_id=f"a{i % 5}")) for i in range(1, 60)]
    ref = Projector(CONFIG)
    ref.apply(log)
    with tempfile.TemporaryDirectory() as d, DuckDBStorage(Path(d) / "t.duckdb") as s:
        p = Projector(CONFIG, MemoryEvents(), s.profiles, cache_size=2)
        for i in range(0, len(log), 9):
            p.apply(log[i:i + 9])
            p.persist()
        assert views(p) == views(ref)
        again = Projector.from_store(s.profiles, CONFIG, MemoryEvents(), cache_size=2)
        assert again is not None and views(again) == views(ref)


# ---- the store's contract, both backends ----
def test_store_rows_replace_delete_and_carry_their_position(storage: Storage) -> None:
    st_ = storage.profiles
    assert st_.position() is None and st_.count() == 0 and st_.load(["a"]) == {}
    ia = {"merges": [["m1", "email:x", "p_old"]], "separated": {"email:x": ["user_id:9"]}}
    ic = {"merges": [], "separated": {}}
    st_.write(StoreWrite(5, profiles=[("a", b"\x00A"), ("b", b"B")], clusters=[("a", b"{}", orjson.dumps(ia))],
                         members=[("user_id:1", "a"), ("email:x", "a")]))
    st_.write(StoreWrite(9, profiles=[("a", b"A2")], removed_profiles=["b"], clusters=[("c", b"[]", orjson.dumps(ic))],
                         members=[("email:x", "c")]))
    assert st_.position() == 9
    assert st_.load(["a", "b", "zz"]) == {"a": b"A2"}
    assert st_.profile_ids() == ["a"] and list(st_.profiles()) == [("a", b"A2")]
    assert sorted(st_.clusters()) == [b"[]", b"{}"]
    index = [(cid, orjson.loads(x)) for cid, x in st_.cluster_index()]
    assert [cid for cid, _ in index] == ["a", "c"] and index[1][1] == ic
    # a merge's linking identifier comes back as a lookup key that members() resolves like the identifier
    (mid, via, absorbed), = index[0][1]["merges"]
    assert (mid, absorbed) == ("m1", "p_old") and index[0][1]["separated"] == ia["separated"]
    assert st_.members([via]) == {via: "c"} and st_.members(["email:x"]) == {"email:x": "c"}
    assert st_.load_clusters(["c", "q"]) == {"c": b"[]"}
    assert st_.members(["user_id:1", "email:x", "phone:9"]) == {"user_id:1": "a", "email:x": "c"}
    st_.write(StoreWrite(10, removed_clusters=["a"]))
    assert st_.members(["user_id:1", "email:x"]) == {"email:x": "c"}
    st_.write(StoreWrite(11, replace=True, profiles=[("z", b"Z")]))
    assert st_.profile_ids() == ["z"] and list(st_.clusters()) == [] and st_.position() == 11
    assert st_.members(["email:x"]) == {}
    many = [(f"p{i:05d}", str(i).encode()) for i in range(LOAD_BATCH + 5)]
    st_.write(StoreWrite(12, profiles=many))
    assert len(st_.load([pid for pid, _ in many])) == len(many)
    assert len(list(st_.profiles(batch=700))) == len(many) + 1
    st_.clear()
    assert st_.position() is None and st_.count() == 0


def test_rows_hold_identifying_values_only_sealed_and_an_erased_key_leaves_them_unreadable(storage: Storage
                                                                                          ) -> None:
    """What reaches the backend's rows: sealed state and cluster data, keyed hashes of identifiers, merges by
    hash; destroying the profile's key (what an erasure does) leaves its rows out of every read."""
    st_ = storage.profiles
    assert isinstance(st_, SealedProfileStore)
    email = "ann.sealed@example.org"
    idx = {"merges": [["m1", f"email:{email}", "p_old"]], "separated": {f"email:{email}": ["user_id:ann"]}}
    st_.write(StoreWrite(4, profiles=[("a", orjson.dumps({"email": email})), ("b", b"{}")],
                         clusters=[("a", orjson.dumps({"ids": [f"email:{email}"]}), orjson.dumps(idx)),
                                   ("b", b"{}", orjson.dumps({"merges": [], "separated": {}}))],
                         members=[(f"email:{email}", "a"), ("user_id:ann", "a")]))
    raw = repr([list(st_.inner.profiles()), list(st_.inner.clusters()), list(st_.inner.cluster_index()),
                st_.inner.members([st_.lookup_id(f"email:{email}"), f"email:{email}"])]).encode()
    assert b"ann.sealed" not in raw and b"user_id:ann" not in raw
    assert st_.inner.members([st_.lookup_id(f"email:{email}")])  # the row is there, under the hash
    assert st_.load(["a"]) == {"a": orjson.dumps({"email": email})}
    storage.log.sealer.cache.clear()  # type: ignore[attr-defined]  # a cold read: keys come with the rows
    assert st_.load(["a", "b", "zz"]) == {"a": orjson.dumps({"email": email}), "b": b"{}"}
    assert st_.inner.load_keyed(["a"], ["nobody"]) == {"a": (st_.inner.load(["a"])["a"], None)}
    assert st_.members([f"email:{email}"]) == {f"email:{email}": "a"}
    assert storage.log.erase([], [profile_subject("a")]).keys == 1
    assert st_.load(["a", "b"]) == {"b": b"{}"} and st_.load_clusters(["a", "b"]) == {"b": b"{}"}
    assert [cid for cid, _ in st_.cluster_index()] == ["b"]  # its sealed separations do not open either


def test_changed_since_names_the_rows_written_after_a_position(storage: Storage) -> None:
    st_ = storage.profiles
    assert st_.changed_since(0) == []
    st_.write(StoreWrite(5, profiles=[("a", b"A"), ("b", b"B"), ("c", b"C")]))
    st_.write(StoreWrite(9, profiles=[("b", b"B2"), ("d", b"D")], removed_profiles=["c"]))
    assert st_.changed_since(0) == ["a", "b", "d"]
    assert st_.changed_since(4) == ["a", "b", "d"]
    assert st_.changed_since(5) == ["b", "d"]
    assert st_.changed_since(8) == ["b", "d"] and st_.changed_since(9) == []
    st_.write(StoreWrite(12, profiles=[("a", b"A3")]))
    assert st_.changed_since(9) == ["a"]
    st_.write(StoreWrite(13, replace=True, profiles=[("z", b"Z")]))
    assert st_.changed_since(12) == ["z"] and st_.changed_since(0) == ["z"]
    st_.clear()
    assert st_.changed_since(0) == []


def test_a_failing_store_write_changes_nothing(storage: Storage) -> None:
    st_ = storage.profiles
    st_.write(StoreWrite(3, profiles=[("a", b"A")]))
    with pytest.raises(Exception):  # noqa: B017 - the backend's own error (a duplicate key in one batch)
        st_.write(StoreWrite(8, profiles=[("b", b"B"), ("b", b"B2")], removed_profiles=["a"]))
    assert st_.position() == 3 and st_.load(["a", "b"]) == {"a": b"A"}


# ---- the runner: restart from the store, both backends ----
def _events(n: int, offset: int = 0) -> list:  # type: ignore[type-arg]
    out = []
    for i in range(offset, offset + n):
        person = i % 23
        out.append(ev(i, user_id=f"u{person}" if i % 3 else None, anonymous_id=f"a{person}",
                      event="Products Searched" if i % 4 else "Order Completed",
                      properties={"query": "krabi hiking", "order_id": f"o{i}", "revenue": 10},
                      at=T0 + timedelta(hours=i)))
    return out


def test_runner_restarts_from_the_store_without_reading_every_profile(storage: Storage) -> None:
    clock = FixedClock(T0 + timedelta(days=30))
    storage.log.append(_events(150))
    first = ProfileRunner(storage, CONFIG, clock, cache_size=5)
    assert first.load() is False
    first.catch_up(batch=40)
    first.save()
    ids = first.profile_ids()
    assert len(ids) == 23 and storage.profiles.count() == 23
    assert storage.profiles.position() == first.position == storage.log.head()
    want = {pid: first.profile_json(pid) for pid in ids}

    second = ProfileRunner(storage, CONFIG, clock, cache_size=5)
    assert second.load() is True
    assert second.position == first.position and second.projector.cached() == 0
    assert {pid: second.profile_json(pid) for pid in ids} == want
    assert second.projector.cached() <= 5
    assert second.find("user_id:u4") == first.find("user_id:u4")
    page, _ = second.timeline(second.find("anonymous_id:a4"), None, 3)
    assert [e.position for e in page] == sorted((p for p in second.projector.profile_for(
        "anonymous_id:a4").positions), reverse=True)[:3]  # type: ignore[union-attr]

    # both continue with more events; a straight replay from 0 agrees
    storage.log.append(_events(60, offset=150))
    first.catch_up(batch=17)
    second.catch_up(batch=17)
    straight = ProfileRunner(storage, CONFIG, clock)
    straight.catch_up()
    for pid in straight.profile_ids():
        assert second.profile_json(pid) == straight.profile_json(pid) == first.profile_json(pid)


def test_runner_bounds_its_cache_while_catching_up_and_rebuild_starts_over(storage: Storage) -> None:
    clock = FixedClock(T0 + timedelta(days=30))
    storage.log.append(_events(200))
    small = ProfileRunner(storage, CONFIG, clock, cache_size=3)
    small.load()
    small.catch_up(batch=10)
    assert small.projector.cached() <= 3 + 10  # at most a chunk's changes above the bound
    small.save()
    assert small.projector.cached() <= 3
    big = ProfileRunner(storage, CONFIG, clock)
    big.catch_up()
    assert {p: small.profile_json(p) for p in big.profile_ids()} == {p: big.profile_json(p) for p in big.profile_ids()}
    n = small.rebuild()
    assert n == storage.log.head() and storage.profiles.position() == small.position
    assert {p: small.profile_json(p) for p in big.profile_ids()} == {p: big.profile_json(p) for p in big.profile_ids()}


def test_an_older_whole_state_snapshot_moves_into_the_store(storage: Storage) -> None:
    clock = FixedClock(T0 + timedelta(days=30))
    storage.log.append(_events(80))
    ref = ProfileRunner(storage, CONFIG, clock)
    ref.catch_up()
    snap = ref.projector.snapshot()
    for prof in snap["profiles"].values():  # the form earlier versions wrote
        prof["events"] = [[p, "web", f"m-{p - 1}"] for p in prof.pop("positions")]
        del prof["keys"]
    storage.snapshots.save(SNAPSHOT_NAME, ref.position, orjson.dumps(snap))
    runner = ProfileRunner(storage, CONFIG, clock, cache_size=4)
    assert runner.load() is True
    assert storage.snapshots.load(SNAPSHOT_NAME) is None
    assert storage.profiles.position() == ref.position and storage.profiles.count() == len(ref.profile_ids())
    assert runner.projector.cached() <= 4
    for pid in ref.profile_ids():
        assert runner.profile_json(pid) == ref.profile_json(pid)


def test_touched_profiles_and_states_survive_eviction() -> None:
    store = DictStore()
    p = Projector(CONFIG, MemoryEvents(), store, cache_size=1)
    p.apply([StoredEvent(i, ev(i, user_id=f"u{i}")) for i in range(1, 5)])
    p.persist()
    touched, dropped = p.take_touched()
    assert len(touched) == 4 and dropped == [] and p.cached() == 1
    assert [s.id for s in p.states()] == p.profiles()
    assert sorted(len(s.positions) for s in p.states()) == [1, 1, 1, 1]
    assert p.cached() == 1  # states() does not fill the cache


def test_an_unmerge_by_merge_id_after_a_restart_finds_the_merge_through_its_keyed_hash(storage: Storage) -> None:
    """The stored merge index names the linking identifier by its keyed hash: an unmerge by merge id after a
    restart from the store looks it up like an identifier and splits the cluster as without a store."""
    log = [StoredEvent(1, ev(1, user_id=None, anonymous_id="a1")), StoredEvent(2, ev(2, user_id="u1")),
           StoredEvent(3, ev(3, user_id="u1", anonymous_id="a1", kind="identify"))]
    first = Projector(CONFIG, MemoryEvents(), storage.profiles)
    first.apply(log)
    first.persist(everything=True)
    merged = first.profile_for("user_id:u1")
    assert merged is not None and first.profile_for("anonymous_id:a1").id == merged.id  # type: ignore[union-attr]
    (merge,) = first.identity.clusters[merged.id].merges
    events = MemoryEvents()
    for se in log:
        events.put(se)
    again = Projector.from_store(storage.profiles, CONFIG, events, cache_size=1)
    assert again is not None and again.identity.merge_index[merge.id].startswith("~")
    split = StoredEvent(4, ev(4, kind="identity.unmerge", user_id=None, source="admin",
                              properties={"merge_id": merge.id}))
    again.apply([split])
    a, u = again.profile_for("anonymous_id:a1"), again.profile_for("user_id:u1")
    assert a is not None and u is not None and a.id != u.id

"""A serving process that does not fold reads the published profiles from the store: the same profiles the
folding process publishes (states and the identity part), through merges, with the store's position; and it
never folds (takt.projections.stored, ProfileRunner.open)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from takt.clock import FixedClock
from takt.profiles.config import ProfileConfig
from takt.projections.published import Published
from takt.projections.runner import LEASE_NAME, ProfileRunner
from takt.projections.stored import StoredReads, identity_part
from takt.storage.postgres import PostgresStorage
from tests.factories import T0, ev

CONFIG = ProfileConfig()


@pytest.fixture
def pg(pg_url: str) -> Iterator[tuple[PostgresStorage, PostgresStorage]]:
    leader, server = PostgresStorage(pg_url), PostgresStorage(pg_url)
    try:
        yield leader, server
    finally:
        server.close()
        leader.close()


def _people(rnd: random.Random, n: int, start: int) -> list:  # type: ignore[type-arg]
    """Anonymous visits, identifies with emails, and links of anonymous ids to users (merges)."""
    out = []
    for i in range(start, start + n):
        user, anon = f"u{rnd.randrange(12)}", f"a{rnd.randrange(20)}"
        pick = rnd.randrange(3)
        if pick == 0:
            out.append(ev(i, user_id=None, anonymous_id=anon))
        elif pick == 1:
            out.append(ev(i, kind="identify", user_id=user, event=None, provenance="customer_provided",
                          traits={"email": f"{user}@example.com", "plan": f"p{i}"}))
        else:
            out.append(ev(i, kind="identify", user_id=user, anonymous_id=anon, event=None))
    return out


def _same(runner: ProfileRunner, reads: StoredReads, ref: str) -> None:
    folded, stored = runner.entry(ref), reads.entry(ref)
    assert (folded is None) == (stored is None), ref
    if folded is not None and stored is not None:
        assert stored.pid == folded.pid
        assert stored.state.to_dict() == folded.state.to_dict(), ref
        with runner.lock:
            live = identity_part(runner.projector.identity.clusters.get(folded.pid))[1]
        assert stored.cluster == live, ref
        assert folded.cluster == live, ref


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_store_serves_what_the_fold_publishes_through_merges(pg: tuple[PostgresStorage, PostgresStorage],
                                                                 seed: int) -> None:
    leader_storage, server_storage = pg
    rnd = random.Random(seed)
    assert leader_storage.try_lease(LEASE_NAME)
    runner = ProfileRunner(leader_storage, CONFIG, FixedClock(T0))
    runner.persist_each_chunk = True
    runner.load()
    reads = StoredReads(server_storage.profiles, CONFIG, Published())
    start = 0
    for _ in range(4):
        leader_storage.log.append(_people(rnd, 40, start))
        start += 40
        runner.catch_up(batch=7)  # many small chunks: each is written with its position
        assert reads.refresh() == runner.position == leader_storage.log.head()
        refs = [f"user_id:u{i}" for i in range(12)] + [f"anonymous_id:a{i}" for i in range(20)]
        refs += [f"email:u{i}@example.com" for i in range(12)]
        for ref in refs:
            _same(runner, reads, ref)
        for pid in runner.profile_ids():
            _same(runner, reads, pid)


def test_an_unchanged_profile_is_decoded_once_and_a_changed_one_again(
        pg: tuple[PostgresStorage, PostgresStorage]) -> None:
    leader_storage, server_storage = pg
    assert leader_storage.try_lease(LEASE_NAME)
    runner = ProfileRunner(leader_storage, CONFIG, FixedClock(T0))
    runner.persist_each_chunk = True
    runner.load()
    leader_storage.log.append([ev(1, kind="identify", event=None, traits={"plan": "a"})])
    runner.catch_up()
    reads = StoredReads(server_storage.profiles, CONFIG, Published())
    first = reads.entry("user_id:u1")
    assert first is not None and reads.entry("user_id:u1") is first  # same bytes: the decoded entry is kept
    leader_storage.log.append([ev(2, kind="identify", event=None, traits={"plan": "b"})])
    runner.catch_up()
    again = reads.entry("user_id:u1")
    assert again is not None and again is not first and again.state.traits["plan"]["value"] == "b"
    assert reads.entry("user_id:nobody") is None


def test_a_server_that_reads_the_store_never_folds(pg: tuple[PostgresStorage, PostgresStorage]) -> None:
    leader_storage, server_storage = pg
    leader_storage.log.append([ev(1, kind="identify", event=None, traits={"plan": "a"})])
    server = ProfileRunner(server_storage, CONFIG, FixedClock(T0))
    server.open("never")
    assert server.catch_up() == 0 and server.tick() == 0 and server.folded == 0
    assert server.entry("user_id:u1") is None  # nobody published it yet: nothing is folded here to find it
    assert not server_storage.lease_held_elsewhere(LEASE_NAME)

"""``profile_contactability`` across restarts: a server that starts on a workspace whose table is complete up
to a recorded position recomputes only the profiles that changed after it (not every profile), deletes the
rows of profiles merged away, and still ends with exactly what a full :func:`refresh` gives; without the
marker (a crash of an older version, other settings) it recomputes everyone. DuckDB and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import takt.policy.segment_functions as sf
from takt.clock import FixedClock
from takt.events.model import Event
from takt.policy.config import PolicySettings
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.settings import load
from takt.storage.base import Storage

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CONFIG = ProfileConfig.from_settings(load(None, env={}))
SETTINGS = PolicySettings()
CONTACTABILITY_OF = sf.contactability_of  # the real one (tests count the calls of a wrapper)


def _ev(i: int, kind: str, user: str | None = None, anon: str | None = None, provenance: str = "customer_provided",
        **fields: Any) -> Event:
    at = T0 + timedelta(minutes=i)
    return Event(kind=kind, message_id=f"m-{i}", source="web", timestamp=at, received_at=at, provenance=provenance,
                 user_id=user, anonymous_id=anon, **fields)


def _identify(i: int, user: str | None, anon: str | None = None, email: str | None = None) -> Event:
    return _ev(i, "identify", user, anon, traits={"email": email} if email else {})


def _consent(i: int, user: str, status: str = "granted", method: str = "double_opt_in") -> Event:
    return _ev(i, "consent", user, properties={"purpose": "marketing", "channel": "email", "status": status,
                                               "actor": "customer", "evidence": {"method": method}})


def _people(n: int, offset: int = 0) -> list[Event]:
    out: list[Event] = []
    for k in range(n):
        user = f"u{k}"
        out.append(_identify(offset + 3 * k, user, email=f"{user}@example.com"))
        if k % 2 == 0:
            out.append(_consent(offset + 3 * k + 1, user))
    return out


class Recorder:
    """Counts the profiles whose contactability is computed (wraps ``contactability_of``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ids: list[str] = []
        original = sf.contactability_of

        def counting(storage: Storage, runner: Any, profile_ids: Sequence[str], settings: PolicySettings,
                     now: datetime) -> dict[str, frozenset[tuple[str, str]]]:
            self.ids.extend(profile_ids)
            return original(storage, runner, profile_ids, settings, now)

        monkeypatch.setattr(sf, "contactability_of", counting)

    def take(self) -> set[str]:
        out = set(self.ids)
        self.ids.clear()
        return out


class Server:
    """What ``takt serve`` does with the profile runner and the listener, without HTTP or threads."""

    def __init__(self, storage: Storage, batch: int = 3, cache_size: int = 100) -> None:
        self.runner = ProfileRunner(storage, CONFIG, FixedClock(NOW), cache_size=cache_size)
        self.listener = sf.ContactabilityListener(storage, SETTINGS, batch=batch)
        self.runner.add_listener(self.listener)  # attached first, as create_app does
        self.runner.load()
        self.runner.catch_up()

    def tick(self) -> None:
        self.runner.catch_up()
        self.runner.tick(NOW)

    def flush(self) -> None:
        self.runner.catch_up()
        self.listener.flush(self.runner, NOW)

    def stop(self) -> None:
        self.runner.stop()


def expected_rows(storage: Storage) -> list[tuple[str, str, str]]:
    """What a full refresh writes, computed by a fresh runner from the log alone (not from the table)."""
    fresh = ProfileRunner(storage, CONFIG, FixedClock(NOW))
    fresh.catch_up()  # in memory: no store, no save
    ids = fresh.profile_ids()
    got = CONTACTABILITY_OF(storage, fresh, ids, sf._settings(storage, SETTINGS), NOW)
    return sorted((pid, ch, pu) for pid, pairs in got.items() for ch, pu in pairs)


def table(storage: Storage) -> list[tuple[str, str, str]]:
    return sf.table_of(storage).rows()


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    yield Recorder(monkeypatch)
    sf.attach(None)


def test_a_restart_with_the_marker_recomputes_only_what_changed(storage: Storage, recorder: Recorder) -> None:
    storage.log.append(_people(12))
    first = Server(storage)
    first.flush()
    assert first.listener.start_mode == "everyone"
    assert len(recorder.take()) == 12
    assert table(storage) == expected_rows(storage) and table(storage)
    first.stop()
    marker = sf.load_marker(storage)
    assert marker is not None and marker.position == storage.log.head() and marker.pending == ()

    # nothing changed: the next start recomputes nobody
    second = Server(storage)
    second.flush()
    assert second.listener.start_mode == "marker" and recorder.take() == set()
    assert table(storage) == expected_rows(storage)
    second.stop()

    # two people change while no server runs: only they are recomputed
    storage.log.append([_consent(100, "u1"), _consent(101, "u2", status="withdrawn")])
    third = Server(storage)
    changed = {third.runner.find("user_id:u1"), third.runner.find("user_id:u2")}
    third.flush()
    assert third.listener.start_mode == "marker"
    assert recorder.take() == changed
    assert table(storage) == expected_rows(storage)
    third.stop()


def test_changes_while_running_are_recomputed_and_the_marker_follows(storage: Storage, recorder: Recorder,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sf, "MARKER_EVERY_S", 0.0)
    storage.log.append(_people(6))
    s = Server(storage)
    s.flush()
    recorder.take()
    storage.log.append([_consent(200, "u3")])
    s.tick()
    assert recorder.take() == {s.runner.find("user_id:u3")}
    marker = sf.load_marker(storage)  # the tick left nothing marked: the table is complete up to here
    assert marker is not None and marker.position == s.runner.position and marker.pending == ()
    assert table(storage) == expected_rows(storage)


def test_merged_away_profiles_lose_their_rows(storage: Storage, recorder: Recorder) -> None:
    # an anonymous visitor with an address of her own, then a known customer
    storage.log.append([_identify(1, None, "anon-1", "vis@example.com"), _consent(2, "u9"),
                        _identify(3, "u9", email="u9@example.com")])
    first = Server(storage)
    first.flush()
    before = {r[0] for r in table(storage)}
    assert len(first.runner.profile_ids()) == 2 and len(before) == 2
    first.stop()
    # she logs in: the two profiles merge while no server runs; a row of the absorbed one is left behind
    storage.log.append([_identify(10, "u9", "anon-1")])
    other = ProfileRunner(storage, CONFIG, FixedClock(NOW))
    other.load()
    other.catch_up()
    other.save()  # e.g. `takt worker` folded it
    (survivor,) = other.profile_ids()
    recorder.take()
    second = Server(storage)
    second.flush()
    assert second.listener.start_mode == "marker" and recorder.take() == {survivor}
    assert {r[0] for r in table(storage)} == {survivor}
    assert table(storage) == expected_rows(storage)


def _served_once(storage: Storage, recorder: Recorder, people: int) -> None:
    """``people`` people in the log, served once to the end (the table complete, the marker written)."""
    storage.log.append(_people(people))
    first = Server(storage)
    first.flush()
    first.stop()
    recorder.take()


def test_without_a_marker_everyone_is_recomputed(storage: Storage, recorder: Recorder) -> None:
    _served_once(storage, recorder, 8)
    storage.snapshots.delete(sf.MARKER)  # a crash of an earlier version, a workspace never served
    second = Server(storage)
    second.flush()
    assert second.listener.start_mode == "everyone"
    assert recorder.take() == set(second.runner.profile_ids()) and len(second.runner.profile_ids()) == 8
    assert table(storage) == expected_rows(storage)


def test_other_settings_make_the_marker_void(storage: Storage, recorder: Recorder) -> None:
    _served_once(storage, recorder, 4)
    listener = sf.ContactabilityListener(storage, PolicySettings(email_marketing_requires_double_opt_in=False))
    runner = ProfileRunner(storage, CONFIG, FixedClock(NOW))
    runner.add_listener(listener)
    runner.load()
    listener.flush(runner, NOW)
    assert listener.start_mode == "everyone" and len(recorder.take()) == 4


def test_an_operators_suppression_since_makes_the_next_start_recompute_everyone(storage: Storage,
                                                                                recorder: Recorder) -> None:
    from takt.policy.suppression_store import suppress

    storage.log.append(_people(6))
    first = Server(storage)
    first.flush()
    suppress(storage, "email", "u0@example.com", "admin", NOW)  # while it runs: no profile changes
    first.stop()
    recorder.take()
    second = Server(storage)
    second.flush()
    assert second.listener.start_mode == "everyone" and len(recorder.take()) == 6
    assert table(storage) == expected_rows(storage)
    assert not any(pid == second.runner.find("user_id:u0") and pu == "marketing" for pid, _, pu in table(storage))
    second.stop()
    third = Server(storage)  # nothing new since the second start: only what changed
    third.flush()
    assert third.listener.start_mode == "marker" and recorder.take() == set()


def test_a_clean_stop_records_what_is_still_marked(storage: Storage, recorder: Recorder) -> None:
    storage.log.append(_people(10))
    first = Server(storage, batch=2)
    first.flush()
    first.stop()
    storage.log.append([_consent(300 + k, f"u{k}", status="withdrawn") for k in range(0, 10, 2)])
    second = Server(storage, batch=2)
    second.tick()  # two of the five recomputed; three still marked when the server stops
    second.stop()
    marker = sf.load_marker(storage)
    assert marker is not None and len(marker.pending) == 3 and marker.position == storage.log.head()
    recorder.take()
    third = Server(storage, batch=2)
    third.flush()
    assert recorder.take() == set(marker.pending)
    assert table(storage) == expected_rows(storage)


def test_ticks_record_the_marker_only_when_little_is_left(storage: Storage, recorder: Recorder,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sf, "MARKER_MAX_PENDING", 2)
    monkeypatch.setattr(sf, "MARKER_EVERY_S", 0.0)
    storage.log.append(_people(7))
    s = Server(storage, batch=2)
    s.tick()  # 5 left marked: no marker yet
    assert sf.load_marker(storage) is None
    s.tick()  # 3 left
    assert sf.load_marker(storage) is None
    s.tick()  # 1 left: recorded with it
    marker = sf.load_marker(storage)
    assert marker is not None and len(marker.pending) == 1 and set(marker.pending) == set(s.listener.dirty)
    s.tick()
    marker = sf.load_marker(storage)
    assert marker is not None and marker.pending == () and marker.position == s.runner.position


def test_ticks_record_the_marker_at_most_every_few_seconds(storage: Storage, recorder: Recorder) -> None:
    storage.log.append(_people(3))
    s = Server(storage)
    s.flush()  # the first ticks of a start write no marker (a start stays short)...
    assert sf.load_marker(storage) is None
    s.listener._saved_at -= sf.MARKER_EVERY_S  # ...until MARKER_EVERY_S passed
    s.tick()
    marker = sf.load_marker(storage)
    assert marker is not None and marker.position == s.runner.position and marker.pending == ()
    storage.log.append([_consent(50, "u1")])
    s.tick()  # recomputed, but the marker waits
    assert sf.load_marker(storage) == marker
    s.stop()  # a clean stop always records it
    stopped = sf.load_marker(storage)
    assert stopped is not None and stopped.position == storage.log.head() > marker.position


def test_a_crash_loses_nothing(storage: Storage, recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process dies after folding (and persisting) changes it had not recomputed yet: the marker it left
    is older, and the next start finds those changes in the store."""
    monkeypatch.setattr(sf, "MARKER_EVERY_S", 0.0)  # it ran long enough to record one
    storage.log.append(_people(6))
    first = Server(storage)
    first.flush()
    storage.log.append([_consent(400, "u1"), _consent(401, "u5")])
    first.runner.catch_up()
    first.runner.save()  # folded and written, but never ticked: then the process dies
    recorder.take()
    second = Server(storage)
    second.flush()
    assert recorder.take() == {second.runner.find("user_id:u1"), second.runner.find("user_id:u5")}
    assert table(storage) == expected_rows(storage)


def test_the_marker_is_not_recorded_by_a_follower(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    storage.log.append(_people(3))
    runner = ProfileRunner(storage, CONFIG, FixedClock(NOW))
    listener = sf.ContactabilityListener(storage, SETTINGS)
    runner.add_listener(listener)
    runner.catch_up()
    monkeypatch.setattr(runner, "is_leader", lambda: False)
    listener.flush(runner, NOW)
    assert listener.start_mode == "everyone" and sf.load_marker(storage) is None


def test_refresh_all_records_the_marker(storage: Storage, recorder: Recorder) -> None:
    storage.log.append(_people(5))
    runner = ProfileRunner(storage, CONFIG, FixedClock(NOW))
    runner.load()
    runner.catch_up()
    runner.save()
    sf.refresh_all(storage, runner, SETTINGS, NOW)
    recorder.take()
    s = Server(storage)
    s.flush()
    assert s.listener.start_mode == "marker" and recorder.take() == set()
    assert table(storage) == expected_rows(storage)


# ---- random sequences of appends, ticks, restarts and crashes ----
def _random_events(rng: random.Random, start: int, n: int) -> list[Event]:
    out: list[Event] = []
    for i in range(start, start + n):
        k = rng.randrange(8)
        user, anon = f"u{k}", f"a{k}"
        roll = rng.random()
        if roll < 0.25:
            out.append(_identify(i, user, email=f"{user}@example.com"))
        elif roll < 0.4:  # an anonymous visitor with an address; later merged into user k
            out.append(_identify(i, None, anon, email=f"{anon}@example.com"))
        elif roll < 0.5:
            out.append(_identify(i, user, anon))
        elif roll < 0.75:
            out.append(_consent(i, user, method=rng.choice(["double_opt_in", "web_form"])))
        else:
            out.append(_consent(i, user, status="withdrawn"))
    return out


@pytest.mark.parametrize("seed", range(10))
def test_random_sequences_end_equal_to_a_full_refresh(storage: Storage, recorder: Recorder, seed: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if seed % 2:
        monkeypatch.setattr(sf, "MARKER_EVERY_S", 0.0)  # every tick may record it (crashes leave recent ones)
    rng = random.Random(seed)
    i = 0
    server = Server(storage, batch=rng.choice([1, 2, 50]), cache_size=rng.choice([100, 100_000]))
    for _ in range(20):
        step = rng.random()
        if step < 0.4:
            n = rng.randrange(1, 6)
            storage.log.append(_random_events(rng, i, n))
            i += n
        elif step < 0.6:
            server.tick()
        elif step < 0.7:
            server.runner.catch_up()
            if rng.random() < 0.5:
                server.runner.save()
        elif step < 0.85:
            server.stop()
            server = Server(storage, batch=rng.choice([1, 2, 50]))
        else:  # a crash: no stop, whatever was saved stays
            server = Server(storage, batch=rng.choice([1, 2, 50]))
    server.flush()
    assert table(storage) == expected_rows(storage)
    server.stop()
    again = Server(storage)
    again.flush()
    assert again.listener.start_mode == "marker"
    assert table(storage) == expected_rows(storage)


# ---- live segment membership: priming after a restart reads only what changed ----
SEGMENTS = {"de": 'trait.country = "DE"', "buyers": 'count(track "Order Completed") >= 2',
            "reachable": 'trait.email exists and not trait.country = "FR"'}


class Defs:
    def __init__(self) -> None:
        self.enabled = True

    def __call__(self) -> dict[str, tuple[int, Any]]:
        from takt.segments.parser import parse

        return {name: (1, parse(text)) for name, text in SEGMENTS.items()} if self.enabled else {}


def _order(i: int, user: str) -> Event:
    return _ev(i, "track", user, event="Order Completed", properties={"order_id": f"o{i}", "revenue": 10})


def _country(i: int, user: str, country: str) -> Event:
    return _ev(i, "identify", user, traits={"country": country})


class LiveServer:
    """A runner with live segment membership attached, as ``takt serve`` wires it (without threads)."""

    def __init__(self, storage: Storage, cache_size: int = 5) -> None:
        from takt.segments.live import LiveSegments

        self.runner = ProfileRunner(storage, CONFIG, FixedClock(NOW), cache_size=cache_size)
        self.defs = Defs()
        self.live = LiveSegments(self.defs, refresh_every_s=0.0)
        self.live.runner = self.runner
        self.runner.add_listener(self.live)
        self.runner.load()

    def step(self) -> None:
        self.runner.catch_up()
        self.runner.tick(NOW)
        self.runner.catch_up()

    def save(self) -> None:
        self.runner.save()
        self.live.save(self.runner)


def fresh_members(storage: Storage) -> dict[str, set[str]]:
    """Every segment's members, evaluated from scratch for every profile of a fresh in-memory fold."""
    from takt.projections.tables import profile_view
    from takt.segments.evaluate import evaluate
    from takt.segments.live import event_row

    fresh = ProfileRunner(storage, CONFIG, FixedClock(NOW))
    fresh.catch_up()
    out: dict[str, set[str]] = {name: set() for name in SEGMENTS}
    for pid in fresh.profile_ids():
        state = fresh.projector.profile(pid)
        assert state is not None
        view = profile_view(state, [event_row(s) for s in storage.log.get(list(state.positions))], CONFIG)
        for name, (_, tree) in Defs()().items():
            if evaluate(tree, view, NOW):
                out[name].add(pid)
    return out


def live_members(server: LiveServer) -> dict[str, set[str]]:
    return {name: server.live.members(name) for name in SEGMENTS}


def test_live_prime_reads_only_the_profiles_changed_after_its_snapshot(storage: Storage) -> None:
    storage.log.append([e for k in range(30) for e in (_identify(4 * k, f"u{k}", email=f"u{k}@example.com"),
                                                       _country(4 * k + 1, f"u{k}", "DE" if k % 3 else "FR"),
                                                       _order(4 * k + 2, f"u{k}"))])
    first = LiveServer(storage)
    first.step()
    assert live_members(first) == fresh_members(storage)
    first.save()
    # while no server runs, a worker folds two changes (no membership is derived for them yet)
    storage.log.append([_country(500, "u3", "DE"), _order(501, "u4")])
    worker = ProfileRunner(storage, CONFIG, FixedClock(NOW), cache_size=5)
    worker.load()
    worker.catch_up()
    worker.save()
    changed = {worker.find("user_id:u3"), worker.find("user_id:u4")}

    second = LiveServer(storage)
    loads = second.runner.projector.loads
    second.live.prime(second.runner)
    assert second.live._pending == changed
    assert second.runner.projector.loads - loads == len(changed)  # not the 30 profiles
    second.step()
    assert live_members(second) == fresh_members(storage)
    assert worker.find("user_id:u3") in live_members(second)["de"]  # u3 moved to Germany meanwhile


def test_live_prime_sees_what_the_runner_folded_before_it(storage: Storage) -> None:
    """Folded but not yet written when membership primes (here: no segment existed yet at the fold): the
    profile is still evaluated."""
    storage.log.append([_identify(1, "u1", email="u1@example.com"), _identify(2, "u2", email="u2@example.com")])
    first = LiveServer(storage)
    first.step()
    first.save()
    storage.log.append([_country(10, "u2", "DE")])
    second = LiveServer(storage, cache_size=100)
    second.defs.enabled = False
    second.runner.catch_up()  # membership does not prime without segments: the change is not noted
    second.defs.enabled = True
    second.live._checked = float("-inf")  # (it looks for segments at most once a second)
    second.step()
    assert second.runner.find("user_id:u2") in live_members(second)["de"]
    assert live_members(second) == fresh_members(storage)


def test_live_prime_without_a_store_evaluates_as_before(storage: Storage) -> None:
    storage.log.append([_identify(1, "u1", email="u1@example.com"), _country(2, "u1", "DE"),
                        _identify(3, "u2", email="u2@example.com")])
    from takt.segments.live import LiveSegments

    runner = ProfileRunner(storage, CONFIG, FixedClock(NOW))  # never loaded: the projection is in memory only
    live = LiveSegments(Defs(), refresh_every_s=0.0)
    live.runner = runner
    runner.catch_up()
    assert runner.projector.store is None
    live.prime(runner)
    assert live._pending == set(runner.profile_ids())


@pytest.mark.parametrize("seed", range(8))
def test_live_random_sequences_end_equal_to_a_fresh_evaluation(storage: Storage, seed: int) -> None:
    rng = random.Random(1000 + seed)
    i = 0
    server = LiveServer(storage, cache_size=rng.choice([3, 100]))
    for _ in range(16):
        step = rng.random()
        if step < 0.4:
            events = []
            for _ in range(rng.randrange(1, 5)):
                user = f"u{rng.randrange(6)}"
                kind = rng.random()
                events.append(_order(i, user) if kind < 0.4 else
                              _country(i, user, rng.choice(["DE", "FR", "AT"])) if kind < 0.7 else
                              _identify(i, user, email=f"{user}@example.com") if kind < 0.85 else
                              _identify(i, None, f"a{rng.randrange(3)}", email=f"a{user}@example.com") if kind < 0.93
                              else _identify(i, user, f"a{rng.randrange(3)}"))
                i += 1
            storage.log.append(events)
        elif step < 0.6:
            server.step()
        elif step < 0.75:
            server.save() if rng.random() < 0.5 else server.runner.save()
        elif step < 0.9:
            server.save()
            server = LiveServer(storage, cache_size=rng.choice([3, 100]))
        else:  # a crash
            server = LiveServer(storage, cache_size=rng.choice([3, 100]))
    server.step()
    assert live_members(server) == fresh_members(storage)


# ---- the demo leaves the table complete ----
def test_the_demo_workspace_starts_with_contactability_complete(tmp_path: Any, recorder: Recorder) -> None:
    from takt.demo.feed import build_demo
    from takt.demo.generator import DemoConfig
    from takt.workspace import open_workspace

    end = datetime(2026, 11, 24, tzinfo=UTC)
    build_demo(tmp_path / "demo", DemoConfig(end=end, customers=12, days=30, seed=3), clock=FixedClock(end),
               transport="testclient")
    ws = open_workspace(tmp_path / "demo")
    settings = PolicySettings.from_settings(ws.settings)
    with ws.open_storage() as storage:
        recorder.take()
        runner = ProfileRunner(storage, ProfileConfig.from_settings(ws.settings), FixedClock(end))
        listener = sf.ContactabilityListener(storage, settings)
        runner.add_listener(listener)
        runner.load()
        runner.catch_up()
        listener.flush(runner, end)
        assert listener.start_mode == "marker" and recorder.take() == set()
        ids = runner.profile_ids()
        assert len(ids) >= 12
        got = CONTACTABILITY_OF(storage, runner, ids, sf._settings(storage, settings), end)
        assert table(storage) == sorted((p, c, u) for p, pairs in got.items() for c, u in pairs) and table(storage)

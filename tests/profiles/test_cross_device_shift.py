"""New needs across devices (issue 13, item 6): a merge that joins browsing from two devices and changes the
merged profile's top interest derives one ``interest_shifted`` event, its id computed from the merge's cause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takt.events.model import Event, StoredEvent
from takt.profiles.derived import INTEREST_SHIFTED, derived_message_id
from takt.profiles.projector import MemoryEvents, Projector
from tests.factories import ev
from tests.profiles.helpers import CONFIG, search, stored

OCT = datetime(2026, 10, 1, 19, 0, tzinfo=UTC)
NOV = datetime(2026, 11, 7, 20, 0, tzinfo=UTC)
KRABI, NEW_YORK = "destination:krabi", "destination:new-york"


def device_one() -> list[Event]:
    """Four weeks of Krabi on device 1 (anonymous a1), then the customer logs in there as u."""
    out = [search(i, "beach hotels Krabi", OCT + timedelta(days=7 * i), user_id=None, anonymous_id="a1")
           for i in range(5)]
    out.append(ev(10, kind="identify", user_id="u", anonymous_id="a1", at=OCT + timedelta(days=29),
                  message_id="login-1"))
    return out


def device_two(searches: int = 4) -> list[Event]:
    """Recent New York searches on device 2 while anonymous (a2)."""
    return [search(20 + i, "flights to New York", NOV + timedelta(days=i), user_id=None, anonymous_id="a2")
            for i in range(searches)]


def login_on_two() -> Event:
    return ev(30, kind="identify", user_id="u", anonymous_id="a2", at=NOV + timedelta(days=4),
              message_id="login-2")


def shifts(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind == INTEREST_SHIFTED]


def test_login_on_a_second_device_derives_the_shift_from_krabi_to_new_york() -> None:
    log = stored([*device_one(), *device_two(), login_on_two()])
    p = Projector(CONFIG)
    # the events arrive one at a time, as live
    derived = [d for s in log for d in p.apply([s])]
    (pid,) = p.profiles()
    assert p.profile(pid) is not None
    assert p.profile(pid).top_interest == NEW_YORK  # type: ignore[union-attr]
    (shift,) = shifts(derived)
    assert shift.properties["from"] == KRABI
    assert shift.properties["to"] == NEW_YORK
    assert shift.properties["profile_id"] == pid
    assert shift.properties["cause"] == {"position": log[-1].position, "source": "web", "message_id": "login-2"}
    assert shift.message_id == derived_message_id(INTEREST_SHIFTED, pid, "web", "login-2")
    assert shift.timestamp == login_on_two().timestamp
    assert shift.properties["to_score"] > shift.properties["from_score"] * (1 + CONFIG.shift_margin)


def test_the_merge_shift_has_the_same_id_on_replay_and_is_not_derived_again_when_fed_back() -> None:
    log = stored([*device_one(), *device_two(), login_on_two()])
    live = Projector(CONFIG)
    first = [d for s in log for d in live.apply([s])]
    # a rebuild: a fresh projector folding the whole log at once, derived events included
    full = [*log, *(StoredEvent(len(log) + 1 + i, d) for i, d in enumerate(first))]
    again = Projector(CONFIG).apply(full)
    assert [e.message_id for e in again] == [e.message_id for e in first]
    assert live.apply(full[len(log):]) == []


def test_a_merge_that_keeps_the_top_interest_derives_nothing() -> None:
    # one New York search on device 2 is not enough to displace weeks of Krabi
    p = Projector(CONFIG)
    derived = p.apply(stored([*device_one(), *device_two(searches=1), login_on_two()]))
    assert shifts(derived) == []
    (pid,) = p.profiles()
    assert p.profile(pid).top_interest == KRABI  # type: ignore[union-attr]


def test_a_merge_of_two_devices_with_the_same_top_interest_derives_nothing() -> None:
    more_krabi = [search(20 + i, "Krabi island hopping", NOV + timedelta(days=i), user_id=None, anonymous_id="a2")
                  for i in range(4)]
    derived = Projector(CONFIG).apply(stored([*device_one(), *more_krabi, login_on_two()]))
    assert shifts(derived) == []


def test_on_one_device_the_shift_is_still_caused_by_the_search() -> None:
    one_device = [*device_one(), *(e.with_changes(anonymous_id="a1") for e in device_two())]
    derived = Projector(CONFIG).apply(stored(one_device))
    (shift,) = shifts(derived)
    assert (shift.properties["from"], shift.properties["to"]) == (KRABI, NEW_YORK)
    assert shift.properties["cause"]["message_id"] != "login-2"


def test_a_merge_without_a_declared_top_on_the_survivor_derives_nothing() -> None:
    # device 1 never browsed enough for a top interest: New York becomes the first top, not a shift
    first = [ev(1, user_id=None, anonymous_id="a1", at=OCT, event="Signed Up"),
             ev(2, kind="identify", user_id="u", anonymous_id="a1", at=OCT, message_id="login-1")]
    p = Projector(CONFIG)
    derived = p.apply(stored([*first, *device_two(), login_on_two()]))
    assert shifts(derived) == []
    (pid,) = p.profiles()
    assert p.profile(pid).top_interest == NEW_YORK  # type: ignore[union-attr]


# ---- arrival orders ----
def scenario() -> list[Event]:
    return [*device_one(), *device_two(), login_on_two()]


def tops(p: Projector) -> dict[str, str | None]:
    return {pid: state.top_interest for pid in p.profiles() if (state := p.profile(pid)) is not None}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(range(len(scenario()))), cuts=st.lists(st.integers(1, len(scenario())), max_size=4))
def test_arrival_orders_announce_every_change_of_top_once_and_replay_to_the_same_ids(
        order: list[int], cuts: list[int]) -> None:
    events = scenario()
    log = [StoredEvent(2 * i + 1, events[j]) for i, j in enumerate(order)]
    # one event at a time: whenever a profile that had a top interest has another one after the event (a
    # merge's survivor included), exactly one shift from the old top to the new is derived, else none
    p = Projector(CONFIG, MemoryEvents())
    derived: list[Event] = []
    for s in log:
        before = tops(p)
        found = p.apply([s])
        after = tops(p)
        want = sorted((pid, old, after[pid]) for pid, old in before.items()
                      if old is not None and after.get(pid) not in (None, old))
        got = sorted((d.properties["profile_id"], d.properties["from"], d.properties["to"]) for d in shifts(found))
        assert got == want
        derived.extend(found)
    ids = [d.message_id for d in derived]
    assert len(ids) == len(set(ids))
    # in chunks: the same ids
    chunked = Projector(CONFIG, MemoryEvents())
    bounds = [0, *sorted(set(cuts)), len(log)]
    assert [d.message_id for a, b in pairwise(bounds) for d in chunked.apply(log[a:b])] == ids
    # a rebuild (the log with the derived events appended) derives the same ids, which the log stores once
    full = [*log, *(StoredEvent(log[-1].position + 1 + i, d) for i, d in enumerate(derived))]
    rebuilt = Projector(CONFIG, MemoryEvents())
    assert [d.message_id for d in rebuilt.apply(full)] == ids
    assert rebuilt.snapshot()["profiles"] == p.snapshot()["profiles"]


def test_in_time_order_the_customer_gets_exactly_one_shift() -> None:
    events = sorted(scenario(), key=lambda e: e.timestamp)
    derived = Projector(CONFIG).apply(stored(events))
    assert [(d.properties["from"], d.properties["to"]) for d in shifts(derived)] == [(KRABI, NEW_YORK)]

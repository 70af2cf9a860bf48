"""The suppression list on both backends: durable keyed hashes, derived from the log and written directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from takt.errors import TaktError
from takt.events.model import Event
from takt.policy import Intent, PolicySettings, decide
from takt.policy.person import ContactPoint, PolicyPerson
from takt.policy.suppression import contact_point_hash
from takt.policy.suppression_store import (
    SuppressionEntry,
    check,
    entries_from_event,
    in_memory,
    suppress,
    suppressed_hashes,
    suppression_entries,
    suppression_key,
    suppression_list,
    sync,
)
from takt.storage.base import Storage

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def _event(kind: str, mid: str, props: dict[str, object], at: datetime = T0, source: str = "crm") -> Event:
    return Event(kind=kind, message_id=mid, source=source, timestamp=at, received_at=at, provenance="customer_provided",
                 user_id="u1", properties=props)


def _unsubscribe(mid: str, address: str, at: datetime = T0) -> Event:
    return _event("consent", mid, {"purpose": "marketing", "channel": "email", "contact_point": address,
                                   "status": "withdrawn", "actor": "customer",
                                   "evidence": {"method": "unsubscribe_link"}}, at)


def _message(mid: str, status: str, address: str, channel: str = "email") -> Event:
    return _event("message", mid, {"message_id": mid, "status": status, "channel": channel,
                                   "contact_point": address, "intent": "marketing"})


def test_suppress_and_check_keep_only_the_keyed_hash(storage: Storage) -> None:
    entry = suppress(storage, "email", " Ada@Example.com ", "admin", T0, source="admin:ops")
    key = suppression_key(storage)
    assert entry.hash == contact_point_hash(key, "email", "ada@example.com")
    assert "example" not in entry.hash and len(entry.hash) == 64 and set(entry.hash) <= set("0123456789abcdef")
    found = check(storage, "email", "ADA@example.com")
    assert [(e.kind, e.reason, e.source, e.at) for e in found] == [("email", "admin", "admin:ops", T0)]
    assert check(storage, "email", "bob@example.com") == []
    # the same address and reason again changes nothing; another reason is a second entry
    suppress(storage, "email", "ada@example.com", "admin", T0 + timedelta(days=1))
    suppress(storage, "email", "ada@example.com", "erasure", T0 + timedelta(days=2), source="privacy")
    assert [(e.reason, e.at) for e in check(storage, "email", "ada@example.com")] == [
        ("admin", T0), ("erasure", T0 + timedelta(days=2))]
    assert suppression_list(storage).count() == 2


def test_the_key_is_stable_and_the_list_durable(storage: Storage) -> None:
    assert suppression_key(storage) == suppression_key(storage)
    assert len(suppression_key(storage)) == 32
    suppress(storage, "phone", "+49 170 1234567", "complaint", T0)
    # a second handle on the same list (a new process would build one the same way) sees the entry
    from takt.policy.suppression_store import SuppressionList

    again = SuppressionList(storage)
    assert [e.reason for e in again.lookup([contact_point_hash(suppression_key(storage), "phone", "+491701234567")])] \
        == ["complaint"]


def test_bad_input_is_refused_with_a_clear_error(storage: Storage) -> None:
    with pytest.raises(TaktError, match="unknown contact point kind 'fax'"):
        suppress(storage, "fax", "123", "admin", T0)
    with pytest.raises(TaktError, match="unknown suppression reason 'bored'"):
        suppress(storage, "email", "a@example.com", "bored", T0)
    with pytest.raises(TaktError, match="non-empty"):
        suppress(storage, "email", "  ", "admin", T0)
    with pytest.raises(TaktError, match="timezone-aware"):
        suppress(storage, "email", "a@example.com", "admin", datetime(2026, 1, 1))
    assert suppression_list(storage).count() == 0


def test_unsubscribes_complaints_and_bounces_in_the_log_become_entries(storage: Storage) -> None:
    storage.log.append([
        _unsubscribe("c1", "ann@example.com"),
        _event("consent", "c2", {"purpose": "marketing", "channel": "email", "contact_point": "keep@example.com",
                                 "status": "withdrawn", "actor": "customer", "evidence": {"method": "web_form"}}),
        _message("m1", "complained", "cem@example.com"),
        _message("m2", "bounced", "+4917000000", channel="sms"),
        _message("m3", "opened", "dan@example.com"),
        _event("track", "t1", {"x": 1}),
    ])
    assert sync(storage) == 3
    key = suppression_key(storage)
    reasons = {(e.kind, e.reason) for e in suppression_list(storage).entries()}
    assert reasons == {("email", "unsubscribe"), ("email", "complaint"), ("phone", "hard_bounce")}
    assert [e.reason for e in check(storage, "email", "ann@example.com")] == ["unsubscribe"]
    assert check(storage, "email", "keep@example.com") == []  # a plain withdrawal is consent, not suppression
    assert check(storage, "email", "dan@example.com") == []
    # incremental and idempotent: nothing new, then only the new event
    assert sync(storage) == 0
    storage.log.append([_message("m4", "complained", "eve@example.com")])
    assert sync(storage) == 1
    assert suppression_list(storage).count() == 4
    points = [ContactPoint("email", "ann@example.com", "customer_provided"),
              ContactPoint("email", "zed@example.com", "customer_provided")]
    assert suppressed_hashes(storage, points) == {contact_point_hash(key, "email", "ann@example.com")}


def test_a_replay_from_zero_adds_nothing_and_removes_nothing(storage: Storage) -> None:
    storage.log.append([_unsubscribe("c1", "ann@example.com")])
    sync(storage)
    suppress(storage, "email", "gone@example.com", "erasure", T0)
    storage.snapshots.delete("suppression:position")
    assert sync(storage) == 0
    assert suppression_list(storage).count() == 2


def test_paging_lists_hashes_in_order(storage: Storage) -> None:
    for i in range(5):
        suppress(storage, "email", f"p{i}@example.com", "admin", T0)
    first = suppression_list(storage).entries(limit=3)
    rest = suppression_list(storage).entries(limit=3, after=first[-1].hash)
    hashes = [e.hash for e in first + rest]
    assert hashes == sorted(hashes) and len(set(hashes)) == 5
    assert suppression_list(storage).entries(kind="phone") == []
    assert len(suppression_list(storage).entries(reason="admin")) == 5


def test_a_suppressed_contact_point_is_refused_for_every_purpose(storage: Storage) -> None:
    suppress(storage, "email", "ann@example.com", "admin", T0)
    point = ContactPoint("email", "ann@example.com", "customer_provided")
    person = PolicyPerson("p1", (point,), suppressed=suppressed_hashes(storage, [point]))
    settings = PolicySettings(suppression_key=suppression_key(storage))
    for purpose in ("marketing", "transactional", "service"):
        d = decide(person, Intent(purpose), ["email"], T0, settings)
        assert not d.allowed
        assert "suppressed" in [r.code for r in d.rejected["email"]] or "suppressed" in d.codes()


def test_entries_from_invalid_events_are_skipped() -> None:
    bad = _event("message", "m", {"status": "nope"})
    assert entries_from_event(bad, b"k" * 32) == []
    entry = entries_from_event(_unsubscribe("c", "A@Example.com"), b"k" * 32)
    assert entry == [SuppressionEntry("email", contact_point_hash(b"k" * 32, "email", "a@example.com"),
                                      "unsubscribe", T0, "crm")]


def test_lifted_needs_a_later_confirmed_customer_grant() -> None:
    from takt.policy.consent import fold_consent
    from takt.policy.suppression_store import lifted

    point = ContactPoint("email", "ann@example.com", "customer_provided")
    entry = SuppressionEntry("email", "h", "unsubscribe", T0, "x")

    def grant(at: datetime, method: str, actor: str = "customer", provenance: str = "customer_provided") -> Event:
        return Event(kind="consent", message_id=f"g{at.isoformat()}{method}{actor}", source="web", timestamp=at,
                     received_at=at, provenance=provenance, user_id="u1",
                     properties={"purpose": "marketing", "channel": "email", "status": "granted", "actor": actor,
                                 "evidence": {"method": method}})

    later = T0 + timedelta(days=1)
    assert lifted(entry, point, fold_consent([grant(later, "double_opt_in")]))
    assert not lifted(entry, point, fold_consent([grant(T0 - timedelta(days=1), "double_opt_in")]))
    assert not lifted(entry, point, fold_consent([grant(later, "web_form")]))
    assert not lifted(entry, point, fold_consent([grant(later, "double_opt_in", "admin")]))
    assert not lifted(entry, point, fold_consent([grant(later, "double_opt_in", "customer", "crm_import")]))
    for reason in ("complaint", "hard_bounce", "erasure", "admin"):
        other = SuppressionEntry("email", "h", reason, T0, "x")
        assert not lifted(other, point, fold_consent([grant(later, "double_opt_in")]))


def test_two_processes_agree_on_one_key(storage: Storage) -> None:
    from takt.policy.suppression_store import SuppressionList

    first, second = SuppressionList(storage).secret(), SuppressionList(storage).secret()
    assert first == second and len(first) == 32
    assert suppression_key(storage) == first


def _counting_reads(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []
    real = storage.log.read_matching

    def counted(after: int, upto: int, **kw: object) -> object:
        calls.append((after, upto))
        return real(after, upto, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(storage.log, "read_matching", counted)
    return calls


def test_a_lookup_as_of_a_derived_position_reads_no_log(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    ann = [ContactPoint("email", "ann@example.com", "customer_provided")]
    eve = [ContactPoint("email", "eve@example.com", "customer_provided")]
    first = storage.log.append([_unsubscribe("c1", "ann@example.com")]).last_position
    reads = _counting_reads(storage, monkeypatch)
    assert [e.reason for _, e in suppression_entries(storage, ann, upto=first)] == ["unsubscribe"]
    assert len(reads) == 1
    # the request path asks again as of the same (published) position: no log read at all
    for _ in range(5):
        assert [e.reason for _, e in suppression_entries(storage, ann, upto=first)] == ["unsubscribe"]
    assert len(reads) == 1
    # a newer event: a lookup as of the old position still reads nothing; as of the new one, it derives it
    second = storage.log.append([_message("m1", "complained", "eve@example.com")]).last_position
    assert suppression_entries(storage, eve, upto=first) == []
    assert len(reads) == 1
    assert [e.reason for _, e in suppression_entries(storage, eve, upto=second)] == ["complaint"]
    assert reads[1:] == [(first, second)]
    # without ``upto`` (the CLI, the suppression endpoints) the list is derived up to the head, as before
    storage.log.append([_message("m2", "bounced", "ann@example.com")])
    assert {e.reason for _, e in suppression_entries(storage, ann)} == {"unsubscribe", "hard_bounce"}


def test_the_list_held_in_memory_answers_like_the_table(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    store = suppression_list(storage)
    points = [ContactPoint("email", f"p{i}@example.com", "customer_provided") for i in range(6)]
    suppress(storage, "email", "p0@example.com", "admin", T0)
    storage.log.append([_unsubscribe("c1", "p1@example.com"), _message("m1", "bounced", "p2@example.com")])
    before = suppression_entries(storage, points)  # the first lookup reads the whole list (DuckDB)
    suppress(storage, "email", "p3@example.com", "erasure", T0 + timedelta(days=1))  # added after that read
    suppress(storage, "email", "p0@example.com", "admin", T0 + timedelta(days=2))  # a duplicate: the first stays
    storage.log.append([_message("m2", "complained", "p4@example.com")])
    sync(storage)
    key = suppression_key(storage)
    table = {(e.hash, e.reason, e.at) for e in store.entries(limit=100)}  # straight from the table
    wanted = {contact_point_hash(key, cp.kind, cp.value) for cp in points}
    assert {(e.hash, e.reason, e.at) for e in store.lookup(wanted)} == table
    assert len(before) == 3 and len(table) == 5
    if storage.single_owner:  # DuckDB: one process owns the file, so every entry went through this list
        def no_query(*a: object) -> list[tuple[object, ...]]:
            raise AssertionError("a lookup queried the table")

        monkeypatch.setattr(store, "_query", no_query)
        assert {(e.hash, e.reason, e.at) for e in store.lookup(wanted)} == table
        assert in_memory(storage, storage.log.head())
    else:  # other processes add entries: every lookup reads the table
        assert not in_memory(storage, storage.log.head())

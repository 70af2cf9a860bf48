"""The data subject's rights: export (GDPR Art. 15/20) and erasure (Art. 17). See ``docs/privacy.md``.

Both take a person by identifier (``email:ann@example.com``, ``user_id:42``, …) or profile id (``p_…``) and a
profile runner (the live server's, or one the CLI builds and catches up). Both are idempotent: exporting
twice gives the same document (but for ``exported_at``), erasing twice erases nothing the second time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from takt.errors import TaktError, invalid
from takt.events.model import StoredEvent
from takt.identity.extract import NO_IDENTITY_KINDS, identifiers_of
from takt.identity.identifiers import parse_identifier
from takt.log.base import ErasureResult
from takt.policy.consent import CONSENT
from takt.policy.messages import MESSAGE
from takt.policy.suppression_store import suppress
from takt.privacy.audit import record
from takt.privacy.derived import forget_profiles
from takt.profiles.sealed import profile_subject
from takt.profiles.sections import add_sections
from takt.profiles.state import ProfileState
from takt.projections.runner import SNAPSHOT_NAME, ProfileRunner
from takt.projections.tables import WorkspaceTables
from takt.storage.base import Storage

logger = logging.getLogger(__name__)

CONSENT_KINDS = frozenset({CONSENT})
MESSAGE_KINDS = frozenset({MESSAGE})


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def check_identifier(identifier: Any) -> str:
    if not isinstance(identifier, str) or not identifier.strip():
        raise invalid("identifier is required: TYPE:VALUE (e.g. email:ann@example.com) or a profile id (p_…)",
                      code="invalid_request", errors=[{"field": "identifier", "reason": "a non-empty string is required"}])
    return identifier.strip()


def find_person(runner: ProfileRunner, identifier: str) -> ProfileState | None:
    """The person's profile state, or ``None`` when no profile has this identifier (or id)."""
    identifier = check_identifier(identifier)
    with runner.lock:
        if ":" not in identifier:
            state = runner.projector.profile(identifier)
            return state if state is not None and state.events else None
        state = runner.projector.profile_for(identifier)
        return state if state is not None and state.events else None


def export_person(storage: Storage, runner: ProfileRunner, identifier: str, now: datetime) -> dict[str, Any]:
    """Everything takt holds about one person, as one JSON document: every profile that carries the identifier —
    its own profile first, then those identity keeps apart (a refused merge, a CRM row, a claim), found as an
    erasure finds them (:func:`_carriers`) — with the events folded into them, the events that name the
    identifier and what takt derived about them (interest shifts, segment entries), each event once, in log
    order. ``profile_id``/``profile`` are the first profile; ``profiles`` holds them all.

    Like an erasure it reads the whole log under the projector's lock (a rights request, not a serving path)."""
    identifier = check_identifier(identifier)
    with runner.lock:
        runner.catch_up()
        state = find_person(runner, identifier)
        found: list[ProfileState] = []
        carried: set[int] = set()
        if ":" in identifier:
            found, carried = _carriers(storage, runner, parse_identifier(identifier, runner.config.identity))
        if state is None and found:
            state = found[0]
        if state is None:
            raise TaktError(f"no profile has the identifier {identifier!r}", code="not_found", status=404)
        states = [state, *(s for s in found if s.id != state.id)]
        graph = runner.projector.identity
        ids: set[str] = set()
        positions = set(carried)
        for s in states:
            ids |= {s.id} | {old for old in graph.redirects if graph.current_id(old) == s.id}
            positions |= set(s.positions)
        positions |= set(storage.log.mentioning([orjson.dumps(pid).decode() for pid in sorted(ids)]))
        profiles = [add_sections(storage, runner.profile_json(s.id, now), now) for s in states]
    events: list[StoredEvent] = storage.log.get(sorted(positions)) if positions else []
    records = [{"position": e.position, **e.event.to_record()} for e in sorted(events, key=lambda e: e.position)]
    return {
        "identifier": identifier,
        "profile_id": state.id,
        "exported_at": _iso(now),
        "profile": profiles[0],
        "profiles": profiles,
        "events": records,
        "consent": [r for r in records if r["type"] in CONSENT_KINDS],
        "messages": [r for r in records if r["type"] in MESSAGE_KINDS],
    }


def _suppress_contacts(storage: Storage, state: ProfileState, now: datetime) -> int:
    """Keep the person's contact points on the suppression list (keyed hashes only), so that an erased address
    is never written to again. Returns how many contact points were listed."""
    n = 0
    for contact in state.contacts.values():
        try:
            suppress(storage, str(contact["type"]), str(contact["value"]), "erasure", now, "takt.privacy")
        except TaktError:
            continue  # a kind the suppression list does not hold
        n += 1
    return n


ERASURES_PENDING = "privacy:erasures-pending"
"""Snapshot-store entry listing erasures whose keys may be destroyed but whose projections may not yet be rebuilt
(profile id, HMAC subject ids of its identifiers, counts): a retry finishes them. Gone once they are reported."""

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def erase_person(storage: Storage, runner: ProfileRunner, identifier: str, now: datetime,
                 key_id: str = "system", progress: Say | None = None) -> dict[str, Any]:
    """Crypto-shred one person: suppression hashes kept, subject keys destroyed, events turned into tombstones,
    profile and identity state rebuilt without them, projection snapshot replaced.

    Audited on both sides: ``privacy.erase`` with outcome ``requested`` is committed before anything changes,
    then ``erased``, ``not_found`` or ``failed: <reason>``. A failure anywhere leaves a state a retry completes:
    the destructive step (keys and tombstones) is one transaction, and before it the erasure is written down as
    pending (:data:`ERASURES_PENDING`), so a retry (in this process or a new one) first finishes what the failed
    one left (rebuild, segment tables, vacuum) and answers ``erased`` for it, never ``not found``. A failure
    raises ``erasure_incomplete`` (503, retry); ``progress`` hears each step."""
    identifier = check_identifier(identifier)
    say = progress or _quiet
    with runner.lock:
        say("catching up with the log")
        runner.catch_up()
        state = find_person(runner, identifier)
        parsed = parse_identifier(identifier, runner.config.identity) if ":" in identifier else identifier
        pending = _load_pending(storage)
        hit = _matching(storage, pending, parsed)
        subject = state.id if state is not None else (str(hit["profile_id"]) if hit is not None else None)
        record(storage, now, key_id, "privacy.erase", subject, "requested")  # before anything changes
        try:
            result = _erase(storage, runner, identifier, parsed, state, pending, now, say)
        except Exception as e:
            reason = e.code if isinstance(e, TaktError) else type(e).__name__
            logger.exception("erasure of %s failed (%s); a retry completes it", subject or "an identifier", reason)
            try:
                record(storage, now, key_id, "privacy.erase", subject, f"failed: {reason}")
            except TaktError:
                logger.exception("the failed erasure could not be recorded in the audit log")
            if isinstance(e, TaktError) and e.status < 500:
                raise
            raise TaktError(f"the erasure did not complete ({reason}); retry it: the retry finishes it",
                            code="erasure_incomplete", status=503, headers={"Retry-After": "1"}) from e
        record(storage, now, key_id, "privacy.erase", result["profile_id"] or subject,
               "erased" if result["erased"] else "not_found")
        if pending or result["profile_id"] is not None:
            storage.snapshots.delete(ERASURES_PENDING)  # reported: nothing left to finish
    return result


def _erase(storage: Storage, runner: ProfileRunner, identifier: str, parsed: str, state: ProfileState | None,
           pending: list[dict[str, Any]], now: datetime, say: Say) -> dict[str, Any]:
    if pending:
        say("finishing an interrupted erasure")
        _finish(storage, runner, say, pending)
        state = find_person(runner, identifier)
    found: list[ProfileState] = []
    carried: set[int] = set()
    if ":" in identifier:
        say("finding every profile and event that carries the identifier")
        found, carried = _carriers(storage, runner, parsed)
        if state is None and found:
            state = found[0]
    if state is None:
        hit = _matching(storage, pending, parsed)
        if hit is not None:  # an interrupted erasure of this person, now complete (counts: unless it crashed
            # between destroying the keys and writing them down)
            return {"identifier": identifier, "profile_id": hit["profile_id"],
                    "profiles": hit.get("profiles", [hit["profile_id"]]), "erased": True,
                    "events": hit.get("events", 0), "keys": hit.get("keys", 0), "suppressed": hit["suppressed"],
                    "erased_at": _iso(now)}
        # no profile holds events under it, but sealed events may still name it (an admin's unmerge
        # request, an identifier split off the person): destroy its key all the same
        result = ErasureResult(0, 0)
        if ":" in identifier:
            say("destroying the identifier's key")
            result = storage.log.erase(sorted(carried), [parsed])
        return {"identifier": identifier, "profile_id": None, "profiles": [],
                "erased": bool(result.events or result.keys),
                "events": result.events, "keys": result.keys, "suppressed": 0, "erased_at": _iso(now)}
    states = [state, *(s for s in found if s.id != state.id)]
    say("keeping the contact points as suppression hashes")
    suppressed = sum(_suppress_contacts(storage, s, now) for s in states)
    # derived events (interest shifts, segment entries) name the profile, never the person: tombstone them
    # too, so what was inferred about the person goes with their data
    graph = runner.projector.identity
    ids: set[str] = set()
    positions: set[int] = set(carried)
    identifiers: set[str] = {parsed} if ":" in identifier else set()
    for s in states:
        ids |= {s.id} | {old for old in graph.redirects if graph.current_id(old) == s.id}
        positions |= set(s.positions)
        cluster = graph.clusters.get(s.id)
        identifiers |= set(cluster.identifiers) if cluster is not None else set()
    derived = storage.log.mentioning([orjson.dumps(pid).decode() for pid in sorted(ids)])
    identifiers |= {profile_subject(pid) for pid in ids}  # the keys their profile store rows are sealed under
    entry: dict[str, Any] = {"profile_id": state.id, "profiles": [s.id for s in states], "ids": sorted(ids),
                             "suppressed": suppressed, "subjects": sorted(_subject_ids(storage, sorted(identifiers)))}
    others = [p for p in pending if p["profile_id"] != state.id]
    _save_pending(storage, [*others, entry])  # written down before anything is destroyed
    say("destroying keys and redacting events")
    result = storage.log.erase(sorted(positions | set(derived)), sorted(identifiers))
    entry.update(events=result.events, keys=result.keys)
    _save_pending(storage, [*others, entry])
    _finish(storage, runner, say, [*others, entry])
    return {"identifier": identifier, "profile_id": state.id, "profiles": entry["profiles"], "erased": True,
            "events": result.events, "keys": result.keys, "suppressed": suppressed, "erased_at": _iso(now)}


def _carriers(storage: Storage, runner: ProfileRunner, parsed: str) -> tuple[list[ProfileState], set[int]]:
    """Every profile and every event that carries the identifier ``parsed``: the events that name it (in any of
    the places identity reads, a public client's claim included), the profiles they were folded into (also those
    identity keeps apart from the identifier's own profile: a merge a unique-id guard refused, a claim), and the
    profiles whose contact points hold it. Reads the whole log (as the rebuild that follows does)."""
    config = runner.config.identity
    graph = runner.projector.identity
    pids: set[str] = set()
    positions: set[int] = set()
    after = 0
    while chunk := storage.log.read(after=after, limit=5_000):
        after = chunk[-1].position
        for stored in chunk:
            ev = stored.event
            if ev.kind in NO_IDENTITY_KINDS:
                continue
            named = identifiers_of(ev.with_changes(trust="server"), config) if ev.is_claim else \
                identifiers_of(ev, config)
            if parsed not in named:
                continue
            positions.add(stored.position)
            pid = graph.anchor_profile(identifiers_of(ev, config))
            if pid is not None:
                pids.add(pid)
    kind, _, value = parsed.partition(":")
    for state in runner.projector.states():
        if any(str(c.get("type")) == kind and str(c.get("value")).lower() == value.lower()
               for c in state.contacts.values()):
            pids.add(state.id)
    states = [s for pid in sorted(pids) if (s := runner.projector.profile(pid)) is not None and s.events]
    return states, positions


def _finish(storage: Storage, runner: ProfileRunner, say: Say, pending: list[dict[str, Any]]) -> None:
    """What follows the destruction of keys, for every erased person at once (idempotent): the projections
    rebuilt from the log, the segment contract tables rewritten, what was derived from the erased profiles
    (segment memberships, model scores, CLV rows, contactability) deleted, the database's copies vacuumed."""
    storage.snapshots.delete(SNAPSHOT_NAME)
    say("rebuilding profiles from the log")
    done = [0]

    def folded(n: int) -> None:
        done[0] += n
        say(f"rebuilding profiles from the log: {done[0]:,} events")

    runner.rebuild(progress=folded)
    say("rewriting the segment tables")
    _refresh_tables(storage, runner)
    say("deleting what was derived from the erased profiles")
    forget_profiles(storage, sorted({str(i) for p in pending for i in p.get("ids", ())}))
    say("vacuuming")
    _checkpoint(storage)


def _subject_ids(storage: Storage, identifiers: list[str]) -> set[str]:
    """The HMAC subject ids of identifiers (they name nobody without the master key)."""
    sealer = getattr(storage.log, "sealer", None)
    if sealer is None:
        return set()
    return {str(sealer.master.subject_id(i)) for i in identifiers}


def _matching(storage: Storage, pending: list[dict[str, Any]], parsed: str) -> dict[str, Any] | None:
    """The pending erasure that ``parsed`` (a normalized identifier or a profile id) names, if any."""
    if not pending:
        return None
    subjects = _subject_ids(storage, [parsed]) if ":" in parsed else set()
    for p in pending:
        if parsed == p["profile_id"] or parsed in p.get("ids", ()) or subjects & set(p.get("subjects", ())):
            return p
    return None


def _load_pending(storage: Storage) -> list[dict[str, Any]]:
    found = storage.snapshots.load(ERASURES_PENDING)
    return list(orjson.loads(found[1])) if found is not None else []


def _save_pending(storage: Storage, pending: list[dict[str, Any]]) -> None:
    storage.snapshots.save(ERASURES_PENDING, 0, orjson.dumps(pending))


def _checkpoint(storage: Storage) -> None:
    """Let what the erasure rewrote leave the engine's files (:meth:`~takt.storage.base.Storage.reclaim`): on
    DuckDB, the WAL moves into the database file (whose free blocks only
    :func:`takt.storage.engines.compact_file` clears); on PostgreSQL, the (UNLOGGED) projection tables are
    rewritten with ``VACUUM FULL`` so that no dead tuple keeps the erased person's rows, then ``CHECKPOINT``."""
    storage.reclaim()


def _refresh_tables(storage: Storage, runner: ProfileRunner) -> None:
    """Rewrite the segment contract tables (``profiles``, ``profile_traits``, …) if the workspace has them:
    they are copies of profile state and would otherwise keep the erased person until the next refresh."""
    if storage.has_table("profile_traits"):
        WorkspaceTables(storage, runner).refresh()

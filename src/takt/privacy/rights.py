"""The data subject's rights: export (GDPR Art. 15/20) and erasure (Art. 17). See ``docs/privacy.md``.

Both take a person by identifier (``email:ann@example.com``, ``user_id:42``, …) or profile id (``p_…``) and a
profile runner (the live server's, or one the CLI builds and catches up). Both are idempotent: exporting
twice gives the same document (but for ``exported_at``), erasing twice erases nothing the second time.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from takt.errors import TaktError, invalid
from takt.events.model import StoredEvent
from takt.identity.identifiers import parse_identifier
from takt.log.base import ErasureResult
from takt.policy.consent import CONSENT
from takt.policy.messages import MESSAGE
from takt.policy.suppression_store import suppress
from takt.profiles.sections import add_sections
from takt.profiles.state import ProfileState
from takt.projections.runner import SNAPSHOT_NAME, ProfileRunner
from takt.projections.tables import WorkspaceTables
from takt.storage.base import Storage

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
    """Everything takt holds about one person, as one JSON document."""
    runner.catch_up()
    state = find_person(runner, identifier)
    if state is None:
        raise TaktError(f"no profile has the identifier {identifier!r}", code="not_found", status=404)
    profile = add_sections(storage, runner.profile_json(state.id, now), now)
    events: list[StoredEvent] = storage.log.get(state.positions) if state.positions else []
    records = [{"position": e.position, **e.event.to_record()} for e in events]
    return {
        "identifier": identifier,
        "profile_id": state.id,
        "exported_at": _iso(now),
        "profile": profile,
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


def erase_person(storage: Storage, runner: ProfileRunner, identifier: str, now: datetime) -> dict[str, Any]:
    """Crypto-shred one person: suppression hashes kept, subject keys destroyed, events turned into tombstones,
    profile and identity state rebuilt without them, projection snapshot replaced."""
    identifier = check_identifier(identifier)
    with runner.lock:
        runner.catch_up()
        state = find_person(runner, identifier)
        if state is None:
            # no profile holds events under it, but sealed events may still name it (an admin's unmerge
            # request, an identifier split off the person): destroy its key all the same
            result = ErasureResult(0, 0)
            if ":" in identifier:
                result = storage.log.erase([], [parse_identifier(identifier, runner.config.identity)])
            return {"identifier": identifier, "profile_id": None, "erased": bool(result.events or result.keys),
                    "events": result.events, "keys": result.keys, "suppressed": 0, "erased_at": _iso(now)}
        suppressed = _suppress_contacts(storage, state, now)
        # derived events (interest shifts, segment entries) name the profile, never the person: tombstone them
        # too, so what was inferred about the person goes with their data
        graph = runner.projector.identity
        ids = {state.id} | {old for old in graph.redirects if graph.current_id(old) == state.id}
        derived = storage.log.mentioning([orjson.dumps(pid).decode() for pid in sorted(ids)])
        cluster = graph.clusters.get(state.id)
        identifiers = sorted(cluster.identifiers) if cluster is not None else []
        result = storage.log.erase(sorted(set(state.positions) | set(derived)), identifiers)
        storage.snapshots.delete(SNAPSHOT_NAME)
        runner.rebuild()
        _refresh_tables(storage, runner)
        _checkpoint(storage)
    return {"identifier": identifier, "profile_id": state.id, "erased": True, "events": result.events,
            "keys": result.keys, "suppressed": suppressed, "erased_at": _iso(now)}


def _checkpoint(storage: Storage) -> None:
    """On DuckDB, move what the erasure rewrote out of the WAL file into the database file (whose free blocks
    only :func:`compact_duckdb` clears). Skipped when other transactions are open; the next checkpoint does it.
    On PostgreSQL, rewrite the (UNLOGGED) projection tables with ``VACUUM FULL`` so that no dead tuple keeps
    the erased person's rows, then ``CHECKPOINT``."""
    if storage.backend == "postgres":
        from takt.storage.pg_projection_tables import vacuum_projection_tables

        with storage._pool.connection() as con:  # type: ignore[attr-defined]
            vacuum_projection_tables(con)
        return
    if storage.backend != "duckdb":
        return
    try:
        storage.con.cursor().execute("CHECKPOINT")  # type: ignore[attr-defined]
    except duckdb.Error:
        pass


def _refresh_tables(storage: Storage, runner: ProfileRunner) -> None:
    """Rewrite the segment contract tables (``profiles``, ``profile_traits``, …) if the workspace has them:
    they are copies of profile state and would otherwise keep the erased person until the next refresh."""
    if storage.backend == "postgres":
        with storage._pool.connection() as con:  # type: ignore[attr-defined]
            row = con.execute("SELECT to_regclass('profile_traits') IS NOT NULL").fetchone()
        present = bool(row and row[0])
    else:
        present = bool(storage.con.cursor().execute(  # type: ignore[attr-defined]
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'profile_traits'").fetchall()[0][0])
    if present:
        WorkspaceTables(storage, runner).refresh()


def compact_duckdb(path: Path) -> None:
    """Rewrite a DuckDB file so that nothing deleted lingers in its free blocks or WAL: the database is copied
    table by table into a fresh file, which then replaces the old one. The file must not be open elsewhere.
    (What the filesystem does with the old file's blocks is outside takt's reach; see docs/privacy.md.)"""
    path = Path(path)
    fresh = path.with_name(path.name + ".compact")
    for leftover in (fresh, Path(str(fresh) + ".wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("CHECKPOINT")
        name = con.execute("SELECT current_database()").fetchall()[0][0]
        con.execute(f"ATTACH '{_quote(str(fresh))}' AS takt_fresh")
        con.execute(f'COPY FROM DATABASE "{name}" TO takt_fresh')
        con.execute("DETACH takt_fresh")
    except BaseException:
        fresh.unlink(missing_ok=True)
        raise
    finally:
        con.close()
    os.replace(fresh, path)
    Path(str(path) + ".wal").unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _quote(s: str) -> str:
    return s.replace("'", "''")

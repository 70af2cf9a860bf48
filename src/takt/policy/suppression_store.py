"""The suppression list: a durable set of keyed contact-point hashes that policy never sends to.

An entry is ``(kind, hash, reason, at, source)``: ``hash`` is :func:`~takt.policy.suppression.contact_point_hash`
of the contact point (HMAC-SHA256 keyed with the workspace's suppression key), never the address itself, so the
list survives what the address does not:

* **merges**: the hash belongs to the address, not to a person; any profile that holds the address is blocked;
* **re-imports**: importing an old CRM list again (even marked customer-given and granted) adds consent events,
  but decide still answers ``suppressed`` for the address, for every purpose the entry covers;
* **erasure**: the privacy engine erases the person and calls :func:`suppress` with reason ``erasure`` for
  each of their contact points first; the entry holds no personal data a reader could reverse without the key.

Where entries come from:

1. **Derived from the log** (a grow-only projection, :func:`sync`): a customer's withdrawal through a one-click
   unsubscribe link (``consent`` event, status ``withdrawn``, evidence method ``unsubscribe_link``, with a
   contact point) → ``unsubscribe``; a ``message`` event with status ``complained`` → ``complaint``; with status
   ``bounced`` → ``hard_bounce`` (record only hard bounces as ``bounced``: soft bounces are the sender's retries).
   The projection's position is kept in the snapshot store; entries are inserted idempotently before the
   position moves, so a crash re-derives the same entries and a replay from 0 adds nothing new. It never
   deletes: an entry whose cause was later erased stays.
2. **Written directly** (:func:`suppress`): ``admin`` entries and ``erasure`` entries. They are committed
   before the call returns and do not depend on any event, so erasing the log cannot remove them.

The suppression key is a workspace secret of its own (table ``suppression_secret``, created on first use by an
insert-if-absent, so processes starting at once agree on it), separate from the link-signing secret so that
rotating one never touches the other.

**Scopes.** What an entry blocks follows from its reason (:data:`SUPPRESSION_SCOPES`): ``unsubscribe`` and
``complaint`` block *marketing* on the contact point (order confirmations and service notices still reach it; a
complaint also starts the marketing cooling-off, from the ``message`` event), ``hard_bounce``, ``erasure`` and
``admin`` block *every* purpose.

**On the request path.** A request asks for the list as of the position its published profile reflects
(``upto``): while the projection has not moved past what was derived, that costs no query; otherwise one request
derives up to the log's head for all. On a storage one process owns (DuckDB) the list is also held in memory
after its first read (every entry is added through this process), so a lookup reads no table.

Both backends keep the list in the table ``suppression_list`` (primary key ``(hash, reason)``: one entry per
contact point and reason, the first one kept).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from takt.errors import TaktError, invalid
from takt.events.model import Event, StoredEvent
from takt.policy.consent import (
    CONSENT,
    CONSENT_UPDATED,
    ConsentLedger,
    consent_events_from_track,
    validate_consent,
)
from takt.policy.messages import MESSAGE, validate_message
from takt.policy.person import ContactPoint
from takt.policy.suppression import contact_point_hash
from takt.policy.vocab import CHANNEL_KIND, CHANNELS, CONTACT_KINDS
from takt.services import services_of
from takt.storage.base import Storage

SUPPRESSION_REASONS = ("unsubscribe", "complaint", "hard_bounce", "erasure", "admin")
"""Why an address is on the list."""

SUPPRESSION_SCOPES: dict[str, str] = {"unsubscribe": "marketing", "complaint": "marketing", "hard_bounce": "all",
                                      "erasure": "all", "admin": "all"}
"""What an entry of each reason blocks: ``marketing`` only, or ``all`` purposes."""

POSITION_NAME = "suppression:position"
SYNC_WINDOW = 200_000
"""Log positions scanned per step of :func:`sync` (the events that match are far fewer)."""

DDL = """
CREATE TABLE IF NOT EXISTS suppression_list (
    kind    VARCHAR NOT NULL,
    hash    VARCHAR NOT NULL,
    reason  VARCHAR NOT NULL,
    added_at TIMESTAMPTZ NOT NULL,
    source  VARCHAR NOT NULL,
    PRIMARY KEY (hash, reason)
);
CREATE TABLE IF NOT EXISTS suppression_secret (id INTEGER PRIMARY KEY, secret BLOB NOT NULL)
"""
SCHEMA_LOCK = 0x74616B74_00000051  # "takt" · suppression schema


@dataclass(frozen=True, slots=True)
class SuppressionEntry:
    kind: str
    hash: str
    reason: str
    at: datetime
    source: str

    def __post_init__(self) -> None:
        if self.kind not in CONTACT_KINDS:
            raise invalid(f"unknown contact point kind {self.kind!r} (expected one of {', '.join(CONTACT_KINDS)})",
                          code="invalid_suppression")
        if self.reason not in SUPPRESSION_REASONS:
            raise invalid(f"unknown suppression reason {self.reason!r} (expected one of "
                          f"{', '.join(SUPPRESSION_REASONS)})", code="invalid_suppression")
        if not isinstance(self.at, datetime) or self.at.tzinfo is None:
            raise invalid("a suppression entry's time must be timezone-aware", code="invalid_suppression")
        if not isinstance(self.source, str) or not self.source.strip():
            raise invalid("a suppression entry needs a source", code="invalid_suppression")

    @property
    def scope(self) -> str:
        """``marketing`` (an unsubscribe or a complaint) or ``all`` (see :data:`SUPPRESSION_SCOPES`)."""
        return SUPPRESSION_SCOPES[self.reason]

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "hash": self.hash, "reason": self.reason, "scope": self.scope,
                "at": self.at.astimezone(UTC).isoformat().replace("+00:00", "Z"), "source": self.source}


def _utc(t: datetime) -> datetime:
    return t.astimezone(UTC) if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _entry(row: Sequence[Any]) -> SuppressionEntry:
    return SuppressionEntry(str(row[0]), str(row[1]), str(row[2]), _utc(row[3]), str(row[4]))


_COLS = "kind, hash, reason, added_at, source"


class SuppressionList:
    """The ``suppression_list`` table of one storage (DuckDB or PostgreSQL)."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self.synced = 0
        """The log position :func:`sync` derived entries up to, as this process knows it (the durable one is in
        the snapshot store): a request that needs the list as of an earlier position reads no log."""
        self._memory: dict[str, dict[str, SuppressionEntry]] | None = None
        self._memory_lock = threading.Lock()
        with storage.session(transaction=True) as s:
            s.lock(SCHEMA_LOCK)
            s.script(DDL)

    def _held(self) -> dict[str, dict[str, SuppressionEntry]] | None:
        """On a storage one process owns (DuckDB's file) every entry goes through this object, so the list is
        read once and then kept in memory (entries only grow); elsewhere ``None``: other processes add entries,
        so every lookup reads the table."""
        if not self.storage.single_owner:
            return None
        with self._memory_lock:
            if self._memory is None:
                memory: dict[str, dict[str, SuppressionEntry]] = {}
                for row in self._query(f"SELECT {_COLS} FROM suppression_list", []):
                    e = _entry(row)
                    memory.setdefault(e.hash, {}).setdefault(e.reason, e)
                self._memory = memory
            return self._memory

    def _remember(self, entries: Iterable[SuppressionEntry]) -> None:
        with self._memory_lock:
            if self._memory is not None:  # not read yet: it will be read with these
                for e in entries:
                    self._memory.setdefault(e.hash, {}).setdefault(e.reason, e)

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self.storage.session() as s:
            return s.execute(sql, params)

    def add(self, entries: Iterable[SuppressionEntry]) -> int:
        """Insert the entries not there yet (same hash and reason: the first one stays), in one transaction;
        returns how many were new."""
        unique = list({(e.hash, e.reason): e for e in entries}.values())
        if not unique:
            return 0
        added: list[SuppressionEntry] = []
        with self.storage.session(transaction=True) as s:
            for e in unique:
                if s.execute(f"INSERT INTO suppression_list ({_COLS}) VALUES (?, ?, ?, ?, ?) "
                             "ON CONFLICT (hash, reason) DO NOTHING RETURNING 1",
                             (e.kind, e.hash, e.reason, e.at, e.source)):
                    added.append(e)
        self._remember(added)
        return len(added)

    def lookup(self, hashes: Iterable[str]) -> list[SuppressionEntry]:
        """Every entry for these hashes, oldest first."""
        wanted = sorted(set(hashes))
        if not wanted:
            return []
        memory = self._held()
        if memory is not None:
            held = [e for h in wanted for e in memory.get(h, {}).values()]
            return sorted(held, key=lambda e: (e.at, e.hash, e.reason))
        out: list[SuppressionEntry] = []
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            marks = ", ".join(["?"] * len(chunk))
            out.extend(_entry(r) for r in self._query(
                f"SELECT {_COLS} FROM suppression_list WHERE hash IN ({marks})", chunk))
        return sorted(out, key=lambda e: (e.at, e.hash, e.reason))

    def entries(self, limit: int = 100, after: str | None = None, kind: str | None = None,
                reason: str | None = None) -> list[SuppressionEntry]:
        """A page of entries in hash order (``after``: the last hash of the previous page)."""
        where, params = ["1 = 1"], []
        if after:
            where.append("hash > ?")
            params.append(after)
        if kind:
            where.append("kind = ?")
            params.append(kind)
        if reason:
            where.append("reason = ?")
            params.append(reason)
        rows = self._query(f"SELECT {_COLS} FROM suppression_list WHERE {' AND '.join(where)} "
                           f"ORDER BY hash, reason LIMIT ?", [*params, int(limit)])
        return [_entry(r) for r in rows]

    def count(self, reason: str | None = None) -> int:
        """How many entries there are (of one reason)."""
        if reason is None:
            return int(self._query("SELECT count(*) FROM suppression_list", [])[0][0])
        return int(self._query("SELECT count(*) FROM suppression_list WHERE reason = ?", [reason])[0][0])

    def secret(self) -> bytes:
        """The key the hashes are made with: created once (the first insert wins), then only read."""
        candidate = secrets.token_bytes(32)
        with self.storage.session() as s:
            s.execute("INSERT INTO suppression_secret VALUES (1, ?) ON CONFLICT DO NOTHING", [candidate])
            rows = s.execute("SELECT secret FROM suppression_secret WHERE id = 1")
        return bytes(rows[0][0])


def suppression_list(storage: Storage) -> SuppressionList:
    """The storage's suppression list (its table is created on first use): ``services_of(storage).suppression``."""
    return services_of(storage).suppression


def suppression_key(storage: Storage) -> bytes:
    """The workspace's suppression key, created on first use. It never changes, so it is read once per
    storage (``services_of(storage).suppression_key``); creation is insert-if-absent, so processes starting at
    once agree on one key."""
    return services_of(storage).suppression_key


def _check_value(kind: str, value: str) -> None:
    if kind not in CONTACT_KINDS:
        raise invalid(f"unknown contact point kind {kind!r} (expected one of {', '.join(CONTACT_KINDS)})",
                      code="invalid_suppression", errors=[{"field": "kind", "reason": "unknown kind"}])
    if not isinstance(value, str) or not value.strip():
        raise invalid("the contact point value must be a non-empty string", code="invalid_suppression",
                      errors=[{"field": "value", "reason": "a non-empty string is required"}])


def suppress(storage: Storage, kind: str, value: str, reason: str, at: datetime,
             source: str = "takt") -> SuppressionEntry:
    """Put a contact point on the suppression list (committed before it returns; idempotent per reason).

    For the privacy engine: call it with reason ``erasure`` for each contact point of a person before erasing
    them; the list keeps only the keyed hash."""
    _check_value(kind, value)
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise invalid("a suppression entry's time must be timezone-aware", code="invalid_suppression")
    entry = SuppressionEntry(kind, contact_point_hash(suppression_key(storage), kind, value), reason, _utc(at),
                             source)
    store = suppression_list(storage)
    store.add([entry])
    return entry


def check(storage: Storage, kind: str, value: str) -> list[SuppressionEntry]:
    """The entries for one contact point (empty when it is not suppressed). Derives pending entries first."""
    _check_value(kind, value)
    sync(storage)
    return suppression_list(storage).lookup([contact_point_hash(suppression_key(storage), kind, value)])


def entries_from_event(stored: StoredEvent | Event, key: bytes) -> list[SuppressionEntry]:
    """The suppression entries an event stands for (none for most events; invalid ones are skipped: the
    consent and message folds report them)."""
    e = stored.event if isinstance(stored, StoredEvent) else stored
    out: list[SuppressionEntry] = []
    try:
        if e.kind == CONSENT or (e.kind == "track" and e.event == CONSENT_UPDATED):
            changes = [validate_consent(e.properties)] if e.kind == CONSENT else \
                [validate_consent(c.properties) for c in consent_events_from_track(e)]
            for props in changes:
                kind = CHANNEL_KIND.get(props.get("channel") or "")
                if props["status"] == "withdrawn" and kind is not None and "contact_point" in props \
                        and props.get("evidence", {}).get("method") == "unsubscribe_link":
                    out.append(SuppressionEntry(kind, contact_point_hash(key, kind, props["contact_point"]),
                                                "unsubscribe", _utc(e.timestamp), e.source))
        elif e.kind == MESSAGE:
            props = validate_message(e.properties)
            kind = CHANNEL_KIND[props["channel"]]
            reason = {"complained": "complaint", "bounced": "hard_bounce"}.get(props["status"])
            if reason is not None and kind is not None and "contact_point" in props:
                out.append(SuppressionEntry(kind, contact_point_hash(key, kind, props["contact_point"]), reason,
                                            _utc(e.timestamp), e.source))
    except TaktError:
        return []
    return out


def sync(storage: Storage, progress: Callable[[int, int], None] | None = None, upto: int | None = None) -> int:
    """Derive entries from the log up to its head (see the module doc); returns how many were new.
    ``progress(position, head)`` is called after every batch. With ``upto`` (a position the caller's view of the
    log reflects, e.g. the published profiles'), nothing is read when entries are derived up to it already: a
    request path then costs no query while the projection has not moved."""
    store = suppression_list(storage)
    if upto is not None and store.synced >= upto:
        return 0
    key = suppression_key(storage)
    with services_of(storage).suppression_sync:
        if upto is not None and store.synced >= upto:  # another request derived them meanwhile
            return 0
        found = storage.snapshots.load(POSITION_NAME)
        position = found[0] if found is not None else 0
        store.synced = max(store.synced, position)
        new = 0
        head = storage.log.head()
        while position < head:
            # only the kinds that can suppress are read and decoded (the filter runs on the stored columns)
            step = min(head, position + SYNC_WINDOW)
            batch = storage.log.read_matching(position, step, kinds=(CONSENT, MESSAGE), events=(CONSENT_UPDATED,))
            entries = [entry for stored in batch for entry in entries_from_event(stored, key)]
            new += store.add(entries)
            position = step
            storage.snapshots.save(POSITION_NAME, position, b"")
            store.synced = max(store.synced, position)
            if progress is not None:
                progress(position, head)
        store.synced = max(store.synced, head)
        return new


def in_memory(storage: Storage, upto: int) -> bool:
    """Whether :func:`suppression_entries` with ``upto`` would answer without a query (derived that far, the
    list held in memory): a caller on an event loop may then call it inline instead of in a worker thread."""
    store = suppression_list(storage)
    return store.synced >= upto and store._memory is not None


def suppressed_hashes(storage: Storage, points: Iterable[ContactPoint]) -> frozenset[str]:
    """The hashes of these contact points that are on the list for any purpose (after deriving pending
    entries). Policy needs the scopes too: see :func:`suppression_entries`."""
    points = list(points)
    if not points:
        return frozenset()
    sync(storage)
    key = suppression_key(storage)
    return frozenset(e.hash for e in suppression_list(storage).lookup(
        contact_point_hash(key, cp.kind, cp.value) for cp in points))


def suppression_entries(storage: Storage, points: Iterable[ContactPoint], upto: int | None = None
                        ) -> list[tuple[ContactPoint, SuppressionEntry]]:
    """The entries for these contact points, each with its contact point (after deriving pending entries, up to
    the log's head, or with ``upto`` at least to that position: see :func:`sync`): the lookup
    :func:`~takt.policy.from_profile.person_from_profile` takes, so it can apply :func:`lifted`."""
    points = list(points)
    if not points:
        return []
    sync(storage, upto=upto)
    key = suppression_key(storage)
    by_hash = {contact_point_hash(key, cp.kind, cp.value): cp for cp in points}
    return [(by_hash[e.hash], e) for e in suppression_list(storage).lookup(by_hash)]


def lifted(entry: SuppressionEntry, point: ContactPoint, ledger: ConsentLedger) -> bool:
    """Whether the customer lifted an ``unsubscribe`` entry: after it, they themselves granted marketing on a
    channel of that contact point again, confirmed by double opt-in (e.g. subscribed again through the
    newsletter form). Imports, admins, merges and third parties cannot do this (the ledger applies their grants
    only where nothing is withdrawn, and never as the customer); complaints, bounces, erasure and admin entries
    are never lifted."""
    if entry.reason != "unsubscribe":
        return False
    for channel in CHANNELS:
        if CHANNEL_KIND[channel] != point.kind:
            continue
        state = ledger.state("marketing", channel, point.value)
        if state.status == "granted" and state.confirmed and state.actor == "customer" and \
                state.since is not None and state.since > entry.at:
            return True
    return False

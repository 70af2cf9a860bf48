"""The offer catalog in the workspace store, with every version kept.

Table ``offer_versions``: one row per version of an offer (``id``, ``version`` from 1, the validated
``definition`` as JSON, ``deleted`` for a tombstone, ``written_at``). Writing an offer whose definition did not change
adds no version; deleting adds a tombstone; the current catalog is each id's newest version unless it is a
tombstone. A whole catalog is written in one transaction (all of it or nothing).

:class:`CatalogCache` keeps the current catalog in memory for the next-best-offer endpoint and re-reads it
when the table changed (checked at most once per ``ttl`` seconds; at once after a write through this
process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from takt.errors import not_found
from takt.models.offers._db import Sql
from takt.models.offers.catalog import Offer, validate_offer
from takt.storage.base import Storage

TABLE = "offer_versions"
DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id          VARCHAR NOT NULL,
    version     BIGINT NOT NULL,
    definition  VARCHAR NOT NULL,
    deleted     BOOLEAN NOT NULL,
    written_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id, version)
)
"""


@dataclass(frozen=True)
class Written:
    id: str
    version: int
    changed: bool

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "changed": self.changed}


def _aware(t: Any) -> datetime:
    if isinstance(t, datetime):
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    raise TypeError(f"not a time: {t!r}")


def _offer(definition: str, version: int, at: Any) -> Offer:
    o = validate_offer(orjson.loads(definition))
    return Offer(**{**{f: getattr(o, f) for f in o.__dataclass_fields__}, "version": int(version),
                    "updated_at": _aware(at)})


class OfferStore:
    def __init__(self, storage: Storage):
        self.sql = Sql(storage)

    def _ensure(self) -> None:
        self.sql.ensure(TABLE, DDL)

    def put(self, offers: Sequence[Offer], now: datetime, *, replace: bool = False) -> list[Written]:
        """Store these offers (a new version for each that changed); with ``replace``, also delete every current
        offer not among them. One transaction."""
        self._ensure()
        out: list[Written] = []
        with self.sql.transaction(lock_table=TABLE) as tx:
            latest = {r[0]: (int(r[1]), r[2], bool(r[3])) for r in tx.execute(
                f"SELECT v.id, v.version, v.definition, v.deleted FROM {TABLE} v JOIN "
                f"(SELECT id, max(version) AS version FROM {TABLE} GROUP BY id) m "
                "ON v.id = m.id AND v.version = m.version")}
            for o in offers:
                definition = orjson.dumps(o.definition(), option=orjson.OPT_SORT_KEYS).decode()
                version, old, deleted = latest.get(o.id, (0, None, True))
                if not deleted and old == definition:
                    out.append(Written(o.id, version, False))
                    continue
                tx.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?)", [o.id, version + 1, definition, False, now])
                out.append(Written(o.id, version + 1, True))
            if replace:
                keep = {o.id for o in offers}
                for oid, (version, old, deleted) in sorted(latest.items()):
                    if not deleted and oid not in keep:
                        tx.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?)", [oid, version + 1, old, True, now])
        return out

    def delete(self, offer_id: str, now: datetime) -> Written:
        self._ensure()
        with self.sql.transaction(lock_table=TABLE) as tx:
            rows = tx.execute(f"SELECT version, definition, deleted FROM {TABLE} WHERE id = ? "
                              "ORDER BY version DESC LIMIT 1", [offer_id])
            if not rows or rows[0][2]:
                raise not_found(f"no offer {offer_id!r}")
            version = int(rows[0][0]) + 1
            tx.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?)", [offer_id, version, rows[0][1], True, now])
        return Written(offer_id, version, True)

    def current(self) -> list[Offer]:
        """Every offer's newest version (tombstones left out), by id."""
        if not self.sql.has_table(TABLE):
            return []
        rows = self.sql.query(
            f"SELECT v.id, v.version, v.definition, v.written_at FROM {TABLE} v JOIN "
            f"(SELECT id, max(version) AS version FROM {TABLE} GROUP BY id) m "
            "ON v.id = m.id AND v.version = m.version WHERE NOT v.deleted ORDER BY v.id")
        return [_offer(d, v, at) for _, v, d, at in rows]

    def get(self, offer_id: str) -> Offer:
        for o in self._rows(offer_id)[:1]:
            if o is not None:
                return o
        raise not_found(f"no offer {offer_id!r}")

    def history(self, offer_id: str) -> list[dict[str, Any]]:
        """Every version of the offer, newest first (``deleted`` marks a tombstone)."""
        if not self.sql.has_table(TABLE):
            raise not_found(f"no offer {offer_id!r}")
        rows = self.sql.query(f"SELECT version, definition, deleted, written_at FROM {TABLE} WHERE id = ? "
                              "ORDER BY version DESC", [offer_id])
        if not rows:
            raise not_found(f"no offer {offer_id!r}")
        return [{"version": int(v), "deleted": bool(dl), "at": _aware(at).isoformat().replace("+00:00", "Z"),
                 "definition": orjson.loads(d)} for v, d, dl, at in rows]

    def _rows(self, offer_id: str) -> list[Offer | None]:
        if not self.sql.has_table(TABLE):
            return []
        rows = self.sql.query(f"SELECT version, definition, deleted, written_at FROM {TABLE} WHERE id = ? "
                              "ORDER BY version DESC LIMIT 1", [offer_id])
        return [None if dl else _offer(d, v, at) for v, d, dl, at in rows]

    def revision(self) -> int:
        """Grows with every write (the number of stored versions)."""
        if not self.sql.has_table(TABLE):
            return 0
        rows = self.sql.query(f"SELECT count(*) FROM {TABLE}")
        return int(rows[0][0]) if rows else 0


class CatalogCache:
    """The current catalog in memory, re-read when the store changed."""

    def __init__(self, store: OfferStore, ttl: float = 1.0):
        self.store = store
        self.ttl = ttl
        self._lock = threading.Lock()
        self._offers: list[Offer] = []
        self._revision = -1
        self._checked = 0.0

    def invalidate(self) -> None:
        with self._lock:
            self._checked = 0.0
            self._revision = -1

    def offers(self) -> list[Offer]:
        now = time.monotonic()
        if now - self._checked < self.ttl and self._revision >= 0:
            return self._offers
        with self._lock:
            if time.monotonic() - self._checked < self.ttl and self._revision >= 0:
                return self._offers
            rev = self.store.revision()
            if rev != self._revision:
                self._offers = self.store.current()
                self._revision = rev
            self._checked = time.monotonic()
            return self._offers

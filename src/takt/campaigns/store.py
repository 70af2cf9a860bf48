"""Stored campaigns: every version of every campaign document, on DuckDB and PostgreSQL.

Each change is a new row of ``campaign_versions`` (name, version, document JSON, when, by which key, archived);
nothing is overwritten. ``create`` stores version 1 (or, for a name that was archived, the next version),
``update`` the next version (an unchanged document stores nothing), ``delete`` an archiving version that keeps
the history for the record (what was sent refers to a campaign version). ``get`` reads the newest version or a
given one. The documents are checked before they get here (:func:`takt.campaigns.document.parse_document`);
campaign documents are not personal data.

The rules live once, in :class:`CampaignStore`; a backend reads and inserts rows. :class:`SqlCampaignStore`
does so through ``storage.session()``, which runs on every engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from takt.campaigns.document import parse_document
from takt.campaigns.model import Campaign
from takt.errors import TaktError, not_found
from takt.segments.errors import did_you_mean
from takt.storage.base import Storage
from takt.storage.session import UniqueViolation

INSERT_LOCK = 0x74616B74_00000014  # "takt" · campaign versions written one at a time
SCHEMA_LOCK = 0x74616B74_00000002  # "takt" · 2: the same key as the storage's own schema creation

DDL = """
CREATE TABLE IF NOT EXISTS campaign_versions (
    name        VARCHAR NOT NULL,
    version     INTEGER NOT NULL,
    document    VARCHAR NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  VARCHAR,
    archived    BOOLEAN NOT NULL,
    PRIMARY KEY (name, version)
)
"""
_COLUMNS = "name, version, document, created_at, created_by, archived"


@dataclass(frozen=True)
class CampaignVersion:
    name: str
    version: int
    document: Mapping[str, Any]
    created_at: datetime
    created_by: str | None
    archived: bool = False

    def campaign(self) -> Campaign:
        """The campaign of this version (its document parsed; it was checked when stored)."""
        return parse_document(self.document, version=self.version)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "document": dict(self.document),
                "created_at": self.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "created_by": self.created_by, "archived": self.archived}


class CampaignConflict(TaktError):
    def __init__(self, message: str, code: str = "conflict"):
        super().__init__(message=message, code=code, status=409)


class CampaignStore(ABC):
    """Campaigns with versions. Subclasses store rows; the rules are here."""

    @abstractmethod
    def _rows(self, name: str | None = None) -> list[CampaignVersion]:
        """Every stored version (of one name, or of all), ordered by name and version."""

    @abstractmethod
    def _insert(self, row: CampaignVersion) -> None:
        """Insert one version; raise :class:`CampaignConflict` when (name, version) already exists."""

    # ---- reads
    def versions(self, name: str) -> list[CampaignVersion]:
        """The history of a campaign, oldest first (archiving versions included); 404 when it never existed."""
        rows = self._rows(name)
        if not rows:
            raise self._missing(name)
        return rows

    def get(self, name: str, version: int | None = None) -> CampaignVersion:
        """The newest version of a live campaign, or version ``version`` of any campaign (also archived)."""
        rows = self._rows(name)
        if not rows:
            raise self._missing(name)
        if version is not None:
            for r in rows:
                if r.version == version:
                    return r
            raise not_found(f"campaign {name!r} has no version {version} (its versions: 1 to {rows[-1].version})")
        if rows[-1].archived:
            raise not_found(f"campaign {name!r} was deleted (archived at version {rows[-1].version}; its history: "
                            f"/v1/campaigns/{name}/versions)")
        return rows[-1]

    def list(self) -> list[CampaignVersion]:
        """The newest version of every campaign that is not archived, by name."""
        latest: dict[str, CampaignVersion] = {}
        for r in self._rows():
            latest[r.name] = r
        return [r for _, r in sorted(latest.items()) if not r.archived]

    # ---- writes
    def create(self, campaign: Campaign, *, now: datetime, by: str | None = None) -> CampaignVersion:
        history = self._rows(campaign.name)
        if history and not history[-1].archived:
            raise CampaignConflict(f"campaign {campaign.name!r} already exists (version {history[-1].version}); "
                                   "change it with PUT /v1/campaigns/{name} or `takt campaign update`",
                                   code="campaign_exists")
        version = history[-1].version + 1 if history else 1
        row = CampaignVersion(campaign.name, version, dict(campaign.document), now, by)
        self._insert(row)
        return row

    def update(self, campaign: Campaign, *, now: datetime, by: str | None = None) -> CampaignVersion:
        """A new version with ``campaign``'s document (the current one when the document is unchanged)."""
        old = self.get(campaign.name)
        if _canonical(old.document) == _canonical(campaign.document):
            return old
        row = CampaignVersion(campaign.name, old.version + 1, dict(campaign.document), now, by)
        self._insert(row)
        return row

    def delete(self, name: str, *, now: datetime, by: str | None = None) -> CampaignVersion:
        """Archive a campaign: a last version marked archived (its document unchanged); the history stays."""
        old = self.get(name)
        row = CampaignVersion(name, old.version + 1, old.document, now, by, archived=True)
        self._insert(row)
        return row

    def _missing(self, name: str) -> TaktError:
        hint = did_you_mean(name, [r.name for r in self.list()])
        return not_found(f"no campaign {name!r}" + (f"; {hint}" if hint else ""))


def _canonical(document: Mapping[str, Any]) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def _row(r: Iterable[Any]) -> CampaignVersion:
    name, version, document, created_at, created_by, archived = r
    at = created_at if created_at.tzinfo is not None else created_at.replace(tzinfo=UTC)
    return CampaignVersion(str(name), int(version), orjson.loads(document), at.astimezone(UTC), created_by,
                           bool(archived))


class SqlCampaignStore(CampaignStore):
    """Campaign versions in the workspace's database (one ``campaign_versions`` table, any engine)."""

    def __init__(self, storage: Storage):
        self.storage = storage
        with storage.session(transaction=True) as s:
            s.lock(SCHEMA_LOCK)
            s.script(DDL)

    def _rows(self, name: str | None = None) -> list[CampaignVersion]:
        with self.storage.session() as s:
            if name is None:
                rows = s.execute(f"SELECT {_COLUMNS} FROM campaign_versions ORDER BY name, version")
            else:
                rows = s.execute(f"SELECT {_COLUMNS} FROM campaign_versions WHERE name = ? ORDER BY version", [name])
        return [_row(r) for r in rows]

    def _insert(self, row: CampaignVersion) -> None:
        try:
            with self.storage.session(transaction=True) as s:
                s.lock(INSERT_LOCK)
                s.execute("INSERT INTO campaign_versions VALUES (?, ?, ?, ?, ?, ?)",
                          [row.name, row.version, orjson.dumps(row.document).decode(), row.created_at,
                           row.created_by, row.archived])
        except UniqueViolation:
            raise CampaignConflict(f"campaign {row.name!r} was changed at the same time; retry",
                                   code="concurrent_change") from None


def campaign_store(storage: Storage) -> SqlCampaignStore:
    """The storage's campaign store (its table is created on first use)."""
    from takt.services import services_of

    return services_of(storage).store("campaigns.store", SqlCampaignStore)

"""Stored segments: named definitions with a version history, on DuckDB and PostgreSQL.

Every change is a new row in ``segment_versions`` (name, version, definition text, JSON form, when, by which
key, deleted flag); nothing is overwritten, so the history of a segment is its rows in version order and the
current definition is the newest row that is not a deletion. The rules live once, in :class:`SegmentStore`:

* a name is 1 to 64 letters, digits, ``_``, ``-`` or ``.``, starting with a letter or digit;
* a definition (text or JSON form) is parsed and checked before it is stored: a typo is a positioned
  :class:`~takt.segments.SegmentError` with "did you mean" (400), references to other segments must name
  stored segments and must not make a cycle;
* a segment another segment refers to cannot be deleted (409) until the reference is gone;
* updating with the same definition stores nothing (the current version is returned).

Two writers racing on one name both read version *n* and try to insert *n + 1*; the primary key lets exactly
one win and the other gets a 409 to retry. The backends only read and insert rows (:meth:`_rows`,
:meth:`_insert`); the table is created on first use through the storage's own connection.

Membership *history* is not stored here: it is the ``segment_entered`` / ``segment_exited`` events live
membership appends to the log (:func:`membership_history` reads them back).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from takt.errors import TaktError, invalid, not_found
from takt.segments import ast as a
from takt.segments.json_form import from_json, to_json
from takt.segments.parser import parse
from takt.segments.printer import to_text
from takt.segments.resolve import check_references
from takt.segments.vocabulary import Vocabulary
from takt.services import services_of
from takt.storage.base import Storage
from takt.storage.session import UniqueViolation

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_DEFINITION = 20_000
"""Characters of definition text (and of the JSON form's serialization)."""

ENTERED = "segment_entered"
EXITED = "segment_exited"
"""Event kinds live membership appends to the log (properties: profile_id, segment, version, at)."""

INSERT_LOCK = 0x74616B74_00000053  # "takt" · segment versions written one at a time
SCHEMA_LOCK = 0x74616B74_00000002  # "takt" · 2: the same key as the storage's own schema creation

DDL = """
CREATE TABLE IF NOT EXISTS segment_versions (
    name        VARCHAR NOT NULL,
    version     INTEGER NOT NULL,
    definition  VARCHAR NOT NULL,
    json_form   VARCHAR NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  VARCHAR,
    deleted     BOOLEAN NOT NULL,
    PRIMARY KEY (name, version)
)
"""

_COLUMNS = "name, version, definition, json_form, created_at, created_by, deleted"


@dataclass(frozen=True)
class SegmentVersion:
    name: str
    version: int
    definition: str
    """The definition text (for a definition given as JSON: its canonical text)."""
    json_form: dict[str, Any]
    created_at: datetime
    created_by: str | None
    deleted: bool = False

    @property
    def tree(self) -> a.Condition:
        return from_json(self.json_form)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "definition": self.definition,
            "json": self.json_form,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "created_by": self.created_by,
            "deleted": self.deleted,
        }


def _row(r: Iterable[Any]) -> SegmentVersion:
    name, version, definition, json_form, created_at, created_by, deleted = r
    return SegmentVersion(str(name), int(version), str(definition), orjson.loads(json_form), created_at,
                          created_by, bool(deleted))


class SegmentConflict(TaktError):
    def __init__(self, message: str, code: str = "conflict"):
        super().__init__(message=message, code=code, status=409)


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = repr(name)[:80]
        raise invalid(
            f"invalid segment name {shown}: use 1 to 64 letters, digits, '_', '-' or '.', starting with a letter "
            "or digit (e.g. 'vip-customers')", code="invalid_segment_name",
            errors=[{"field": "name", "reason": "1-64 of A-Z a-z 0-9 _ - ., starting with a letter or digit"}])
    return name


def references(node: a.Condition) -> set[str]:
    """The segment names ``node`` refers to directly."""
    if isinstance(node, a.InSegment):
        return {node.name}
    if isinstance(node, a.And | a.Or):
        return set().union(*(references(i) for i in node.items))
    if isinstance(node, a.Not):
        return references(node.item)
    return set()


class SegmentStore(ABC):
    """Named segments with versions. Subclasses store rows; the rules are here."""

    # ---- what a backend provides
    @abstractmethod
    def _rows(self, name: str | None = None) -> list[SegmentVersion]:
        """Every stored version (of one name, or of all), ordered by name and version."""

    @abstractmethod
    def _insert(self, row: SegmentVersion) -> None:
        """Insert one version; raise :class:`SegmentConflict` when (name, version) already exists."""

    # ---- reads
    def versions(self, name: str) -> list[SegmentVersion]:
        """The history of a segment, oldest first (deletions included); 404 when it never existed."""
        rows = self._rows(check_name(name))
        if not rows:
            raise self._missing(name)
        return rows

    def get(self, name: str) -> SegmentVersion:
        """The current version of a segment (404 when it does not exist or was deleted)."""
        rows = self._rows(check_name(name))
        if not rows or rows[-1].deleted:
            raise self._missing(name, deleted=bool(rows))
        return rows[-1]

    def list(self) -> list[SegmentVersion]:
        """The current version of every segment that is not deleted, by name."""
        latest: dict[str, SegmentVersion] = {}
        for r in self._rows():
            latest[r.name] = r
        return [r for _, r in sorted(latest.items()) if not r.deleted]

    def lookup(self) -> dict[str, a.Condition]:
        """Name → tree of every current segment: the ``segments=`` argument of compile and evaluate."""
        return {r.name: r.tree for r in self.list()}

    # ---- writes
    def create(self, name: str, *, text: str | None = None, json_form: Any = None, now: datetime,
               by: str | None = None, vocabulary: Vocabulary | None = None) -> SegmentVersion:
        check_name(name)
        current = {r.name: r for r in self.list()}
        if name in current:
            raise SegmentConflict(f"segment {name!r} already exists (version {current[name].version}); "
                                  "update it with PUT /v1/segments/{name} or `takt segment update`",
                                  code="segment_exists")
        tree, definition = self._definition(name, text, json_form, current, vocabulary)
        history = self._rows(name)
        version = history[-1].version + 1 if history else 1
        row = SegmentVersion(name, version, definition, to_json(tree), now, by)
        self._insert(row)
        return row

    def update(self, name: str, *, text: str | None = None, json_form: Any = None, now: datetime,
               by: str | None = None, vocabulary: Vocabulary | None = None) -> SegmentVersion:
        old = self.get(name)
        current = {r.name: r for r in self.list()}
        tree, definition = self._definition(name, text, json_form, current, vocabulary)
        if to_json(tree) == old.json_form and definition == old.definition:
            return old
        row = SegmentVersion(name, old.version + 1, definition, to_json(tree), now, by)
        self._insert(row)
        return row

    def delete(self, name: str, *, now: datetime, by: str | None = None) -> SegmentVersion:
        old = self.get(name)
        users = sorted(r.name for r in self.list() if r.name != name and name in references(r.tree))
        if users:
            raise SegmentConflict(
                f"segment {name!r} is used by {', '.join(repr(u) for u in users)}; change or delete "
                f"{'that segment' if len(users) == 1 else 'those segments'} first", code="segment_in_use")
        row = SegmentVersion(name, old.version + 1, old.definition, old.json_form, now, by, deleted=True)
        self._insert(row)
        return row

    # ---- helpers
    def _missing(self, name: str, deleted: bool = False) -> TaktError:
        from takt.segments.errors import did_you_mean

        if deleted:
            return not_found(f"segment {name!r} was deleted (its history: /v1/segments/{name}/versions)")
        hint = did_you_mean(name, [r.name for r in self.list()])
        return not_found(f"no segment {name!r}" + (f"; {hint}" if hint else ""))

    def _definition(self, name: str, text: Any, json_form: Any, current: dict[str, SegmentVersion],
                    vocabulary: Vocabulary | None) -> tuple[a.Condition, str]:
        if (text is None) == (json_form is None):
            raise invalid("give the definition either as text (definition) or as its JSON form (json), not both",
                          code="invalid_segment",
                          errors=[{"field": "definition", "reason": "exactly one of definition, json"}])
        names = frozenset(current) | {name}
        vocab = Vocabulary(**{**_fields(vocabulary), "segments": names})
        if text is not None:
            if not isinstance(text, str) or not text.strip():
                raise invalid("definition must be a non-empty string", code="invalid_segment",
                              errors=[{"field": "definition", "reason": "a non-empty string is required"}])
            if len(text) > MAX_DEFINITION:
                raise invalid(f"definition is longer than {MAX_DEFINITION} characters", code="invalid_segment",
                              errors=[{"field": "definition", "reason": "too long"}])
            tree = parse(text, vocabulary=vocab)
            definition = text.strip()
        else:
            if len(orjson.dumps(json_form)) > MAX_DEFINITION * 2:
                raise invalid("the JSON form is too large", code="invalid_segment",
                              errors=[{"field": "json", "reason": "too large"}])
            tree = from_json(json_form, vocabulary=vocab)
            definition = to_text(tree)
        check_references(name, tree, {n: r.tree for n, r in current.items()})
        return tree, definition


def _fields(v: Vocabulary | None) -> dict[str, Any]:
    if v is None:
        return {}
    return {f: getattr(v, f) for f in Vocabulary.__dataclass_fields__}


class SqlSegmentStore(SegmentStore):
    """Segment versions in the workspace's database (one ``segment_versions`` table, any engine)."""

    def __init__(self, storage: Storage):
        self.storage = storage
        with storage.session(transaction=True) as s:
            s.lock(SCHEMA_LOCK)
            s.script(DDL)

    def _rows(self, name: str | None = None) -> list[SegmentVersion]:
        with self.storage.session() as s:
            if name is None:
                rows = s.execute(f"SELECT {_COLUMNS} FROM segment_versions ORDER BY name, version")
            else:
                rows = s.execute(f"SELECT {_COLUMNS} FROM segment_versions WHERE name = ? ORDER BY version", [name])
        return [_row(r) for r in rows]

    def _insert(self, row: SegmentVersion) -> None:
        try:
            with self.storage.session(transaction=True) as s:
                s.lock(INSERT_LOCK)  # writers in turn: the second of two same versions meets the key, not a conflict
                s.execute("INSERT INTO segment_versions VALUES (?, ?, ?, ?, ?, ?, ?)",
                          [row.name, row.version, row.definition, orjson.dumps(row.json_form).decode(),
                           row.created_at, row.created_by, row.deleted])
        except UniqueViolation:
            raise SegmentConflict(f"segment {row.name!r} was changed at the same time; retry",
                                  code="concurrent_change") from None


def segment_store(storage: Storage) -> SegmentStore:
    """The segment store of a storage (its table is created on first use): ``services_of(storage).segments``."""
    return services_of(storage).segments


# ---- membership history (read from the log)
@dataclass(frozen=True)
class MembershipChange:
    position: int
    kind: str
    """``entered`` or ``exited``."""
    segment: str
    version: int | None
    at: str

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "change": self.kind, "segment": self.segment, "version": self.version,
                "at": self.at}


def membership_history(storage: Storage, profile_id: str) -> list[MembershipChange]:
    """The ``segment_entered`` / ``segment_exited`` events about ``profile_id``, in log order. Positions are
    found by kind; the events are read through the log (which may hold properties sealed)."""
    with storage.session() as s:
        positions = [int(r[0]) for r in s.execute(
            "SELECT position FROM events WHERE kind IN ('segment_entered', 'segment_exited') ORDER BY position")]
    out: list[MembershipChange] = []
    for i in range(0, len(positions), 10_000):
        for se in storage.log.get(positions[i:i + 10_000]):
            props = se.event.properties or {}
            if props.get("profile_id") != profile_id or not isinstance(props.get("segment"), str):
                continue
            version = props.get("version")
            at = props.get("at") or se.event.timestamp.isoformat().replace("+00:00", "Z")
            out.append(MembershipChange(se.position, "entered" if se.event.kind == ENTERED else "exited",
                                        props["segment"], version if isinstance(version, int) else None, str(at)))
    return out

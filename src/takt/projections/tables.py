"""Profiles as relational tables: what the segment compiler's SQL reads.

The tables of the segment contract (``docs/segments.md``) — ``profiles``, ``profile_traits``,
``profile_interests``, ``profile_touchpoints``, ``profile_events`` (and ``profile_event_map``) — live in the
workspace's own database (DuckDB file or PostgreSQL) with the log position they reflect. The profile projection
keeps them: each persist of the profile store writes, in the same transaction, the rows of the profiles that
changed and the ``profile_events`` rows of the events folded since (:mod:`takt.projections.facts`). A workspace
of an earlier version, or a projection restored from a snapshot, has them built whole once
(:meth:`takt.projections.runner.ProfileRunner.build_tables`).

:class:`WorkspaceTables` makes them current (persists what the projection holds that is not written yet) and
runs sqlglot queries there (:func:`count_query`, :func:`page_query` wrap a compiled segment). The same facts feed
the live evaluator (:func:`profile_view`, :func:`live_view`), identifying values left out in both
(:mod:`takt.privacy.identifying`). :func:`materialize_duckdb` writes the same layout into another DuckDB
connection (an in-memory one, for another engine).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlglot import exp

from takt.errors import TaktError
from takt.privacy.identifying import Identifying
from takt.profiles.config import ProfileConfig
from takt.profiles.state import ProfileState
from takt.projections.facts import build, epoch, shifted_at, time_of
from takt.segments.dialects import dialect
from takt.segments.view import EventRow, InterestRow, ProfileView, TouchpointRow
from takt.storage import engines


def redacted(rows: Iterable[EventRow], identifying: Identifying) -> tuple[EventRow, ...]:
    """Event rows as ``profile_events`` holds them: without identifying properties."""
    out = []
    for r in rows:
        props = identifying.properties_of(r.properties)
        out.append(r if props is r.properties else replace(r, properties=props))
    return tuple(out)


def profile_view(state: ProfileState, events: Iterable[EventRow], config: ProfileConfig) -> ProfileView:
    """The live evaluator's view of one profile: the same facts as its table rows (identifying traits as a
    marker, identifying event properties left out)."""
    ident = config.identifying
    return ProfileView(
        profile_id=state.id,
        first_seen=time_of(state.stats.get("first_seen")),
        last_seen=time_of(state.stats.get("last_seen")),
        top_interest=state.top_interest,
        interest_shifted_at=shifted_at(state),
        traits={n: (ident.trait_value(n, t["value"]), t["provenance"]) for n, t in state.traits.items()},
        interests=tuple(InterestRow(k, float(sc), epoch(at),
                                    config.half_life_seconds(k) / 86400.0)
                        for k, (sc, at) in state.interests.items()),
        touchpoints={c: TouchpointRow(int(tp["count"]), time_of(tp.get("last_at")))
                     for c, tp in state.touchpoints.items()},
        events=redacted(events, ident),
    )


def materialize_duckdb(con: Any, runner: Any) -> None:
    """Write the projection's tables whole into a :func:`takt.storage.engines.scratch` connection (counts on DuckDB for
    a PostgreSQL workspace, Parquet for Spark), in the workspace layout; events are read through the log."""
    with runner.lock:
        build(runner.projector.states(), runner.storage.log, runner.config, runner.position,
              engines.scratch_writer(con))


class WorkspaceTables:
    """The segment contract tables of one workspace, kept by its profile projection in the workspace's own
    database (DuckDB file or PostgreSQL). :meth:`refresh` makes them current; :meth:`rows` runs a sqlglot query
    in that database's dialect."""

    def __init__(self, storage: Any, runner: Any, computed: Sequence[Any] | None = None):
        self.storage = storage
        self.runner = runner
        self.position = -1
        self._lock = threading.Lock()
        if computed is None:  # a server's live segments know the configured computed traits
            from takt.segments.live import attached

            live = attached(storage)
            computed = list(live.computed) if live is not None else []
        self.computed = list(computed)
        """Computed traits (:mod:`takt.segments.computed`): rows of ``profile_traits`` at the ``now`` asked."""
        self._computed_key: tuple[int, datetime] | None = None

    @property
    def dialect(self) -> str:
        return self.storage.dialect

    def refresh(self, now: datetime | None = None) -> int:
        """Make the tables current (write what the projection folded since its last persist, when this process
        leads it); returns the log position they reflect. With computed traits, ``now`` is the time their windows
        are evaluated at (their rows are rewritten when it or the position changes)."""
        with self._lock:
            position = self._refresh_tables()
            if self.computed and now is not None:
                key: tuple[int, datetime] | None = (position, now)
            elif not self.computed:
                key = (-1, datetime.min)  # none: rows another configuration left are removed once
            else:
                return position
            if self._computed_key != key:
                self._materialize_computed(now or datetime.min)
                self._computed_key = key
            return position

    def _materialize_computed(self, now: datetime) -> None:
        from takt.segments.computed import materialize_computed

        with self.storage.session(transaction=True) as s:
            materialize_computed(_Native(s), self.computed, now=now, dialect_name=s.dialect, workspace_layout=True)

    def _refresh_tables(self) -> int:
        """Persist what the projection has not written yet (callers hold ``_lock``); the tables' position."""
        runner = self.runner
        store = self.storage.profiles
        with runner.lock:
            if runner.is_leader():
                runner.build_tables()  # a no-op unless they lag the store (an interrupted build)
                if store.position() != runner.position or store.tables_position() != runner.position:
                    runner.save()
            position = store.tables_position()
        if position is None:
            raise TaktError("the segment tables are not built yet: the process that projects profiles builds "
                            "them (takt serve, or a takt command on the workspace); try again shortly",
                            code="unavailable", status=503)
        self.position = position
        return int(position)

    def sql(self, query: exp.Expression) -> str:
        """``query`` as SQL text in this database's dialect (for a budgeted run:
        :class:`takt.segments.budget.BudgetedQuery`)."""
        return dialect(self.dialect).sql(query)

    def rows(self, query: exp.Expression) -> list[tuple[Any, ...]]:
        with self.storage.session() as s:
            return s.query(query)


class _Native:
    """A session as the DB-API-like cursor :func:`takt.segments.computed.materialize_computed` writes through
    (statements it renders in the session's dialect)."""

    def __init__(self, session: Any):
        self.session = session

    def execute(self, sql: str) -> None:
        self.session.native(sql)


def event_rows(storage: Any, positions: list[int]) -> list[EventRow]:
    """The live evaluator's rows for events of the log (before :func:`profile_view` leaves out identifying
    properties)."""
    return [EventRow(kind=e.event.kind, ts=e.event.timestamp, event=e.event.event, name=e.event.name,
                     properties=e.event.properties)
            for e in storage.log.get(positions)] if positions else []


def live_view(runner: Any, profile_id: str) -> ProfileView | None:
    """One profile's view for live evaluation (``None`` for an unknown id), read consistently: the state is
    copied under the runner's lock, its events read from the log afterwards."""
    with runner.lock:
        state = runner.projector.profile(profile_id)
        if state is None:
            return None
        base = profile_view(state, (), runner.config)
        positions = list(state.positions)
    return replace(base, events=redacted(event_rows(runner.storage, positions), runner.config.identifying))


# ---- queries around a compiled segment (sqlglot trees, never glued strings)
def count_query(members: exp.Select) -> exp.Select:
    """``SELECT count(*)`` over a compiled segment query."""
    return exp.select(exp.Count(this=exp.Star())).from_(members.subquery("m"))


def page_query(members: exp.Select, after: str | None = None, limit: int | None = None) -> exp.Select:
    """The members' ids in ``profile_id`` order, those after ``after``, at most ``limit`` of them."""
    pid = exp.column("profile_id", "m")
    q = exp.select(pid).from_(members.subquery("m"))
    if after is not None:
        q = q.where(exp.GT(this=pid.copy(), expression=exp.Literal.string(after)))
    q = q.order_by(pid.copy())
    return q.limit(limit) if limit is not None else q


def workspace_vocabulary(storage: Any, runner: Any, settings: Any = None) -> Any:
    """The names seen in the workspace (traits, track events, interests, touchpoints), the models with scores
    and whether CLV is stored (``settings`` add the declared model targets), for checking definitions and "did
    you mean"; ``None`` while the workspace has no profiles (nothing to check against)."""
    from takt.models.vocabulary import model_vocabulary
    from takt.segments.vocabulary import Vocabulary

    names = _names_from_tables(storage, runner)
    if names is None:
        with runner.lock:
            traits_seen: set[str] = set()
            interests_seen: set[str] = set()
            touchpoints_seen: set[str] = set()
            any_state = False
            for s in runner.projector.states():  # streamed: names only, not every state at once
                any_state = True
                traits_seen.update(s.traits)
                interests_seen.update(s.interests)
                touchpoints_seen.update(s.touchpoints)
        names = (any_state, frozenset(traits_seen), frozenset(interests_seen), frozenset(touchpoints_seen))
    any_state, traits, interests, touchpoints = names
    if not any_state:
        return None
    with storage.session() as s:
        rows = s.execute("SELECT DISTINCT event FROM events WHERE event IS NOT NULL LIMIT 10000")
    return Vocabulary(traits=traits, events=frozenset(str(r[0]) for r in rows), interests=interests,
                      touchpoints=touchpoints, identifying=runner.config.identifying,
                      **model_vocabulary(storage, settings))


_NAMES = ("SELECT 'p', NULL FROM (SELECT 1 FROM profiles LIMIT 1) AS any_profile "
          "UNION ALL SELECT DISTINCT 't', name FROM profile_stored_traits "
          "UNION ALL SELECT DISTINCT 'i', key FROM profile_interests "
          "UNION ALL SELECT DISTINCT 'c', touchpoint FROM profile_touchpoints")


def _names_from_tables(storage: Any, runner: Any
                       ) -> tuple[bool, frozenset[str], frozenset[str], frozenset[str]] | None:
    """(any profile, trait names, interest keys, touchpoints) from the segment tables when they reflect the
    projection's position (one query, no profile state read); else ``None``."""
    store = getattr(storage, "profiles", None)
    if store is None or not store.has_tables or store.tables_position() != runner.position:
        return None
    with storage.session() as s:
        rows = s.execute(_NAMES)
    found: dict[str, set[str]] = {"p": set(), "t": set(), "i": set(), "c": set()}
    for kind, name in rows:
        found[str(kind)].add(str(name))
    if not found["p"]:
        return False, frozenset(), frozenset(), frozenset()
    return True, frozenset(found["t"]), frozenset(found["i"]), frozenset(found["c"])

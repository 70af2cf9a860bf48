"""Identifying values (emails, names, phones, addresses, …; declared once, ``takt.privacy.identifying``) never
reach the queryable segment tables nor the live evaluator's view: an identifying trait is only a marker
("has a value"), identifying event properties are left out. ``trait.email exists`` still works; comparing an
identifying value is an error when the definition is checked, not a silent false."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from takt.clock import FixedClock
from takt.errors import TaktError
from takt.events.model import Event
from takt.privacy.identifying import DEFAULT_TRAITS, Identifying
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.projections.tables import WorkspaceTables, live_view, workspace_vocabulary
from takt.segments import evaluate, parse, to_sql
from takt.storage.base import Storage
from tests.conftest import open_backend

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CANARY = "canary7f3a"
SEGMENT_TABLES = ("profiles", "profile_traits", "profile_interests", "profile_touchpoints", "profile_events",
                  "profile_event_map")


def _events() -> list[Event]:
    out = []
    for i in range(6):
        at = NOW - timedelta(days=i)
        traits = {"country": "DE" if i % 2 else "FR", "loyalty_card": f"card-{CANARY}-{i}"}
        if i < 4:
            traits.update(email=f"{CANARY}{i}@example.test", firstName=f"First{CANARY}", last_name=f"Last{CANARY}",
                          phone=f"+4917{i}000{i}", address={"street": f"{CANARY} Street 1", "city": "Berlin"})
        out.append(Event(kind="identify", message_id=f"id-{i}", source="crm", timestamp=at, received_at=at,
                         provenance="customer_provided", user_id=f"u{i}", traits=traits))
        out.append(Event(kind="track", message_id=f"t-{i}", source="web", timestamp=at, received_at=at,
                         provenance="observed", user_id=f"u{i}", event="Signed Up",
                         properties={"plan": "pro", "email": f"{CANARY}{i}@example.test",
                                     "traits": {"firstName": f"First{CANARY}", "tier": "gold"},
                                     "ip": "203.0.113.7"}))
    return out


CONFIG = ProfileConfig(identifying=Identifying(traits=(*DEFAULT_TRAITS, "loyalty_card")))


def _rows(storage: Storage, sql: str) -> list[tuple[Any, ...]]:
    if storage.backend == "postgres":
        with storage._pool.connection() as con:  # type: ignore[attr-defined]
            return list(con.execute(sql).fetchall())
    return list(storage.con.cursor().execute(sql).fetchall())  # type: ignore[attr-defined]


@pytest.fixture(params=["duckdb", "postgres"])
def projected(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    storage = open_backend(request.param, tmp_path, request)
    storage.log.append(_events())
    runner = ProfileRunner(storage, CONFIG, FixedClock(NOW))
    runner.load()
    runner.catch_up()
    WorkspaceTables(storage, runner, computed=[]).refresh()
    yield storage, runner
    storage.close()


def test_no_identifying_value_in_any_segment_table(projected: Any) -> None:
    storage, _ = projected
    for table in SEGMENT_TABLES:
        for row in _rows(storage, f"SELECT * FROM {table}"):
            text = " ".join(str(v) for v in row)
            assert CANARY not in text, (table, row)
            assert "203.0.113.7" not in text and "+4917" not in text, (table, row)
    traits = dict((str(n), str(v)) for n, v in _rows(storage, "SELECT name, value FROM profile_traits"))
    assert traits["email"] == "true" and traits["first_name" if "first_name" in traits else "firstName"] == "true"
    assert "country" in traits and traits["country"] in ('"DE"', '"FR"'), "other traits stay queryable"
    props = [str(r[0]) for r in _rows(storage, "SELECT properties FROM profile_events WHERE event = 'Signed Up'")]
    assert props and all('"plan":"pro"' in p and '"tier":"gold"' in p for p in props)


def test_exists_and_provenance_still_work_in_sql_and_live(projected: Any) -> None:
    storage, runner = projected
    for definition in ("trait.email exists", "trait.email from customer_provided", "not trait.phone exists",
                       'trait.country = "DE" and trait.loyalty_card exists',
                       'count(track "Signed Up" where properties.plan = "pro") >= 1'):
        node = parse(definition)
        got = {str(r[0]) for r in _rows(storage, to_sql(node, now=NOW, dialect_name=storage.backend
                                                           if storage.backend == "postgres" else "duckdb"))}
        live = {pid for pid in runner.profile_ids()
                if (v := live_view(runner, pid)) is not None and evaluate(node, v, NOW)}
        assert got == live, definition
        assert got, definition
    view = live_view(runner, runner.find("user_id:u0"))
    assert view is not None
    assert view.traits["email"][0] is True
    assert all("email" not in e.properties and "ip" not in e.properties for e in view.events)


@pytest.mark.parametrize("definition, named", [
    ('trait.email = "canary@example.test"', "trait.email"),
    ('trait.email contains "@example"', "trait.email"),
    ('trait.firstName in ["Ann", "Bob"]', "trait.firstName"),
    ('trait.loyalty_card = "x"', "trait.loyalty_card"),
    ('count(track "Signed Up" where properties.email = "x") >= 1', "properties.email"),
    ('count(track "Signed Up" where properties.traits.firstName exists) >= 1', "properties.traits.firstName"),
])
def test_comparing_an_identifying_value_is_a_check_error(projected: Any, definition: str, named: str) -> None:
    storage, runner = projected
    vocab = workspace_vocabulary(storage, runner)
    with pytest.raises(TaktError) as err:
        parse(definition, vocabulary=vocab)
    assert named in str(err.value) and "identifying" in str(err.value)

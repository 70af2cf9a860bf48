"""``contactable(channel, purpose)`` in segments: parses, explains, and gives the same members live (from the
profile) and in SQL (over ``profile_contactability`` in the workspace's store), on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import takt.policy.segment_functions as sf
from takt.clock import FixedClock
from takt.errors import TaktError
from takt.events.model import Event
from takt.policy.config import PolicySettings
from takt.policy.suppression_store import suppress
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.segments.compile import to_sql
from takt.segments.evaluate import evaluate
from takt.segments.explain import explain
from takt.segments.parser import parse
from takt.segments.view import ProfileView
from takt.settings import load
from takt.storage.base import Storage

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # inside quiet hours: they do not count for segments


def _ev(i: int, user: str, kind: str, provenance: str = "customer_provided", source: str = "web",
        **fields: Any) -> Event:
    at = T0 + timedelta(minutes=i)
    return Event(kind=kind, message_id=f"{user}-{i}", source=source, timestamp=at, received_at=at,
                 provenance=provenance, user_id=user, **fields)


def _grant(i: int, user: str, channel: str = "email", method: str = "double_opt_in") -> Event:
    return _ev(i, user, "consent", properties={"purpose": "marketing", "channel": channel, "status": "granted",
                                               "actor": "customer", "evidence": {"method": method}})


def _people() -> list[Event]:
    return [
        # ann: her own address, confirmed grant → contactable for marketing and transactional
        _ev(1, "ann", "identify", traits={"email": "ann@example.com"}), _grant(2, "ann"),
        # bob: his own address, no consent → transactional only
        _ev(3, "bob", "identify", traits={"email": "bob@example.com"}),
        # cem: an address from a data vendor, with a grant → never
        _ev(4, "cem", "identify", provenance="third_party", source="vendor", traits={"email": "cem@example.com"}),
        _grant(5, "cem"),
        # dan: like ann, then suppressed (admin) → never
        _ev(6, "dan", "identify", traits={"email": "dan@example.com"}), _grant(7, "dan"),
        # eve: granted then withdrew → transactional only
        _ev(8, "eve", "identify", traits={"email": "eve@example.com"}), _grant(9, "eve"),
        _ev(10, "eve", "consent", properties={"purpose": "marketing", "channel": "email", "status": "withdrawn",
                                              "actor": "customer"}),
        # fay: single opt-in only → not for email marketing; and a sent message (budget is not standing)
        _ev(11, "fay", "identify", traits={"email": "fay@example.com"}), _grant(12, "fay", method="web_form"),
        # gus: confirmed grant and four marketing messages today → over budget, still contactable
        _ev(13, "gus", "identify", traits={"email": "gus@example.com"}), _grant(14, "gus"),
        *[_ev(20 + k, "gus", "message", properties={"message_id": f"g{k}", "status": "sent", "channel": "email",
                                                     "contact_point": "gus@example.com", "intent": "marketing"})
          for k in range(4)],
    ]


def _sql_members(storage: Storage, sql: str) -> set[str]:
    if storage.backend == "duckdb":
        return {r[0] for r in storage.con.cursor().execute(sql).fetchall()}  # type: ignore[attr-defined]
    with storage._pool.connection() as con:  # type: ignore[attr-defined]
        return {r[0] for r in con.execute(sql).fetchall()}


def _profiles_table(storage: Storage, ids: list[str]) -> None:
    """The one contract table the compiled query starts from (the profile tables themselves are tested
    elsewhere)."""
    if storage.backend == "duckdb":
        cur = storage.con.cursor()  # type: ignore[attr-defined]
        cur.execute("CREATE OR REPLACE TABLE profiles (profile_id VARCHAR)")
        cur.executemany("INSERT INTO profiles VALUES (?)", [(i,) for i in ids])
        return
    with storage._pool.connection() as con, con.transaction():  # type: ignore[attr-defined]
        con.execute("CREATE TABLE IF NOT EXISTS profiles (profile_id TEXT)")
        con.execute("DELETE FROM profiles")
        with con.cursor() as cur:
            cur.executemany("INSERT INTO profiles VALUES (%s)", [(i,) for i in ids])


@pytest.fixture
def runner(storage: Storage) -> Any:
    storage.log.append(_people())
    suppress(storage, "email", "dan@example.com", "admin", T0)
    r = ProfileRunner(storage, ProfileConfig.from_settings(load(None, env={})), FixedClock(NOW))
    r.catch_up()
    sf.attach(storage, r, PolicySettings())
    yield r
    sf.attach(None)


def _names(runner: Any, ids: set[str]) -> set[str]:
    out = set()
    for pid in ids:
        state = runner.projector.profile(pid)
        out.add(next(c["value"] for c in state.contacts.values()).split("@")[0])
    return out


CASES = {
    'contactable("email", "marketing")': {"ann", "gus"},
    'contactable("email", "transactional")': {"ann", "bob", "eve", "fay", "gus"},
    'not contactable("email", "marketing") and contactable("email", "service")': {"bob", "eve", "fay"},
    'contactable("sms", "transactional")': set(),
}


def test_parses_and_explains() -> None:
    node = parse('contactable("email", "marketing")')
    assert explain(node) == "people who can be contacted by email for marketing"
    assert "can be contacted by SMS for service" in explain(parse('not contactable("sms", "service")'))


def test_unknown_channels_and_purposes_are_clear_errors(runner: Any) -> None:
    with pytest.raises(TaktError, match="unknown channel 'fax'"):
        to_sql(parse('contactable("fax", "marketing")'), now=NOW)
    with pytest.raises(TaktError, match="unknown purpose 'spam'"):
        evaluate(parse('contactable("email", "spam")'), ProfileView("p"), NOW)


def test_live_and_sql_give_the_same_members(storage: Storage, runner: Any) -> None:
    ids = list(runner.profile_ids())
    assert len(ids) == 7
    written = sf.refresh(storage, runner, PolicySettings(), NOW)
    assert written == len(sf.table_of(storage).rows()) > 0
    _profiles_table(storage, ids)
    for definition, expected in CASES.items():
        node = parse(definition)
        live = {pid for pid in ids if evaluate(node, ProfileView(pid), NOW)}
        sql = _sql_members(storage, to_sql(node, now=NOW, dialect_name=storage.backend))
        assert _names(runner, live) == expected, definition
        assert sql == live, definition


def test_the_listener_follows_changes(storage: Storage, runner: Any) -> None:
    sf.refresh(storage, runner, PolicySettings(), NOW)
    listener = sf.ContactabilityListener(storage, PolicySettings(), batch=2)
    runner.add_listener(listener)
    node = parse('contactable("email", "marketing")')
    _profiles_table(storage, list(runner.profile_ids()))
    sql = to_sql(node, now=NOW, dialect_name=storage.backend)
    before = _sql_members(storage, sql)
    # ann withdraws: the fold touches her profile, the listener rewrites her rows
    storage.log.append([_ev(90, "ann", "consent", properties={"purpose": "marketing", "channel": "email",
                                                              "status": "withdrawn", "actor": "customer"})])
    runner.catch_up()
    assert _sql_members(storage, sql) == before  # marked, not yet rewritten
    listener.flush(runner, NOW)
    assert not listener.dirty
    after = _sql_members(storage, sql)
    assert _names(runner, before) == {"ann", "gus"} and _names(runner, after) == {"gus"}
    assert after == {pid for pid in runner.profile_ids() if evaluate(node, ProfileView(pid), NOW)}


def test_without_attached_profiles_nobody_is_contactable_live() -> None:
    sf.attach(None)
    assert evaluate(parse('contactable("email", "marketing")'), ProfileView("p_x"), NOW) is False


def test_the_listener_fills_the_table_from_the_first_tick(storage: Storage, runner: Any) -> None:
    listener = sf.ContactabilityListener(storage, PolicySettings(), batch=3)
    _profiles_table(storage, list(runner.profile_ids()))
    sql = to_sql(parse('contactable("email", "transactional")'), now=NOW, dialect_name=storage.backend)
    assert _sql_members(storage, sql) == set()
    listener.on_tick(runner, NOW)
    assert len(listener.dirty) == 4  # 7 profiles, 3 per tick
    listener.flush(runner, NOW)
    assert _names(runner, _sql_members(storage, sql)) == {"ann", "bob", "eve", "fay", "gus"}


def test_a_stored_segment_counts_contactable_people_on_the_server(tmp_path: Any) -> None:
    import base64

    from starlette.testclient import TestClient

    from takt.api.app import create_app
    from takt.storage.duckdb import DuckDBStorage

    storage = DuckDBStorage(tmp_path / "srv.duckdb")
    keys = {}
    for kind, name, prov in (("write", "website", "customer_provided"), ("admin", "admin", None)):
        _, secret = storage.keys.create(kind, name, None, prov, now=NOW)
        keys[name] = secret.reveal()
    write = {"Authorization": "Basic " + base64.b64encode(f"{keys['website']}:".encode()).decode()}
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    try:
        with TestClient(create_app(storage, load(None, env={}), FixedClock(NOW))) as client:
            for user in ("ann", "bob"):
                assert client.post("/v1/identify", headers=write, json={
                    "userId": user, "messageId": f"i-{user}", "traits": {"email": f"{user}@example.com"}}
                ).status_code == 200
            assert client.post("/v1/track", headers=write, json={
                "userId": "ann", "event": "Consent Updated", "messageId": "c-ann",
                "properties": {"purpose": "marketing", "channel": "email", "status": "granted",
                               "evidence": {"method": "double_opt_in"}}}).status_code == 200
            r = client.post("/v1/segments", headers=admin,
                            json={"name": "reachable", "definition": 'contactable("email", "marketing")'})
            assert r.status_code == 201, r.text
            runner = client.app.state.ctx.extras["profiles"]  # type: ignore[attr-defined]
            runner.catch_up()
            (listener,) = [x for x in runner.listeners if isinstance(x, sf.ContactabilityListener)]

            def count() -> int:
                listener.flush(runner, NOW)
                r = client.get("/v1/segments/reachable/count", headers=admin)
                assert r.status_code == 200, r.text
                return int(r.json()["count"])

            assert count() == 1
            # ann withdraws through her preference center: the next count no longer has her
            pid = client.get("/v1/profiles", params={"identifier": "user_id:ann"}, headers=admin).json()["id"]
            url = client.get(f"/v1/profiles/{pid}/preference-link", headers=admin).json()["url"]
            token = url.rsplit("/", 1)[1]
            shown = ["email:marketing", "email:service", "email:personalization", "email:third_party_sharing"]
            assert client.post(f"/p/{token}", data={"token": token, "shown": shown}).status_code == 200
            assert count() == 0
    finally:
        storage.close()


def test_late_arrivals_and_browser_claims_give_the_same_members_in_sql_and_live(storage: Storage,
                                                                                runner: Any) -> None:
    """Issue 12 item 1 and issue 11 in the segment language: hal's withdrawal reached the log before an older
    grant (an app's offline queue); ivy's only grant is a browser's claim. Neither is contactable for
    marketing, live or in SQL."""
    from dataclasses import replace

    storage.log.append([_ev(40, "hal", "identify", traits={"email": "hal@example.com"}),
                        _ev(42, "hal", "consent", properties={"purpose": "marketing", "channel": "email",
                                                              "status": "withdrawn", "actor": "customer"})])
    storage.log.append([_grant(41, "hal")])  # made before the withdrawal, logged after it
    storage.log.append([_ev(43, "ivy", "identify", traits={"email": "ivy@example.com"}),
                        replace(_grant(44, "ivy"), trust="public")])
    runner.catch_up()
    ids = list(runner.profile_ids())
    sf.refresh(storage, runner, PolicySettings(), NOW)
    _profiles_table(storage, ids)
    for definition, expected in {'contactable("email", "marketing")': {"ann", "gus"},
                                 'contactable("email", "transactional")': {"ann", "bob", "eve", "fay", "gus",
                                                                           "hal", "ivy"}}.items():
        node = parse(definition)
        live = {pid for pid in ids if evaluate(node, ProfileView(pid), NOW)}
        sql = _sql_members(storage, to_sql(node, now=NOW, dialect_name=storage.backend))
        assert _names(runner, live) == expected, definition
        assert sql == live, definition

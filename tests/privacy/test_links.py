"""Links in messages: they start with the configured public address (never the request's Host header) and their
tokens carry no personal data, survive a restart, follow the profile as it changes, and die with an erasure."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.api.links import base_url_warning, public_base_url
from takt.clock import FixedClock
from takt.errors import SettingsError
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
EMAIL = "ann.links@example.com"
BASE = "https://mail.shop.example"


class World:
    def __init__(self, path: Path, env: dict[str, str] | None = None):
        self.path = path
        self.env = {"TAKT_SERVER__PUBLIC_BASE_URL": BASE} if env is None else env
        self.storage = DuckDBStorage(path / "t.duckdb")
        self.keys: dict[str, str] = {}
        for kind, prov in (("write", "customer_provided"), ("admin", None)):
            _, secret = self.storage.keys.create(kind, kind, None, prov, now=NOW)
            self.keys[kind] = secret.reveal()

    def client(self) -> TestClient:
        return TestClient(create_app(self.storage, load(None, env=self.env), FixedClock(NOW)))

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys['admin']}"}

    def write(self) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{self.keys['write']}:".encode()).decode()}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.storage.close()


def _seed(client: TestClient, w: World) -> str:
    assert client.post("/v1/identify", headers=w.write(), json={
        "userId": "ann", "messageId": "i1", "traits": {"email": EMAIL, "name": "Ann Links"}}).status_code == 200
    client.app.state.ctx.extras["profiles"].catch_up()  # type: ignore[attr-defined]
    return str(client.get("/v1/profiles", params={"identifier": "user_id:ann"}, headers=w.admin()).json()["id"])


def _unsub_link(client: TestClient, w: World, pid: str, cp: str = EMAIL, **headers: str) -> str:
    r = client.get(f"/v1/profiles/{pid}/unsubscribe-link", params={"channel": "email", "contact_point": cp},
                   headers={**w.admin(), **headers})
    assert r.status_code == 200, r.text
    return str(r.json()["url"])


def _decodings(token: str) -> list[bytes]:
    """Every way a reader might decode a token or a part of it."""
    out = [token.encode()]
    for part in re.split(r"[.~]", token):
        for start in range(0, 4):
            try:
                out.append(base64.urlsafe_b64decode(part[start:] + "=" * (-len(part[start:]) % 4)))
            except ValueError:
                pass
    return out


def test_links_use_the_public_base_url_not_the_host_header(world: World) -> None:
    with world.client() as client:
        pid = _seed(client, world)
        url = _unsub_link(client, world, pid, host="evil.example")
        assert url.startswith(BASE + "/v1/unsubscribe/"), url
        pref = client.get(f"/v1/profiles/{pid}/preference-link", headers={**world.admin(), "host": "evil.example"})
        assert pref.json()["url"].startswith(BASE + "/p/")


def test_without_the_setting_links_point_at_the_local_server_and_serve_warns(tmp_path: Path) -> None:
    settings = load(None, env={"TAKT_SERVER__PORT": "9001"})
    assert public_base_url(settings) == "http://127.0.0.1:9001"
    warning = base_url_warning(settings)
    assert warning is not None and "server.public_base_url" in warning
    assert base_url_warning(load(None, env={"TAKT_SERVER__PUBLIC_BASE_URL": BASE + "/"})) is None
    assert public_base_url(load(None, env={"TAKT_SERVER__PUBLIC_BASE_URL": BASE + "/"})) == BASE
    with pytest.raises(SettingsError):
        load(None, env={"TAKT_SERVER__PUBLIC_BASE_URL": "mail.shop.example"})


def test_tokens_carry_no_personal_data(world: World) -> None:
    with world.client() as client:
        pid = _seed(client, world)
        tokens = [_unsub_link(client, world, pid).rsplit("/", 1)[1],
                  client.get(f"/v1/profiles/{pid}/preference-link", headers=world.admin()).json()["url"]
                  .rsplit("/", 1)[1]]
    for token in tokens:
        for data in _decodings(token):
            for secret in (EMAIL.encode(), b"ann.links", pid.encode(), b"Ann Links"):
                assert secret not in data, (token, data)


def test_a_link_survives_a_restart_and_a_profile_change(world: World) -> None:
    with world.client() as client:
        pid = _seed(client, world)
        path = _unsub_link(client, world, pid).replace(BASE, "")
    with world.client() as client:  # a new server process over the same workspace
        # the person changes: a new trait, and their anonymous visits merged into the profile
        assert client.post("/v1/identify", headers=world.write(), json={
            "userId": "ann", "anonymousId": "anon-1", "traits": {"city": "Bonn"}}).status_code == 200
        page = client.get(path)
        assert page.status_code == 200 and EMAIL in page.text  # found again by its hash among her contact points
        r = client.post(path)
        assert r.status_code == 200, r.text
        assert r.json()["unsubscribed"] == {"channel": "email", "contact_point": EMAIL, "purpose": "marketing"}
        decide = client.post("/v1/decide", headers=world.admin(), json={
            "profile": "user_id:ann", "intent": "marketing", "channels": ["email"]}).json()
        assert "withdrawn" in {x["code"] for x in decide["rejected"]["email"]}


def test_forged_old_format_and_erased_links_are_refused(world: World) -> None:
    with world.client() as client:
        pid = _seed(client, world)
        path = _unsub_link(client, world, pid).replace(BASE, "")
        token = path.rsplit("/", 1)[1]
        altered = token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")
        assert client.post(f"/v1/unsubscribe/{altered}").status_code == 403
        # the earlier, readable format: refused with a clear answer, nothing recorded
        old = base64.urlsafe_b64encode(b'{"ch":"email","cp":"' + EMAIL.encode() + b'","p":"' + pid.encode()
                                       + b'"}').rstrip(b"=").decode() + ".c2ln"
        n = world.storage.log.count()
        r = client.post(f"/v1/unsubscribe/{old}")
        assert r.status_code == 410 and r.json()["code"] == "link_outdated"
        page = client.get(f"/v1/unsubscribe/{old}", headers={"accept": "text/html"})
        assert page.status_code == 410 and "earlier version" in page.text
        assert client.get(f"/p/{old}").status_code in (403, 410)
        assert world.storage.log.count() == n
        # after an erasure the link names nobody
        assert client.post("/v1/privacy/erase", json={"identifier": "user_id:ann"},
                           headers=world.admin()).json()["erased"]
        gone = client.get(path)
        assert gone.status_code == 404 and EMAIL not in gone.text
        assert client.post(path).status_code == 404
        assert world.storage.log.count() == n


def test_a_contact_point_the_profile_no_longer_holds_withdraws_the_whole_channel(world: World) -> None:
    with world.client() as client:
        pid = _seed(client, world)
        path = _unsub_link(client, world, pid, cp="old.address@example.com").replace(BASE, "")
        r = client.post(path)
        assert r.status_code == 200 and r.json()["unsubscribed"]["contact_point"] is None, r.text
        decide: dict[str, Any] = client.post("/v1/decide", headers=world.admin(), json={
            "profile": "user_id:ann", "intent": "marketing", "channels": ["email"]}).json()
        assert decide["allowed"] is False


def test_unset_links_point_where_takt_serve_listens(tmp_path: Path) -> None:
    from takt.api.links import LOCAL_BASE

    w = World(tmp_path, env={})
    try:
        app = create_app(w.storage, load(None, env={}), FixedClock(NOW))
        app.state.ctx.extras[LOCAL_BASE] = "http://127.0.0.1:9555"  # what run_server records (--host/--port)
        with TestClient(app) as client:
            pid = _seed(client, w)
            assert _unsub_link(client, w, pid, host="evil.example").startswith("http://127.0.0.1:9555/v1/unsubscribe/")
    finally:
        w.storage.close()

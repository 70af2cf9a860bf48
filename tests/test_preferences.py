"""The preference center over HTTP: signed expiring links, what the page shows, changes committed as the
customer's consent events before the page confirms, and refusals for forged, altered or expired links."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.api.preferences import issue_token, read_preference_token
from takt.api.unsubscribe import signing_secret
from takt.clock import FixedClock
from takt.errors import TaktError
from takt.ingest.records import ImportOptions, import_file
from takt.settings import load
from takt.storage.base import Storage
from tests.conftest import BACKENDS, open_backend

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


class World:
    def __init__(self, client: TestClient, storage: Storage, keys: dict[str, str], clock: FixedClock):
        self.client, self.storage, self.keys, self.clock = client, storage, keys, clock

    def basic(self, name: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{self.keys[name]}:".encode()).decode()}

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys['admin']}"}

    def send(self, path: str, body: dict[str, Any], key: str = "website") -> None:
        r = self.client.post(path, headers=self.basic(key), json=body)
        assert r.status_code == 200, r.text

    def decide(self, channels: list[str], intent: str = "marketing") -> dict[str, Any]:
        r = self.client.post("/v1/decide", headers=self.admin(),
                             json={"profile": "user_id:ann", "intent": intent, "channels": channels})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def link(self, **params: Any) -> dict[str, Any]:
        pid = self.client.get("/v1/profiles", params={"identifier": "user_id:ann"}, headers=self.admin()).json()["id"]
        r = self.client.get(f"/v1/profiles/{pid}/preference-link", params=params, headers=self.admin())
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    storage = open_backend(request.param, tmp_path, request)
    keys = {}
    for kind, name, prov in (("write", "website", "customer_provided"), ("write", "broker", "third_party"),
                             ("admin", "admin", None)):
        _, secret = storage.keys.create(kind, name, None, prov, now=NOW)
        keys[name] = secret.reveal()
    clock = FixedClock(NOW)
    with TestClient(create_app(storage, load(None, env={}), clock)) as client:
        w = World(client, storage, keys, clock)
        w.send("/v1/identify", {"userId": "ann", "messageId": "i1", "timestamp": "2026-11-01T09:00:00Z",
                                "traits": {"email": "ann@example.com", "first_name": "Ann"}})
        w.send("/v1/identify", {"userId": "ann", "messageId": "b1", "timestamp": "2026-11-02T09:00:00Z",
                                "traits": {"phone": "+49 151 23456789"}}, key="broker")
        w.send("/v1/track", {"userId": "ann", "event": "Consent Updated", "messageId": "c1",
                             "timestamp": "2026-11-03T09:00:00Z",
                             "properties": {"purpose": "marketing", "channel": "email", "status": "granted",
                                            "evidence": {"method": "double_opt_in"}}})
        r = client.post("/v1/messages", headers=w.admin(), json={
            "profile": "user_id:ann", "message_id": "news-1", "status": "sent", "channel": "email",
            "contact_point": "ann@example.com", "intent": "marketing", "campaign": "winter-sale",
            "at": "2026-11-10T09:00:00Z"})
        assert r.status_code == 200
        yield w
    storage.close()


def _path(url: str) -> str:
    return url.replace("http://testserver", "")


def _form(page: str) -> dict[str, list[str]]:
    """The fields the page's form would send as it is (checked boxes and hidden fields)."""
    out: dict[str, list[str]] = {}
    for tag in re.findall(r"<input [^>]*>", page):
        name = re.search(r"name='([^']*)'", tag)
        if name is None:
            continue
        kind = re.search(r"type='([^']*)'", tag)
        if kind and kind.group(1) == "checkbox":
            if "checked" in tag:
                out.setdefault(name.group(1), []).append("on")
        else:
            value = re.search(r"value='([^']*)'", tag)
            out.setdefault(name.group(1), []).append(value.group(1) if value else "")
    return out


def test_the_page_shows_preferences_provenance_and_messages(world: World) -> None:
    link = world.link()
    assert link["expires_at"] == "2026-12-20T10:00:00Z"
    r = world.client.get(_path(link["url"]))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-store"
    page = r.text
    assert "<html lang='en'>" in page and "<script" not in page and "http" not in page.split("</head>")[0]
    # preferences per channel and purpose with their state
    assert "data-testid='state-email-marketing'>On<" in page
    assert "name='pref:email:marketing' id='pref:email:marketing' checked" in page
    assert "data-testid='state-sms-marketing'>Off (never given)<" in page
    # what takt holds, and where each piece came from
    assert "+4915123456789" in page
    phone_row = re.search(r"<tr><th scope='row'>phone</th>.*?</tr>", page)
    assert phone_row is not None
    assert "From a third party (a data provider)" in phone_row.group(0) and "broker" in phone_row.group(0)
    assert "We never use it to contact you." in phone_row.group(0)
    email_row = re.search(r"<tr><th scope='row'>email</th>.*?</tr>", page)
    assert email_row is not None and "You gave it to us" in email_row.group(0)
    assert "first_name" in page and "Ann" in page
    # recent messages, with why each was allowed
    assert "winter-sale" in page
    assert "You agreed to marketing by email on 2026-11-03T09:00:00Z (double_opt_in" in page


def test_withdrawing_is_committed_and_effective_for_the_next_decision(world: World) -> None:
    assert world.decide(["email"])["allowed"] is True
    path = _path(world.link()["url"])
    form = _form(world.client.get(path).text)
    assert form["pref:email:marketing"] == ["on"]
    del form["pref:email:marketing"]
    r = world.client.post(path, data=form, headers={"User-Agent": "TestBrowser/1.0"})
    assert r.status_code == 200
    assert "Your changes are saved." in r.text and "Email: Offers and news (marketing) — off (withdrawn)" in r.text
    assert "data-testid='state-email-marketing'>Off (you withdrew it)<" in r.text
    d = world.decide(["email"])
    assert d["allowed"] is False and "withdrawn" in {x["code"] for x in d["rejected"]["email"]}
    (event,) = [e.event for e in world.storage.log.iter() if e.event.source == "takt.preferences"]
    assert event.kind == "consent" and event.provenance == "customer_provided"
    assert event.properties["actor"] == "customer" and event.properties["status"] == "withdrawn"
    evidence = event.properties["evidence"]
    assert evidence["method"] == "preference_center" and evidence["user_agent"] == "TestBrowser/1.0"
    assert evidence["ip"]
    # the same form again at the same moment changes nothing more
    again = world.client.post(path, data=form)
    assert "Nothing changed." in again.text
    assert len([e for e in world.storage.log.iter() if e.event.source == "takt.preferences"]) == 1
    # granting back from the page is the customer's own grant: it lifts the withdrawal (single opt-in)
    form["pref:email:marketing"] = ["on"]
    world.clock.advance(minutes=1)
    r = world.client.post(path, data=form)
    # the page says it is not active yet, and promises no confirmation email (takt sends none)
    assert "off (withdrawn)" not in r.text and "not active yet" in r.text
    assert "confirmation by email" not in r.text and "confirmed by email" not in r.text
    assert "not_double_opted_in" in {x["code"] for x in world.decide(["email"])["rejected"]["email"]}
    # made through a link takt signed: the company vouches for it
    assert {e.event.trust for e in world.storage.log.iter() if e.event.source == "takt.preferences"} == {"server"}


def test_forged_altered_expired_and_foreign_links_are_refused(world: World) -> None:
    link = world.link(days=1)
    path = _path(link["url"])
    token = path.rsplit("/", 1)[1]
    forged = issue_token(b"x" * 32, "p_someone_else", NOW + timedelta(days=9))  # another workspace's secret
    altered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    for bad in (f"/p/{forged}", "/p/not-a-token", f"/p/{altered}"):
        r = world.client.get(bad)
        assert r.status_code == 403 and "This link is not valid" in r.text, bad
        assert world.client.post(bad, data={"token": bad.rsplit("/", 1)[1], "shown": "email:marketing"}
                                 ).status_code == 403
    # an unsubscribe link's token is not a preference link
    pid = link["profile_id"]
    unsub = world.client.get(f"/v1/profiles/{pid}/unsubscribe-link", params={"contact_point": "ann@example.com"},
                             headers=world.admin()).json()["url"].rsplit("/", 1)[1]
    assert world.client.get(f"/p/{unsub}").status_code == 403
    # a form that does not carry its own link's token changes nothing
    r = world.client.post(path, data={"token": "other", "shown": "email:marketing"})
    assert r.status_code == 403
    assert world.decide(["email"])["allowed"] is True
    # expiry: the link works until its time, then is refused
    secret = signing_secret(world.storage)
    assert read_preference_token(secret, token, NOW + timedelta(hours=23)) == pid
    with pytest.raises(TaktError, match="expired"):
        read_preference_token(secret, token, NOW + timedelta(days=1))
    stale = issue_token(secret, pid, NOW - timedelta(seconds=1))
    r = world.client.get(f"/p/{stale}")
    assert r.status_code == 403 and "expired" in r.text


def test_the_link_endpoint_checks_its_parameters(world: World) -> None:
    pid = world.link()["profile_id"]
    for params in ({"days": "0"}, {"days": "366"}, {"days": "x"}, {"ttl": "3"}):
        r = world.client.get(f"/v1/profiles/{pid}/preference-link", params=params, headers=world.admin())
        assert r.status_code == 400, params
    assert world.client.get("/v1/profiles/p_nobody/preference-link", headers=world.admin()).status_code == 404
    assert world.client.get(f"/v1/profiles/{pid}/preference-link").status_code == 401


def test_a_crm_import_shows_as_company_records(world: World, tmp_path: Path) -> None:
    rows = tmp_path / "crm.csv"
    rows.write_text("crm_id,email,city\nC-1,ann@example.com,Berlin\n")
    import_file(world.storage.log, rows, "customers", ImportOptions(source="crm", mapping={"row_key": "crm_id"}),
                now=NOW)
    world.client.app.state.ctx.extras["profiles"].catch_up()  # type: ignore[attr-defined]
    page = world.client.get(_path(world.link()["url"])).text
    city = re.search(r"<tr><th scope='row'>city</th>.*?</tr>", page)
    assert city is not None and "From our customer records" in city.group(0) and "Berlin" in city.group(0)


def test_the_page_speaks_the_customers_language(world: World) -> None:
    path = _path(world.link()["url"])
    english = world.client.get(path).text
    assert "<html lang='en'>" in english and "Your preferences" in english
    # no language on the profile: the browser's
    browser_de = world.client.get(path, headers={"Accept-Language": "fr;q=0.9, de-CH;q=0.8, en;q=0.5"}).text
    assert "<html lang='de'>" in browser_de
    # the profile's language wins over the browser's: first context.locale, then a trait
    world.send("/v1/track", {"userId": "ann", "event": "Page Viewed", "messageId": "p1",
                             "timestamp": "2026-11-05T09:00:00Z", "context": {"locale": "de-DE"}})
    german = world.client.get(path, headers={"Accept-Language": "en"}).text
    assert "<html lang='de'>" in german and "Ihre Einstellungen" in german
    assert "data-testid='state-email-marketing'>An<" in german
    assert "Von einem Dritten (einem Datenanbieter)" in german and "Your preferences" not in german
    world.send("/v1/identify", {"userId": "ann", "messageId": "i9", "timestamp": "2026-11-06T09:00:00Z",
                                "traits": {"locale": "en-GB"}})
    assert "<html lang='en'>" in world.client.get(path, headers={"Accept-Language": "de"}).text
    # a language takt has no texts for counts as none: the next source (here the context.locale) decides
    world.send("/v1/identify", {"userId": "ann", "messageId": "i10", "timestamp": "2026-11-07T09:00:00Z",
                                "traits": {"locale": "ja-JP"}})
    assert "<html lang='de'>" in world.client.get(path).text
    form = _form(world.client.get(path).text)
    del form["pref:email:marketing"]
    saved = world.client.post(path, data=form).text
    assert "Ihre Änderungen sind gespeichert." in saved and "E-Mail: Angebote und Neuigkeiten (Werbung) — aus" in saved


def test_a_refusal_follows_the_browsers_language(world: World) -> None:
    r = world.client.get("/p/not-a-token", headers={"Accept-Language": "de-AT,de;q=0.9"})
    assert r.status_code == 403 and "Dieser Link ist nicht gültig" in r.text and "<html lang='de'>" in r.text
    assert "This link is not valid" in world.client.get("/p/not-a-token").text


def test_a_browser_claim_shows_as_pending_and_the_preference_center_confirms_it(world: World) -> None:
    """A public client's grant is a claim: the page shows it as not yet confirmed; a grant the customer makes
    here, through the link takt signed, is trusted."""
    from takt.events.model import Event

    at = datetime(2026, 11, 15, 9, 0, tzinfo=UTC)
    world.storage.log.append([Event(
        kind="track", event="Consent Updated", message_id="claim-1", source="website", timestamp=at,
        received_at=at, provenance="customer_provided", user_id="ann", trust="public",
        properties={"purpose": "service", "channel": "email", "status": "granted",
                    "evidence": {"method": "web_form"}})])
    # appended behind the server's back (not through its writer, so no read waits for it): fold it now
    world.client.app.state.ctx.extras["profiles"].catch_up()  # type: ignore[attr-defined]
    path = _path(world.link()["url"])
    page = world.client.get(path).text
    assert "data-testid='state-email-service'>Off (a sign-up we could not yet confirm)<" in page
    form = _form(page)
    assert "pref:email:service" not in form
    form["pref:email:service"] = ["on"]
    r = world.client.post(path, data=form)
    assert "data-testid='state-email-service'>On<" in r.text
    pid = world.link()["profile_id"]
    states = world.client.get(f"/v1/profiles/{pid}/consent", headers=world.admin()).json()["states"]
    (service,) = [s for s in states if s["purpose"] == "service" and s["channel"] == "email"]
    assert service["status"] == "granted"
    assert [(h["status_after"], h["trust"]) for h in service["history"]] == [("claimed", "public"),
                                                                             ("granted", "server")]


def test_every_language_has_every_text() -> None:
    """The texts are one object per language: each names every channel, purpose, provenance, state and refusal
    the English one does, and its templates take the same placeholders."""
    import string
    from dataclasses import fields

    from takt.ui.texts import languages, texts_for

    english = texts_for("en")
    assert set(languages()) >= {"en", "de"}
    for lang in languages():
        t = texts_for(lang)
        assert t.lang == lang
        for f in fields(t):
            mine, theirs = getattr(t, f.name), getattr(english, f.name)
            if isinstance(theirs, dict):
                assert set(mine) == set(theirs), (lang, f.name)
            elif isinstance(theirs, str) and f.name != "lang":
                assert mine.strip() or not theirs.strip(), (lang, f.name)
                names = {n for _, n, _, _ in string.Formatter().parse(theirs) if n}
                assert {n for _, n, _, _ in string.Formatter().parse(mine) if n} == names, (lang, f.name)
    assert texts_for("de-AT").lang == "de" and texts_for("xx", None, "de_DE").lang == "de"
    assert texts_for("fr").lang == "en"

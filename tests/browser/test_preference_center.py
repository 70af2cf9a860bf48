"""The preference center in headless Chromium against a real ``takt serve``: the customer opens their signed link,
sees where a third-party phone number came from, withdraws email marketing and gets a confirmation; the very
next decision says no (``withdrawn``), and the consent event carries the browser's ip and user agent. A forged
link shows the refusal page."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import TaktServer, Workspace, basic_auth, create_key, make_workspace

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
AT = "2026-11-20T10:00:00Z"  # outside quiet hours, so only consent decides


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: run scripts/browser (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _call(server: TaktServer, method: str, path: str, headers: dict[str, str],
          body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.url + path, data=data, method=method,
                                 headers={**headers, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[TaktServer, Workspace]]:
    ws = make_workspace(tmp_path / "ws", source="website", provenance="customer_provided")
    broker = create_key(ws.path, "write", "data-broker", "third_party")
    with TaktServer(ws) as server:
        site = basic_auth(ws.write_key)
        _call(server, "POST", "/v1/identify", site, {
            "userId": "ann", "messageId": "i1", "timestamp": "2026-11-01T09:00:00Z",
            "traits": {"email": "ann@example.com", "first_name": "Ann"}})
        _call(server, "POST", "/v1/identify", basic_auth(broker), {
            "userId": "ann", "messageId": "b1", "timestamp": "2026-11-02T09:00:00Z",
            "traits": {"phone": "+49 151 23456789"}})
        _call(server, "POST", "/v1/track", site, {
            "userId": "ann", "event": "Consent Updated", "messageId": "c1", "timestamp": "2026-11-03T09:00:00Z",
            "properties": {"purpose": "marketing", "channel": "email", "status": "granted",
                           "evidence": {"method": "double_opt_in"}}})
        yield server, ws


def _decide(server: TaktServer, ws: Workspace) -> Any:
    return _call(server, "POST", "/v1/decide", _bearer(ws.admin_key),
                 {"profile": "user_id:ann", "intent": "marketing", "channels": ["email"], "at": AT})


def test_the_customer_withdraws_email_marketing_in_the_browser(browser: Any, world: tuple[TaktServer, Workspace]
                                                               ) -> None:
    server, ws = world
    assert _decide(server, ws)["allowed"] is True
    pid = _call(server, "GET", "/v1/profiles?identifier=user_id:ann", _bearer(ws.admin_key))["id"]
    link = _call(server, "GET", f"/v1/profiles/{pid}/preference-link", _bearer(ws.admin_key))
    assert link["url"].startswith(server.url + "/p/")

    context = browser.new_context(user_agent="PreferenceCenterTest/1.0 (Chromium)")
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    response = page.goto(link["url"])
    assert response is not None and response.status == 200
    assert page.title() == "Your preferences"
    # the third-party phone, and where it came from
    phone = page.locator("[data-testid=contact-points] tr", has_text="+4915123456789")
    phone.wait_for()
    assert "From a third party (a data provider)" in phone.inner_text()
    assert "data-broker" in phone.inner_text()
    assert "We never use it to contact you." in phone.inner_text()
    email_marketing = page.get_by_label("Email: Offers and news (marketing)")
    assert email_marketing.is_checked()
    assert page.get_by_test_id("state-email-marketing").inner_text() == "On"

    # withdraw, save, and the page confirms only once it is committed
    email_marketing.uncheck()
    page.get_by_role("button", name="Save my preferences").click()
    status = page.get_by_role("status")
    status.wait_for()
    assert "Your changes are saved." in status.inner_text()
    assert "Email: Offers and news (marketing) — off (withdrawn)" in status.inner_text()
    assert not page.get_by_label("Email: Offers and news (marketing)").is_checked()
    assert page.get_by_test_id("state-email-marketing").inner_text() == "Off (you withdrew it)"
    # the page loaded nothing from anywhere else
    assert requests and all(u.startswith(server.url + "/p/") for u in requests), requests
    context.close()

    d = _decide(server, ws)
    assert d["allowed"] is False
    assert "withdrawn" in {r["code"] for r in d["rejected"]["email"]}
    history = _call(server, "GET", f"/v1/profiles/{pid}/consent", _bearer(ws.admin_key))
    (change,) = [c for c in history["changes"] if c["source"] == "takt.preferences"]
    assert change["status"] == "withdrawn" and change["actor"] == "customer"
    assert change["evidence"]["method"] == "preference_center"
    assert change["evidence"]["user_agent"] == "PreferenceCenterTest/1.0 (Chromium)"
    assert change["evidence"]["ip"] == "127.0.0.1"


def test_a_forged_link_shows_the_refusal(browser: Any, world: tuple[TaktServer, Workspace]) -> None:
    server, ws = world
    pid = _call(server, "GET", "/v1/profiles?identifier=user_id:ann", _bearer(ws.admin_key))["id"]
    url = _call(server, "GET", f"/v1/profiles/{pid}/preference-link", _bearer(ws.admin_key))["url"]
    token = url.rsplit("/", 1)[1]  # opaque (takt.api.links): altered, it no longer authenticates
    forged = f"{server.url}/p/{token[:-6]}{'AAAAAA' if not token.endswith('AAAAAA') else 'BBBBBB'}"
    page = browser.new_page()
    response = page.goto(forged)
    assert response is not None and response.status == 403
    assert page.get_by_role("heading", level=1).inner_text() == "This link is not valid"
    assert "altered" in page.get_by_role("alert").inner_text()
    assert page.locator("form").count() == 0
    page.close()
    assert _decide(server, ws)["allowed"] is True
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(forged, data=b"token=x", method="POST"), timeout=30)
    assert err.value.code == 403

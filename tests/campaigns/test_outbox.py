"""The demo's outbox: an SMTP sink on loopback keeping messages in owner-only files, served read-only."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.api.outbox import OUTBOX
from takt.campaigns.delivery.factory import deliveries_from_settings
from takt.campaigns.delivery.outbox import Outbox, OutboxSink
from takt.campaigns.model import OutboundMessage
from takt.cli.demo import DEMO_SENDER, demo_smtp
from takt.clock import FixedClock
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
UNSUB = {"List-Unsubscribe": "<http://127.0.0.1:8321/v1/unsubscribe/l1abc>",
         "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[OutboxSink]:
    s = OutboxSink(Outbox(tmp_path / "ws" / "outbox"))
    s.start()
    try:
        yield s
    finally:
        s.stop()


def test_demo_email_lands_in_the_outbox_and_is_served(tmp_path: Path, sink: OutboxSink) -> None:
    storage = DuckDBStorage(tmp_path / "takt.duckdb")
    try:
        base = load(None, {})
        settings = base.with_values(**demo_smtp(base, sink))
        assert settings["smtp.from"] == DEMO_SENDER and settings["smtp.port"] == sink.port
        deliveries = deliveries_from_settings(settings, storage)
        msg = OutboundMessage("msg_1", "winter", 1, "0", "p_1", "marketing", "email", "ann@example.com",
                              {"subject": "Lapland, Ann?", "text": "Northern lights", "html": "<p>Northern</p>"},
                              UNSUB)
        assert deliveries.channel("email").send(msg).status == "sent"
        deliveries.close()

        folder = sink.outbox.folder
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        [file] = list(folder.glob("*.eml"))
        assert stat.S_IMODE(file.stat().st_mode) == 0o600

        _, admin = storage.keys.create("admin", "admin", now=NOW)
        _, read = storage.keys.create("read", "read", now=NOW)
        app = create_app(storage, settings, FixedClock(NOW), project=False)
        app.state.ctx.extras[OUTBOX] = sink.outbox
        auth = {"Authorization": f"Bearer {admin.reveal()}"}
        with TestClient(app) as client:
            listed = client.get("/v1/outbox", headers=auth)
            assert listed.status_code == 200, listed.text
            [entry] = listed.json()["messages"]
            assert entry["to"] == ["ann@example.com"] and entry["subject"] == "Lapland, Ann?"
            assert entry["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert entry["headers"]["Message-ID"] == "<msg_1@travel.example>"
            one = client.get(f"/v1/outbox/{entry['id']}", headers=auth).json()
            assert one["text"].strip() == "Northern lights" and one["html"].strip() == "<p>Northern</p>"
            assert client.get("/v1/outbox/0000000000000-deadbeef", headers=auth).status_code == 404
            assert client.get("/v1/outbox/../../etc/passwd", headers=auth).status_code == 404
            assert client.get("/v1/outbox", headers={"Authorization": f"Bearer {read.reveal()}"}).status_code == 403
            del app.state.ctx.extras[OUTBOX]
            none = client.get("/v1/outbox", headers=auth)
            assert none.status_code == 404 and none.json()["code"] == "no_outbox"
    finally:
        storage.close()


def test_pages_newest_first(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox")
    ids = [box.store("a@x.example", [f"r{i}@x.example"], f"Subject: s{i}\r\n\r\nbody\r\n".encode()) for i in range(5)]
    first = box.page(limit=2)
    assert [e.message["Subject"] for e in first] == ["s4", "s3"]
    rest = box.page(limit=10, before=first[-1].id)
    assert [e.id for e in rest] == sorted(ids, reverse=True)[2:]
    assert rest[0].recipients == ("r2@x.example",) and "X-Outbox-Rcpt-To" not in rest[0].headers()

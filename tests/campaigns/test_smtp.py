"""Email over SMTP against a real SMTP server in process (aiosmtpd)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from takt.campaigns.delivery.config import SmtpConfig
from takt.campaigns.delivery.ratelimit import TokenBucket
from takt.campaigns.delivery.smtp import MissingUnsubscribeHeaders, SmtpChannel
from takt.campaigns.model import OutboundMessage
from tests.campaigns.smtp_sink import CountingController, Recorder, authenticator, free_port, self_signed

UNSUB = {"List-Unsubscribe": "<https://takt.example/v1/unsubscribe/l1abc>",
         "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def message(i: int = 0, to: str = "ada@example.com", intent: str = "marketing",
            headers: dict[str, str] | None = None, html: bool = True) -> OutboundMessage:
    content = {"subject": f"Hello {i}", "text": f"plain {i}"}
    if html:
        content["html"] = f"<p>html {i}</p>"
    return OutboundMessage(message_id=f"msg_{i:032d}", campaign="c", campaign_version=1, step="0",
                           profile_id="p1", intent=intent, channel="email", contact_point=to, content=content,
                           headers=UNSUB if headers is None else headers)


def config(port: int, **kw: object) -> SmtpConfig:
    base: dict[str, object] = dict(host="127.0.0.1", port=port, sender="Travel <news@travel.example>",
                                   starttls=False, username="", password="", connections=2, timeout=5.0,
                                   rate_per_s=1000.0)
    base.update(kw)
    return SmtpConfig(**base)  # type: ignore[arg-type]


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


@pytest.fixture
def sink() -> Iterator[tuple[CountingController, Recorder]]:
    rec = Recorder()
    ctl = CountingController(rec, hostname="127.0.0.1", port=free_port())
    ctl.start()
    try:
        yield ctl, rec
    finally:
        ctl.stop()


def test_multipart_with_message_id_and_headers(sink: tuple[CountingController, Recorder]) -> None:
    ctl, rec = sink
    ch = SmtpChannel(config(ctl.port))
    try:
        result = ch.send(message(7))
    finally:
        ch.close()
    assert result.status == "sent"
    assert result.provider_id == f"<msg_{7:032d}@travel.example>"
    [mail] = rec.messages
    assert rec.envelopes == [("news@travel.example", ["ada@example.com"])]
    assert mail["Message-ID"] == f"<msg_{7:032d}@travel.example>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["List-Unsubscribe"] == UNSUB["List-Unsubscribe"]
    assert mail.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_payload(decode=True) for p in mail.walk() if not p.is_multipart()}
    assert {k: v.strip() for k, v in parts.items()} == {"text/plain": b"plain 7", "text/html": b"<p>html 7</p>"}


def test_marketing_without_one_click_headers_is_a_programming_error(
        sink: tuple[CountingController, Recorder]) -> None:
    ctl, rec = sink
    ch = SmtpChannel(config(ctl.port))
    try:
        with pytest.raises(MissingUnsubscribeHeaders):
            ch.send(message(headers={}))
        with pytest.raises(MissingUnsubscribeHeaders):
            ch.send(message(headers={"List-Unsubscribe": UNSUB["List-Unsubscribe"]}))
        assert ch.send(message(1, intent="transactional", headers={}, html=False)).status == "sent"
    finally:
        ch.close()
    assert len(rec.messages) == 1
    assert rec.messages[0].get_content_type() == "text/plain"


def test_connections_are_reused_across_threads(sink: tuple[CountingController, Recorder]) -> None:
    ctl, rec = sink
    ch = SmtpChannel(config(ctl.port, connections=2))
    results = []

    def work(k: int) -> None:
        for i in range(10):
            results.append(ch.send(message(k * 100 + i)).status)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ch.close()
    assert results == ["sent"] * 40
    assert len(rec.messages) == 40
    assert ch.pool.opened <= 2
    assert ctl.connections == ch.pool.opened


def test_temporary_refusal_defers_permanent_refusal_fails(sink: tuple[CountingController, Recorder]) -> None:
    ctl, rec = sink
    ch = SmtpChannel(config(ctl.port, connections=1))
    try:
        temp = ch.send(message(1, to="temp@example.com"))
        perm = ch.send(message(2, to="perm@example.com"))
        ok = ch.send(message(3))
    finally:
        ch.close()
    assert (temp.status, temp.permanent) == ("deferred", False)
    assert (perm.status, perm.permanent) == ("failed", True)
    assert "example.com" not in (temp.error or "") + (perm.error or "")
    assert ok.status == "sent"
    assert ctl.connections == 1  # a refusal keeps the connection usable


def test_unreachable_server_defers() -> None:
    ch = SmtpChannel(config(free_port()))
    assert ch.send(message()).status == "deferred"


def test_reconnects_after_the_server_drops_the_connection() -> None:
    rec = Recorder()
    port = free_port()
    ctl = CountingController(rec, hostname="127.0.0.1", port=port)
    ctl.start()
    ch = SmtpChannel(config(port, connections=1))
    try:
        assert ch.send(message(1)).status == "sent"
        ctl.stop()  # drops the idle pooled connection
        ctl = CountingController(rec, hostname="127.0.0.1", port=port)
        ctl.start()
        assert ch.send(message(2)).status == "sent"
    finally:
        ch.close()
        ctl.stop()
    assert [m["Subject"] for m in rec.messages] == ["Hello 1", "Hello 2"]
    assert ch.pool.opened == 2


def test_auth(tmp_path: Path) -> None:
    rec = Recorder()
    ctl = CountingController(rec, hostname="127.0.0.1", port=free_port(),
                             authenticator=authenticator("takt", "s3cret"), auth_require_tls=False)
    ctl.start()
    try:
        good = SmtpChannel(config(ctl.port, username="takt", password="s3cret"))
        bad = SmtpChannel(config(ctl.port, username="takt", password="wrong"))
        assert good.send(message(1)).status == "sent"
        refused = bad.send(message(2))
        good.close()
        bad.close()
    finally:
        ctl.stop()
    assert refused.status == "failed" and refused.permanent
    assert "s3cret" not in repr(good.config) and "wrong" not in (refused.error or "")
    assert len(rec.messages) == 1


def test_starttls_with_a_verified_certificate(tmp_path: Path) -> None:
    server_ctx, client_ctx = self_signed(tmp_path)
    rec = Recorder()
    ctl = CountingController(rec, hostname="127.0.0.1", port=free_port(), tls_context=server_ctx,
                             require_starttls=True, authenticator=authenticator("takt", "s3cret"))
    ctl.start()
    try:
        plain = SmtpChannel(config(ctl.port))
        assert plain.send(message(0)).status != "sent"  # the server insists on STARTTLS
        plain.close()
        ch = SmtpChannel(config(ctl.port, starttls=True, username="takt", password="s3cret"),
                         tls_context=client_ctx)
        assert ch.send(message(1)).status == "sent"
        ch.close()
        untrusted = SmtpChannel(config(ctl.port, starttls=True))  # the system's CAs do not know the cert
        assert untrusted.send(message(2)).status == "deferred"
        untrusted.close()
    finally:
        ctl.stop()
    assert [m["Subject"] for m in rec.messages] == ["Hello 1"]


def test_rate_limit_on_an_injected_clock(sink: tuple[CountingController, Recorder]) -> None:
    ctl, rec = sink
    t = FakeTime()
    ch = SmtpChannel(config(ctl.port, rate_per_s=5.0),
                     bucket=TokenBucket(5.0, burst=5, monotonic=t.monotonic, sleep=t.sleep))
    try:
        for i in range(15):
            assert ch.send(message(i)).status == "sent"
    finally:
        ch.close()
    # five saved up, then one every 1/5 s: ten more sends take 2 s of (fake) time
    assert len(t.slept) == 10
    assert sum(t.slept) == pytest.approx(2.0)
    assert len(rec.messages) == 15

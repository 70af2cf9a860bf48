"""Webhook channels: signed JSON, idempotency key, retries with backoff on an injected sleeper, dead letters."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from takt.campaigns.dead_letter_store import SqlDeadLetters
from takt.campaigns.dead_letters import DeadLetter, replay
from takt.campaigns.delivery.factory import deliveries_from_settings
from takt.campaigns.delivery.signing import verify
from takt.campaigns.delivery.webhook import WebhookChannel, WebhookConfig
from takt.campaigns.model import DeliveryResult, OutboundMessage
from takt.clock import FixedClock
from takt.errors import SettingsError, TaktError
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

SECRET = "0123456789abcdef-sms"
NOW = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)


def sms(i: int = 1) -> OutboundMessage:
    return OutboundMessage(message_id=f"msg_{i:032d}", campaign="c", campaign_version=2, step="0", profile_id="p1",
                           intent="marketing", channel="sms", contact_point="+4915112345678",
                           content={"text": "Hi"})


class Script:
    """A transport answering the statuses given, in order (an ``OSError`` for ``None``), recording calls."""

    def __init__(self, *answers: int | None) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, dict[str, str], bytes]] = []

    def __call__(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> tuple[int, bytes]:
        self.calls.append((url, dict(headers), body))
        answer = self.answers.pop(0)
        if answer is None:
            raise ConnectionRefusedError("down")
        return answer, b'{"id": "prov-1"}'


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlDeadLetters]:
    s = DuckDBStorage(tmp_path / "takt.duckdb")
    try:
        yield SqlDeadLetters(s)
    finally:
        s.close()


def channel(script: Script, store: SqlDeadLetters | None = None, slept: list[float] | None = None,
            retries: int = 3) -> WebhookChannel:
    sleeps = slept if slept is not None else []
    return WebhookChannel("sms", WebhookConfig("https://sms.example/send", SECRET, retries=retries, backoff=0.5),
                          dead_letters=store, transport=script, sleep=sleeps.append, clock=FixedClock(NOW))


def test_signed_json_with_idempotency_key() -> None:
    script = Script(200)
    result = channel(script).send(sms())
    assert result == DeliveryResult("sent", provider_id="prov-1")
    [(url, headers, body)] = script.calls
    assert url == "https://sms.example/send"
    assert headers["Idempotency-Key"] == "msg_" + "0" * 31 + "1"
    assert orjson.loads(body) == {"message_id": "msg_" + "0" * 31 + "1", "campaign": "c", "campaign_version": 2,
                                  "step": "0", "profile_id": "p1", "intent": "marketing", "channel": "sms",
                                  "to": "+4915112345678", "content": {"text": "Hi"}}
    ts = int(NOW.timestamp())
    assert headers["X-Takt-Timestamp"] == str(ts)
    expected = hmac.new(SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-Takt-Signature"] == f"v1={expected}"
    verify(SECRET, headers, body, NOW.timestamp(), 300)  # the receiver's check accepts it
    with pytest.raises(TaktError) as e:
        verify(SECRET, headers, body + b" ", NOW.timestamp(), 300)
    assert e.value.status == 401
    with pytest.raises(TaktError):
        verify(SECRET, headers, body, NOW.timestamp() + 301, 300)


def test_retries_with_exponential_backoff_then_succeeds(store: SqlDeadLetters) -> None:
    script, slept = Script(None, 503, 429, 200), []
    result = channel(script, store, slept).send(sms())
    assert result.status == "sent"
    assert slept == [0.5, 1.0, 2.0]
    assert len({c[1]["Idempotency-Key"] for c in script.calls}) == 1
    assert store.count() == 0


def test_exhausted_retries_dead_letter_without_the_contact_point(store: SqlDeadLetters) -> None:
    script, slept = Script(500, 500, 500, 500), []
    result = channel(script, store, slept).send(sms())
    assert (result.status, result.permanent) == ("failed", True)
    assert slept == [0.5, 1.0, 2.0]
    [letter] = store.page()
    assert (letter.message_id, letter.attempts, letter.channel, letter.campaign_version) == (
        "msg_" + "0" * 31 + "1", 4, "sms", 2)
    assert "500" in letter.error
    assert "+49" not in str(letter.to_json())


def test_a_client_error_is_not_retried(store: SqlDeadLetters) -> None:
    script, slept = Script(400), []
    result = channel(script, store, slept).send(sms())
    assert (result.status, result.permanent) == ("failed", True)
    assert slept == [] and len(script.calls) == 1
    assert store.count() == 1


def test_replay_resends_and_marks(store: SqlDeadLetters) -> None:
    ch = channel(Script(500, 500, 200), store, retries=1)
    ch.send(sms())
    [letter] = store.page()
    resent: list[DeadLetter] = []

    def resend(dl: DeadLetter) -> DeliveryResult | None:
        resent.append(dl)
        return ch.send(sms())

    after = replay(store, letter.id, resend, NOW)
    assert resent == [letter]
    assert (after.replay_status, after.replayed_at) == ("sent", NOW)
    assert store.count(pending_only=True) == 0
    with pytest.raises(TaktError) as again:
        replay(store, letter.id, resend, NOW)
    assert again.value.status == 409
    with pytest.raises(TaktError) as missing:
        replay(store, "msg_nope", resend, NOW)
    assert missing.value.status == 404


def test_replay_that_fails_again_updates_the_entry(store: SqlDeadLetters) -> None:
    ch = channel(Script(500, 500, 503, 503), store, retries=1)
    ch.send(sms())
    after = replay(store, "msg_" + "0" * 31 + "1", lambda dl: ch.send(sms()), NOW)
    assert after.replay_status == "failed" and after.attempts == 4
    assert store.count(pending_only=True) == 1


def test_factory_builds_channels_from_settings(tmp_path: Path) -> None:
    s = DuckDBStorage(tmp_path / "takt.duckdb")
    try:
        settings = load(None, {"TAKT_DELIVERY__WEBHOOKS": '{"sms": "https://sms.example/send"}',
                               "TAKT_DELIVERY__WEBHOOK_SECRETS": f'{{"sms": "{SECRET}"}}',
                               "TAKT_SMTP__HOST": "127.0.0.1", "TAKT_SMTP__FROM": "news@travel.example"})
        d = deliveries_from_settings(settings, s)
        assert set(d.names) == {"email", "sms"}
        with pytest.raises(TaktError) as e:
            d.channel("push")
        assert e.value.code == "channel_not_configured"
        d.close()
        no_secret = load(None, {"TAKT_DELIVERY__WEBHOOKS": '{"push": "https://push.example"}'})
        with pytest.raises(SettingsError):
            deliveries_from_settings(no_secret, s)
    finally:
        s.close()


def test_secrets_never_print() -> None:
    from takt.settings import REGISTRY, redact

    settings = load(None, {"TAKT_SMTP__PASSWORD": "hunter2-hunter2", "TAKT_DELIVERY__WEBHOOK_SECRETS":
                           f'{{"sms": "{SECRET}"}}'})
    assert redact(REGISTRY["smtp.password"], settings["smtp.password"]) == "********"
    assert redact(REGISTRY["delivery.webhook_secrets"], settings["delivery.webhook_secrets"]) == "********"


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(202)
        self.end_headers()
        self.wfile.write(b'{"id": 42}')

    def log_message(self, *args: object) -> None:
        pass


def test_a_real_http_receiver_verifies_the_signature() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        ch = WebhookChannel("push", WebhookConfig(url, SECRET), clock=FixedClock(NOW))
        assert ch.send(sms()) == DeliveryResult("sent", provider_id="42")
    finally:
        server.shutdown()
    [(headers, body)] = _Receiver.received
    verify(SECRET, headers, body, NOW.timestamp(), 300)

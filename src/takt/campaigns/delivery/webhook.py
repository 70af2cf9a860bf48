"""Channels that leave through a webhook (``sms``, ``push``, ``phone``, ``post``, ``social_dm``, or any named
webhook): one signed JSON POST per message.

* **Body**: ``{"message_id", "campaign", "campaign_version", "step", "profile_id", "intent", "channel", "to",
  "content": {…rendered fields…}}``.
* **Headers**: ``Content-Type: application/json``, ``Idempotency-Key: <message id>`` (a provider that honours
  it never delivers a retried call twice), ``X-Takt-Timestamp`` and ``X-Takt-Signature``
  (:mod:`takt.campaigns.delivery.signing`).
* **Outcomes**: 2xx → ``sent`` (``provider_id`` from the answer's JSON ``id`` when present); a network error,
  408, 429 or 5xx is retried ``delivery.webhook.retries`` times, waiting ``backoff``, ``2·backoff``, … (an
  injected sleeper); any other 4xx is not retried. A message that still fails goes to the dead-letter list
  (:mod:`takt.campaigns.dead_letters`) and the answer is ``failed`` with ``permanent`` set: the orchestrator
  does not retry it, an admin replays it.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import orjson

from takt.campaigns.dead_letters import DeadLetter, DeadLetters
from takt.campaigns.delivery.base import Channel
from takt.campaigns.delivery.ratelimit import Sleeper, TokenBucket
from takt.campaigns.delivery.signing import signed_headers
from takt.campaigns.model import DeliveryResult, OutboundMessage
from takt.clock import Clock, system_clock

logger = logging.getLogger(__name__)

Transport = Callable[[str, Mapping[str, str], bytes, float], tuple[int, bytes]]
"""POST ``body`` with ``headers`` to a URL within a timeout; the answer's status and body. Raises
:class:`OSError` for a network error."""

RETRY_STATUSES = frozenset({408, 429})


def urllib_transport(url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read(64 * 1024)
    except urllib.error.HTTPError as e:
        return int(e.code), e.read(64 * 1024) if e.fp is not None else b""


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str
    secret: str
    retries: int = 4
    backoff: float = 1.0
    timeout: float = 10.0
    rate_per_s: float = 50.0


def body_of(message: OutboundMessage) -> bytes:
    return orjson.dumps({"message_id": message.message_id, "campaign": message.campaign,
                         "campaign_version": message.campaign_version, "step": message.step,
                         "profile_id": message.profile_id, "intent": message.intent, "channel": message.channel,
                         "to": message.contact_point, "content": dict(message.content)})


def _provider_id(body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    found = data.get("id") if isinstance(data, dict) else None
    return str(found) if isinstance(found, str | int) else None


class WebhookChannel(Channel):
    def __init__(self, name: str, config: WebhookConfig, *, dead_letters: DeadLetters | None = None,
                 transport: Transport = urllib_transport, sleep: Sleeper = time.sleep,
                 clock: Clock = system_clock, bucket: TokenBucket | None = None) -> None:
        self.name = name
        self.config = config
        self._dead = dead_letters
        self._transport = transport
        self._sleep = sleep
        self._clock = clock
        self.bucket = bucket or TokenBucket(config.rate_per_s)

    def _attempt(self, message: OutboundMessage, body: bytes) -> tuple[DeliveryResult, bool]:
        """One call: its result and whether a retry may help."""
        now: datetime = self._clock()
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.message_id,
                   "User-Agent": "takt-webhook", **signed_headers(self.config.secret, int(now.timestamp()), body)}
        try:
            status, answer = self._transport(self.config.url, headers, body, self.config.timeout)
        except OSError as e:
            return DeliveryResult("failed", error=f"webhook unreachable ({type(e).__name__})"), True
        if 200 <= status < 300:
            return DeliveryResult("sent", provider_id=_provider_id(answer)), False
        retry = status >= 500 or status in RETRY_STATUSES
        return DeliveryResult("failed", error=f"webhook answered {status}", permanent=not retry), retry

    def send(self, message: OutboundMessage) -> DeliveryResult:
        body = body_of(message)
        attempts = 0
        while True:
            self.bucket.acquire()
            attempts += 1
            result, retry = self._attempt(message, body)
            if result.status == "sent":
                return result
            if not retry or attempts > self.config.retries:
                break
            self._sleep(self.config.backoff * 2 ** (attempts - 1))
        error = result.error or "webhook failed"
        logger.warning("webhook %s: message %s dead-lettered after %d attempts: %s", self.name, message.message_id,
                       attempts, error)
        if self._dead is not None:
            self._dead.add(DeadLetter.of(message, error, attempts, self._clock()))
        return DeliveryResult("failed", error=f"dead-lettered after {attempts} attempts: {error}", permanent=True)

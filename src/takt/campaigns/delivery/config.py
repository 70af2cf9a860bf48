"""Delivery settings: SMTP for email, webhooks (URL and signing secret) for the other channels, rate limits and
retries. Secrets (``smtp.password``, ``delivery.webhook_secrets``) never print (``takt settings`` shows
``********``); set them in the environment (``TAKT_SMTP__PASSWORD``,
``TAKT_DELIVERY__WEBHOOK_SECRETS='{"sms": "…"}'``) rather than in ``takt.toml``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from takt.settings import Settings, register


def _positive(v: Any) -> None:
    if v <= 0:
        raise ValueError(f"must be positive, got {v!r}")


def _port(v: Any) -> None:
    if not 1 <= v <= 65535:
        raise ValueError(f"expected a port from 1 to 65535, got {v!r}")


def _not_negative(v: Any) -> None:
    if v < 0:
        raise ValueError(f"must not be negative, got {v!r}")


def _urls(v: Any) -> None:
    for name, url in v.items():
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"channel {name!r}: expected an http(s) URL, got {url!r}")


def _secrets(v: Any) -> None:
    for name, secret in v.items():
        if not isinstance(secret, str) or len(secret) < 16:
            raise ValueError(f"channel {name!r}: a signing secret must be a string of at least 16 characters")


register("smtp.host", "", "SMTP server email is sent through. Empty: no email channel (`takt demo` points it at its "
         "own outbox).")
register("smtp.port", 25, "Port of `smtp.host` (25, or 587 with `smtp.starttls`).", check=_port)
register("smtp.from", "", "The `From` address of every email takt sends (e.g. `Travel Co <news@travel.example>`); "
         "its domain also ends each `Message-ID`.")
register("smtp.starttls", False, "Upgrade the SMTP connection with STARTTLS before authenticating and sending "
         "(the server's certificate is verified).")
register("smtp.username", "", "SMTP login (with `smtp.password`); empty: no authentication.")
register("smtp.password", "", "SMTP password (set it as `TAKT_SMTP__PASSWORD`, never printed).", secret=True)
register("smtp.connections", 4, "Most SMTP connections email delivery keeps open and reuses.", check=_positive)
register("smtp.timeout_seconds", 30.0, "Seconds an SMTP connection or command may take before the message is "
         "deferred.", check=_positive)
register("delivery.email.rate_per_s", 50.0, "Most emails sent per second (a token bucket; a send over it waits).",
         check=_positive)
register("delivery.webhook.rate_per_s", 50.0, "Most webhook calls per second, per channel.", check=_positive)
register("delivery.webhooks", {}, "Webhook URL per channel, e.g. `{sms = \"https://sms.example/send\", push = "
         "\"https://push.example/send\"}` (channels `sms`, `push`, `phone`, `post`, `social_dm`, or any name of a "
         "named webhook). A channel without a URL is not configured.", check=_urls)
register("delivery.webhook_secrets", {}, "Signing secret per channel (at least 16 characters): signs the webhook "
         "calls takt makes (`X-Takt-Signature`) and authenticates that provider's delivery callbacks. Set it as "
         "`TAKT_DELIVERY__WEBHOOK_SECRETS` (JSON); never printed.", secret=True, check=_secrets)
register("delivery.webhook.retries", 4, "Retries of a webhook call that failed with a network error, 429 or 5xx, "
         "before the message goes to the dead-letter list.", check=_not_negative)
register("delivery.webhook.backoff_seconds", 1.0, "Wait before the first retry of a webhook call; each further "
         "retry waits twice as long.", check=_positive)
register("delivery.webhook.timeout_seconds", 10.0, "Seconds a webhook call may take.", check=_positive)
register("delivery.callback_tolerance_seconds", 300, "How far a callback's or webhook's signed timestamp may lie "
         "from now before it is refused (replays).", check=_positive)


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    starttls: bool
    username: str
    password: str
    connections: int
    timeout: float
    rate_per_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        return cls(host=str(settings["smtp.host"]), port=int(settings["smtp.port"]),
                   sender=str(settings["smtp.from"]), starttls=bool(settings["smtp.starttls"]),
                   username=str(settings["smtp.username"]), password=str(settings["smtp.password"]),
                   connections=int(settings["smtp.connections"]), timeout=float(settings["smtp.timeout_seconds"]),
                   rate_per_s=float(settings["delivery.email.rate_per_s"]))

    def __repr__(self) -> str:  # never the password
        return f"SmtpConfig(host={self.host!r}, port={self.port}, starttls={self.starttls})"


register("delivery.double_opt_in.link_hours", 72, "Hours a double opt-in confirmation link works.", check=_positive)
register("delivery.double_opt_in.resend_hours", 24, "At most one double opt-in confirmation per address and purpose "
         "in this many hours (a sign-up form cannot flood a mailbox).", check=_positive)

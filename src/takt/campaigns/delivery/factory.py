"""The workspace's :class:`~takt.campaigns.delivery.base.Deliveries` from its settings: ``email`` when
``smtp.host`` and ``smtp.from`` are set, a webhook channel for each entry of ``delivery.webhooks`` (each needs a
secret in ``delivery.webhook_secrets``)."""

from __future__ import annotations

from takt.campaigns.dead_letter_store import dead_letters
from takt.campaigns.delivery.base import Channel, Deliveries
from takt.campaigns.delivery.config import SmtpConfig
from takt.campaigns.delivery.smtp import SmtpChannel
from takt.campaigns.delivery.webhook import WebhookChannel, WebhookConfig
from takt.clock import Clock, system_clock
from takt.errors import SettingsError
from takt.settings import Settings
from takt.storage.base import Storage


def webhook_config(settings: Settings, channel: str) -> WebhookConfig:
    url = settings["delivery.webhooks"].get(channel)
    secret = settings["delivery.webhook_secrets"].get(channel)
    if not url:
        raise SettingsError("delivery.webhooks", f"no webhook URL for channel {channel!r}")
    if not secret:
        raise SettingsError("delivery.webhook_secrets", f"channel {channel!r} has a webhook URL but no secret")
    return WebhookConfig(url=str(url), secret=str(secret), retries=int(settings["delivery.webhook.retries"]),
                         backoff=float(settings["delivery.webhook.backoff_seconds"]),
                         timeout=float(settings["delivery.webhook.timeout_seconds"]),
                         rate_per_s=float(settings["delivery.webhook.rate_per_s"]))


def deliveries_from_settings(settings: Settings, storage: Storage, clock: Clock = system_clock) -> Deliveries:
    channels: dict[str, Channel] = {}
    smtp = SmtpConfig.from_settings(settings)
    if smtp.host and smtp.sender:
        channels["email"] = SmtpChannel(smtp)
    for name in sorted(settings["delivery.webhooks"]):
        channels[name] = WebhookChannel(name, webhook_config(settings, name), dead_letters=dead_letters(storage),
                                        clock=clock)
    return Deliveries(channels)

"""A tiny SMTP Channel for tests (until the delivery helper's SMTP channel is in): one connection per thread,
multipart text/HTML, the message id as ``Message-ID``, the OutboundMessage's headers added."""

from __future__ import annotations

import smtplib
import threading
import time
from email.message import EmailMessage
from email.policy import SMTP

from takt.campaigns.delivery.base import Channel
from takt.campaigns.model import DeliveryResult, OutboundMessage


class TestSmtp(Channel):
    __test__ = False

    def __init__(self, port: int, per_message_s: float = 0.0) -> None:
        self.name = "email"
        self.port = port
        self.per_message_s = per_message_s
        self._local = threading.local()

    def _conn(self) -> smtplib.SMTP:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._local.conn = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
        return c

    def send(self, message: OutboundMessage) -> DeliveryResult:
        if self.per_message_s:
            time.sleep(self.per_message_s)  # a throttled channel
        m = EmailMessage(policy=SMTP.clone(max_line_length=998))  # a long one-click URL must stay a URL
        m["From"] = "shop@example.com"
        m["To"] = message.contact_point or ""
        m["Subject"] = message.content.get("subject", "")
        m["Message-ID"] = f"<{message.message_id}@takt>"
        for k, v in message.headers.items():
            m[k] = v
        m.set_content(message.content.get("text", ""))
        if "html" in message.content:
            m.add_alternative(message.content["html"], subtype="html")
        try:
            self._conn().send_message(m)
        except (smtplib.SMTPException, OSError) as e:
            self._local.conn = None
            return DeliveryResult("failed", error=type(e).__name__)
        return DeliveryResult("sent")

"""Email over SMTP: multipart text + HTML, one ``Message-ID`` per message id, connections pooled and reused.

* **Headers.** ``From`` is ``smtp.from``; ``Message-ID`` is ``<message_id@domain of smtp.from>`` (the message's
  identity, so a provider and takt's callbacks agree on it); the message's own headers follow (the
  orchestrator adds RFC 8058 ``List-Unsubscribe`` and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` on
  marketing). A *marketing* email without both is a programming error (:class:`MissingUnsubscribeHeaders`),
  raised, never sent.
* **Connections.** A thread-safe pool of at most ``smtp.connections`` connections; a connection the server
  dropped is reopened and the message tried once more on it.
* **Outcomes.** Accepted → ``sent``; a 4xx answer, a timeout or an unreachable server → ``deferred`` (try
  later); a 5xx answer → ``failed``, permanent. The address never appears in an error text or a log line.
* **Rate.** ``delivery.email.rate_per_s`` through a :class:`~takt.campaigns.delivery.ratelimit.TokenBucket`.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import parseaddr

from takt.campaigns.delivery.base import Channel
from takt.campaigns.delivery.config import SmtpConfig
from takt.campaigns.delivery.ratelimit import TokenBucket
from takt.campaigns.model import DeliveryResult, OutboundMessage

logger = logging.getLogger(__name__)

ONE_CLICK = "List-Unsubscribe=One-Click"
PROFILE_HEADER = "X-Takt-Profile"
RESERVED_HEADERS = frozenset({"from", "to", "subject", "message-id", "content-type", "mime-version",
                              "content-transfer-encoding", "x-takt-profile"})


class MissingUnsubscribeHeaders(RuntimeError):
    """A marketing email without RFC 8058 ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` headers: a bug
    in whoever built the message, never sent."""


def check_marketing_headers(message: OutboundMessage) -> None:
    """Raise :class:`MissingUnsubscribeHeaders` when a marketing email lacks its one-click unsubscribe headers."""
    if message.intent != "marketing":
        return
    headers = {k.lower(): v for k, v in message.headers.items()}
    unsubscribe = headers.get("list-unsubscribe", "")
    if "<https://" not in unsubscribe and "<http://" not in unsubscribe:
        raise MissingUnsubscribeHeaders(f"marketing email {message.message_id} has no List-Unsubscribe URL")
    if headers.get("list-unsubscribe-post", "").strip() != ONE_CLICK:
        raise MissingUnsubscribeHeaders(f"marketing email {message.message_id} has no "
                                        f"'List-Unsubscribe-Post: {ONE_CLICK}' header")


def domain_of(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "takt.local"


def build_email(message: OutboundMessage, sender: str) -> EmailMessage:
    """The email as it leaves: multipart/alternative when the message has ``html``."""
    check_marketing_headers(message)
    if not message.contact_point:
        raise ValueError(f"email {message.message_id} has no address")
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = message.contact_point
    mail["Subject"] = message.content.get("subject", "")
    mail["Message-ID"] = f"<{message.message_id}@{domain_of(sender)}>"
    mail[PROFILE_HEADER] = message.profile_id  # a provider's callbacks echo it (pseudonymous: no personal data)
    for name, value in message.headers.items():
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by the email channel")
        mail[name] = value
    mail.set_content(message.content.get("text", ""))
    html = message.content.get("html")
    if html:
        mail.add_alternative(html, subtype="html")
    return mail


Connect = Callable[[], smtplib.SMTP]


class SmtpPool:
    """At most ``size`` open connections; idle ones are reused (last in, first out)."""

    def __init__(self, connect: Connect, size: int) -> None:
        self._connect = connect
        self._idle: list[smtplib.SMTP] = []
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self.opened = 0
        """How many connections were opened (tests count reuse with it)."""

    def take(self) -> smtplib.SMTP:
        self._slots.acquire()
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            conn = self._connect()
        except BaseException:
            self._slots.release()
            raise
        with self._lock:
            self.opened += 1
        return conn

    def reopen(self, conn: smtplib.SMTP) -> smtplib.SMTP:
        """Replace a dropped connection (the caller keeps its slot)."""
        _quietly_close(conn)
        fresh = self._connect()
        with self._lock:
            self.opened += 1
        return fresh

    def give(self, conn: smtplib.SMTP, broken: bool = False) -> None:
        if broken:
            _quietly_close(conn)
        else:
            with self._lock:
                self._idle.append(conn)
        self._slots.release()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                _quietly_close(conn)


def _quietly_close(conn: smtplib.SMTP) -> None:
    try:
        conn.close()
    except OSError as e:
        logger.debug("closing an SMTP connection: %s", type(e).__name__)


def _no_delay(conn: smtplib.SMTP) -> None:
    """Commands go out at once: SMTP is a dialogue of small writes, which Nagle's algorithm and the peer's
    delayed acknowledgements would hold back by up to 40 ms each."""
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as e:
            logger.debug("TCP_NODELAY: %s", type(e).__name__)


def _code_result(code: int, what: str) -> DeliveryResult:
    if 400 <= code < 500:
        return DeliveryResult("deferred", error=f"{what}: temporary refusal {code}")
    return DeliveryResult("failed", error=f"{what}: refused {code}", permanent=True)


class SmtpChannel(Channel):
    """The ``email`` channel."""

    name = "email"

    def __init__(self, config: SmtpConfig, *, tls_context: ssl.SSLContext | None = None,
                 bucket: TokenBucket | None = None) -> None:
        if not config.host or not config.sender:
            raise ValueError("the email channel needs smtp.host and smtp.from")
        self.config = config
        self._tls = tls_context
        self.bucket = bucket or TokenBucket(config.rate_per_s)
        self.pool = SmtpPool(self._connect, config.connections)

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        conn = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
        try:
            _no_delay(conn)
            conn.ehlo()
            if c.starttls:
                conn.starttls(context=self._tls or ssl.create_default_context())
                _no_delay(conn)
                conn.ehlo()
            if c.username:
                conn.login(c.username, c.password)
        except BaseException:
            _quietly_close(conn)
            raise
        return conn

    def send(self, message: OutboundMessage) -> DeliveryResult:
        mail = build_email(message, self.config.sender)  # programming errors raise before anything leaves
        self.bucket.acquire()
        try:
            conn = self.pool.take()
        except smtplib.SMTPResponseException as e:
            logger.warning("SMTP connection refused: %s", e.smtp_code)
            return _code_result(e.smtp_code, "connection")
        except (OSError, smtplib.SMTPException) as e:
            logger.warning("SMTP server unreachable: %s", type(e).__name__)
            return DeliveryResult("deferred", error=f"SMTP server unreachable ({type(e).__name__})")
        broken = False
        try:
            try:
                refused = conn.send_message(mail)
            except smtplib.SMTPServerDisconnected:
                conn = self.pool.reopen(conn)
                refused = conn.send_message(mail)
            if refused:
                code = min(code for code, _ in refused.values())
                return _code_result(code, "recipient")
            return DeliveryResult("sent", provider_id=str(mail["Message-ID"]))
        except smtplib.SMTPRecipientsRefused as e:
            code = min(code for code, _ in e.recipients.values())
            return _code_result(code, "recipient")
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
            if e.smtp_code >= 500:
                self._reset(conn)
            return _code_result(e.smtp_code, "message")
        except smtplib.SMTPResponseException as e:
            broken = True
            return _code_result(e.smtp_code, "server")
        except (OSError, smtplib.SMTPException) as e:
            broken = True
            logger.warning("SMTP send interrupted: %s", type(e).__name__)
            return DeliveryResult("deferred", error=f"SMTP connection failed ({type(e).__name__})")
        finally:
            self.pool.give(conn, broken=broken)

    @staticmethod
    def _reset(conn: smtplib.SMTP) -> None:
        try:
            conn.rset()
        except (OSError, smtplib.SMTPException) as e:
            logger.debug("RSET after a refusal: %s", type(e).__name__)

    def close(self) -> None:
        self.pool.close()

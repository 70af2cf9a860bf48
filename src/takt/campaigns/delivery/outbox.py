"""The demo's outbox: an SMTP sink on loopback that keeps what arrives, for reading through the API.

``takt demo`` starts an :class:`OutboxSink` (aiosmtpd) on ``127.0.0.1``, points the ``smtp.*`` settings of the
server it runs at it, and serves the messages read-only (``GET /v1/outbox``, ``GET /v1/outbox/{id}``, admin
key). Messages hold addresses, so they are files only the workspace's owner can read: the folder
``<workspace>/outbox`` is mode 0700 and each message ``<id>.eml`` mode 0600. Nothing leaves the machine.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from takt.errors import TaktError

OUTBOX_DIR = "outbox"
_ID = re.compile(r"^[0-9]{13}-[0-9a-f]{8}$")


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: str
    mail_from: str
    recipients: tuple[str, ...]
    message: EmailMessage

    def headers(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.message.items()}

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "from": self.mail_from, "to": list(self.recipients),
                "subject": str(self.message.get("Subject", "")), "headers": self.headers()}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, str] = {}
        for part in self.message.walk():
            if part.is_multipart():
                continue
            kind = part.get_content_type()
            if kind in ("text/plain", "text/html") and kind not in body:
                body[kind] = str(part.get_content())  # type: ignore[attr-defined]
        return {**self.summary(), "text": body.get("text/plain"), "html": body.get("text/html")}


class Outbox:
    """Messages as files under ``folder`` (owner-only permissions)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        self._lock = threading.Lock()
        known = self.ids()
        self._last = int(known[-1].split("-")[0]) if known else 0

    def store(self, mail_from: str, recipients: list[str], content: bytes) -> str:
        with self._lock:
            self._last = max(time.time_ns() // 1_000_000, self._last + 1)  # ids sort in arrival order
            entry_id = f"{self._last:013d}-{secrets.token_hex(4)}"
            envelope = f"X-Outbox-Mail-From: {mail_from}\r\nX-Outbox-Rcpt-To: {', '.join(recipients)}\r\n".encode()
            path = self.folder / f"{entry_id}.eml"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(envelope + content)
        return entry_id

    def ids(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.eml") if _ID.match(p.stem))

    def get(self, entry_id: str) -> OutboxEntry:
        if not _ID.match(entry_id) or not (self.folder / f"{entry_id}.eml").exists():
            raise TaktError(f"no message {entry_id!r} in the outbox", code="not_found", status=404)
        raw = (self.folder / f"{entry_id}.eml").read_bytes()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        mail_from = str(msg.get("X-Outbox-Mail-From", ""))
        rcpt = tuple(r.strip() for r in str(msg.get("X-Outbox-Rcpt-To", "")).split(",") if r.strip())
        del msg["X-Outbox-Mail-From"]
        del msg["X-Outbox-Rcpt-To"]
        return OutboxEntry(entry_id, mail_from, rcpt, msg)

    def page(self, limit: int = 50, before: str | None = None) -> list[OutboxEntry]:
        """The newest first (``before``: the last id of the previous page)."""
        ids = [i for i in reversed(self.ids()) if before is None or i < before]
        return [self.get(i) for i in ids[:limit]]


class _Handler:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.outbox.store(str(envelope.mail_from), [str(r) for r in envelope.rcpt_tos], content)
        return "250 OK: kept in the takt outbox"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class OutboxSink:
    """An SMTP server on loopback storing every message it accepts into an :class:`Outbox`."""

    def __init__(self, outbox: Outbox, port: int | None = None, host: str = "127.0.0.1") -> None:
        from aiosmtpd.controller import Controller

        self.outbox = outbox
        self.host = host
        self.port = port or free_port(host)
        self._controller = Controller(_Handler(outbox), hostname=host, port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def settings_overrides(self) -> dict[str, Any]:
        """What the server's settings get so email leaves into this outbox."""
        return {"smtp__host": self.host, "smtp__port": self.port, "smtp__starttls": False,
                "smtp__username": "", "smtp__password": ""}

"""Double opt-in sent by takt: a confirmation email with a signed, expiring link; the click records the
confirmed grant.

1. :func:`confirmation_message` builds the email (intent ``service``: it asks, it does not advertise) to the
   address the grant names, with a link ``{base}/v1/confirm/{token}``. The token (sealed like every link,
   :mod:`takt.api.links`) names the profile, the purpose, the channel, a keyed hash of the address (never the
   address) and an expiry (``delivery.double_opt_in.link_hours``).
2. Until the click, the grant stays what it was (a claim, or an unconfirmed grant) and ``decide`` sends nothing
   for that purpose that needs a confirmed one.
3. The click (a POST from the page, so mail scanners that follow links confirm nothing) records a ``consent``
   grant by the customer for that purpose, channel and address with evidence method ``double_opt_in`` (the
   request's ip and user agent, when the confirmation was sent), with ``server`` trust: the customer answered a
   link takt signed and sent to that address. Policy counts it as confirmed and the address as given.

A confirmation goes at most once per address and purpose within ``delivery.double_opt_in.resend_hours``
(table ``double_opt_in_sent``, keyed by the address's hash): a sign-up form cannot be used to flood someone's
mailbox. An address on the suppression list for every purpose (hard bounce, erasure, admin) gets none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from takt.campaigns.model import OutboundMessage, message_id
from takt.services import services_of
from takt.storage.base import Storage

TOKEN_KIND = "doi"
SOURCE = "takt.double_opt_in"
DDL = """
CREATE TABLE IF NOT EXISTS double_opt_in_sent (
    hash    VARCHAR NOT NULL,
    purpose VARCHAR NOT NULL,
    sent_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (hash, purpose)
)
"""
SCHEMA_LOCK = 0x74616B74_000000D2  # "takt" · double opt-in schema

SUBJECT = "Please confirm your subscription"
TEXT = ("Hello,\n\nplease confirm that you want to receive {purpose} messages at this address:\n\n{link}\n\n"
        "The link works until {expires}. If you did not ask for this, ignore this email: nothing will be sent.\n")
HTML = ("<p>Hello,</p><p>please confirm that you want to receive {purpose} messages at this address:</p>"
        "<p><a href=\"{link}\">Confirm my subscription</a></p><p>The link works until {expires}. If you did not "
        "ask for this, ignore this email: nothing will be sent.</p>")


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What a token stands for once resolved: the person, the purpose, the channel and the address's hash."""

    profile_id: str
    purpose: str
    channel: str
    contact_hash: str
    expires: datetime
    requested_at: datetime


def token_claims(profile_id: str, purpose: str, channel: str, contact_hash: str, now: datetime,
                 expires: datetime) -> dict[str, Any]:
    return {"k": TOKEN_KIND, "p": profile_id, "pu": purpose, "ch": channel, "h": contact_hash,
            "at": int(now.timestamp()), "exp": int(expires.timestamp())}


def read_claims(claims: dict[str, Any]) -> Confirmation | None:
    """The confirmation a token's claims stand for; ``None`` when they are not a confirmation's."""
    if claims.get("k") != TOKEN_KIND or not all(isinstance(claims.get(f), str) for f in ("p", "pu", "ch", "h")) \
            or not all(isinstance(claims.get(f), int) for f in ("at", "exp")):
        return None
    return Confirmation(str(claims["p"]), str(claims["pu"]), str(claims["ch"]), str(claims["h"]),
                        datetime.fromtimestamp(int(claims["exp"]), UTC), datetime.fromtimestamp(int(claims["at"]), UTC))


def confirmation_message(profile_id: str, purpose: str, contact_point: str, link: str, now: datetime,
                         expires: datetime) -> OutboundMessage:
    """The confirmation email (one message id per person, purpose and hour asked)."""
    values = {"purpose": purpose, "link": link, "expires": expires.strftime("%Y-%m-%d %H:%M UTC")}
    mid = message_id("double-opt-in", 1, f"{purpose}:{now:%Y%m%d%H}", profile_id)
    return OutboundMessage(message_id=mid, campaign="double-opt-in", campaign_version=1, step=purpose,
                           profile_id=profile_id, intent="service", channel="email", contact_point=contact_point,
                           content={"subject": SUBJECT, "text": TEXT.format(**values),
                                    "html": HTML.format(**{**values, "link": link.replace('"', "%22")})})


class SentLog:
    """When a confirmation last went to an address for a purpose (hashes only)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        with storage.session(transaction=True) as s:
            s.lock(SCHEMA_LOCK)
            s.script(DDL)

    def claim(self, contact_hash: str, purpose: str, now: datetime, every: timedelta) -> bool:
        """Whether a confirmation may go now (and, if so, note it as sent): at most one per ``every``."""
        with self.storage.session(transaction=True) as s:
            s.lock(SCHEMA_LOCK)
            rows = s.execute("SELECT sent_at FROM double_opt_in_sent WHERE hash = ? AND purpose = ?",
                             [contact_hash, purpose])
            if rows:
                last = rows[0][0]
                last = last.astimezone(UTC) if last.tzinfo else last.replace(tzinfo=UTC)
                if now - last < every:
                    return False
                s.execute("UPDATE double_opt_in_sent SET sent_at = ? WHERE hash = ? AND purpose = ?",
                          [now, contact_hash, purpose])
            else:
                s.execute("INSERT INTO double_opt_in_sent VALUES (?, ?, ?)", [contact_hash, purpose, now])
        return True

    def release(self, contact_hash: str, purpose: str) -> None:
        """Forget a claim whose email could not be sent (so asking again works)."""
        with self.storage.session() as s:
            s.execute("DELETE FROM double_opt_in_sent WHERE hash = ? AND purpose = ?", [contact_hash, purpose])


def sent_log(storage: Storage) -> SentLog:
    return services_of(storage).store("campaigns.double_opt_in_sent", SentLog)

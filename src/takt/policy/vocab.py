"""The fixed vocabulary of contact policy: purposes, channels, statuses, actors and contact point kinds.

Every value here is part of the event format (``consent`` and ``message`` events) and of the reason texts, so
the names are stable; new values may be added, existing ones are never renamed.
"""

from __future__ import annotations

PURPOSES = ("marketing", "transactional", "service", "personalization", "third_party_sharing")
"""What a consent is for. ``marketing`` is direct marketing (GDPR Art. 21 applies to it)."""

MESSAGE_PURPOSES = ("marketing", "transactional", "service")
"""The purposes a message (an :class:`~takt.policy.decide.Intent`) can have."""

CHANNELS = ("email", "sms", "phone", "push", "post", "social_dm", "in_app")

CHANNEL_ORDER = ("email", "in_app", "push", "post", "sms", "social_dm", "phone")
"""The fixed fallback order for choosing a channel: least intrusive first. Used after the customer's stated
preference and their engagement (touchpoint counts)."""

STATUSES = ("granted", "withdrawn", "objected")
ACTORS = ("customer", "import", "admin", "third_party")

METHODS = (
    "double_opt_in",
    "single_opt_in",
    "web_form",
    "checkbox",
    "preference_center",
    "unsubscribe_link",
    "email_reply",
    "written",
    "verbal",
    "import",
    "api",
)
"""How a consent change was captured (``evidence.method``). ``double_opt_in`` is the confirmation of a grant
through a link sent to the contact point."""

CONTACT_KINDS = ("email", "phone", "push_token", "postal_address", "social")
"""What a contact point is. ``social`` values are ``network:handle`` (e.g. ``linkedin:ada-lovelace``)."""

CHANNEL_KIND: dict[str, str | None] = {
    "email": "email",
    "sms": "phone",
    "phone": "phone",
    "push": "push_token",
    "post": "postal_address",
    "social_dm": "social",
    "in_app": None,
}
"""The contact point kind each channel sends to. ``in_app`` messages are shown inside the customer's own
session and need no contact point."""

MESSAGE_STATUSES = ("sent", "delivered", "opened", "clicked", "bounced", "complained", "attempted", "failed")
"""``attempted``: recorded by campaigns before a message leaves (it counts in the budget until a ``failed`` says
it never left); ``failed``: the channel refused it."""
ENGAGED_STATUSES = ("opened", "clicked")


def normalize_contact_value(kind: str, value: str) -> str:
    """The one form of a contact point value that consent, suppression and policy compare.

    Emails and social handles are lowercased; phone numbers lose spaces, dashes, dots and brackets (the shell
    passes E.164 numbers as identity resolution produces them); postal addresses collapse whitespace.
    """
    v = value.strip()
    if kind == "email":
        return v.lower()
    if kind == "phone":
        return "".join(ch for ch in v if ch not in " -.()/")
    if kind == "social":
        network, sep, handle = v.partition(":")
        if not sep:
            return v.lower().lstrip("@")
        return f"{network.strip().lower()}:{handle.strip().lstrip('@').lower()}"
    if kind == "postal_address":
        return " ".join(v.split()).lower()
    return v

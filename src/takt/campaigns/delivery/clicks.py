"""Click tracking: links in a message's HTML rewritten to a signed redirect on takt's server
(``GET /v1/r/{token}``), which records ``clicked`` and answers 302 to the original address.

The token is sealed (:func:`takt.api.links.seal_claims`: authenticated encryption under the workspace's signing
secret): it carries the message id, profile id, channel, intent, campaign and the target URL, none of them
readable or alterable without the secret — so the redirect cannot be turned into an open redirect, and a
clicked link says nothing about the person to whoever sees it.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable
from typing import Any

from takt.campaigns.model import OutboundMessage

CLICK_KIND = "click"
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"'\s>]+)\2""", re.IGNORECASE)


def click_claims(message: OutboundMessage, url: str) -> dict[str, Any]:
    return {"k": CLICK_KIND, "m": message.message_id, "p": message.profile_id, "ch": message.channel,
            "i": message.intent, "c": message.campaign, "u": url}


def rewrite_links(html: str, link_for: Callable[[str], str], keep: Callable[[str], bool] = lambda u: False) -> str:
    """Every ``<a href="http(s)://…">`` in ``html`` pointed at ``link_for(url)``, except the URLs ``keep``
    spares (the unsubscribe and preference links, which must work as they are)."""
    def sub(m: re.Match[str]) -> str:
        url = html_lib.unescape(m.group(3))
        if keep(url):
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}{html_lib.escape(link_for(url))}{m.group(2)}"

    return _HREF.sub(sub, html)


def tracked(message: OutboundMessage, base_url: str, seal: Callable[[dict[str, Any]], str]) -> OutboundMessage:
    """The message with its HTML's links going through ``{base_url}/v1/r/{token}`` (its own takt links kept)."""
    html = message.content.get("html")
    if not html:
        return message
    base = base_url.rstrip("/")
    content = dict(message.content)
    content["html"] = rewrite_links(html, lambda url: f"{base}/v1/r/{seal(click_claims(message, url))}",
                                    keep=lambda url: url.startswith(base + "/"))
    return OutboundMessage(message.message_id, message.campaign, message.campaign_version, message.step,
                           message.profile_id, message.intent, message.channel, message.contact_point, content,
                           message.headers)

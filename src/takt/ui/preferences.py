"""HTML of the preference center: a plain, accessible page (no script, no external assets).

Pure rendering: :mod:`takt.api.preferences` gathers what the page shows into a :class:`PreferencePage` and
these functions turn it into HTML, escaping every value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

CHANNEL_NAMES = {"email": "Email", "sms": "Text messages (SMS)", "phone": "Phone calls", "push": "Push notifications",
                 "post": "Post", "social_dm": "Social media messages", "in_app": "Messages in our app"}
PURPOSE_NAMES = {"marketing": "Offers and news (marketing)", "service": "Service messages",
                 "personalization": "Personalized content", "third_party_sharing": "Sharing with partners",
                 "transactional": "Transactional messages"}
PROVENANCE_NAMES = {"customer_provided": "You gave it to us",
                    "crm_import": "From our customer records",
                    "observed": "Observed from your use of our services",
                    "third_party": "From a third party (a data provider)"}
STATUS_NAMES = {"granted": "On", "withdrawn": "Off (you withdrew it)", "objected": "Off (you objected)",
                "none": "Off (never given)"}

STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:0 auto;padding:1rem;line-height:1.5;color:#1a1a1a}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}
th,td{border:1px solid #999;padding:.4rem .6rem;text-align:left;vertical-align:top}
caption{text-align:left;font-weight:bold;padding:.3rem 0}
.notice{border:2px solid #1a7f37;padding:.6rem;background:#eaf7ee}
.warn{border:2px solid #b35900;padding:.6rem;background:#fff4e5}
button{font-size:1rem;padding:.5rem 1rem}
small{color:#444}
"""


@dataclass(frozen=True, slots=True)
class Cell:
    channel: str
    purpose: str
    status: str
    confirmed: bool
    since: str | None
    note: str = ""


@dataclass(frozen=True, slots=True)
class HeldItem:
    what: str
    value: str
    provenance: str
    source: str
    when: str | None
    note: str = ""


@dataclass(frozen=True, slots=True)
class MessageLine:
    sent_at: str
    channel: str
    intent: str
    campaign: str | None
    contact_point: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class PreferencePage:
    token: str
    channels: tuple[str, ...]
    purposes: tuple[str, ...]
    cells: dict[tuple[str, str], Cell]
    traits: tuple[HeldItem, ...] = ()
    contact_points: tuple[HeldItem, ...] = ()
    messages: tuple[MessageLine, ...] = ()
    saved: tuple[str, ...] = field(default=())


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _page(title: str, body: str) -> str:
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<meta name='robots' content='noindex'><title>{_e(title)}</title><style>{STYLE}</style></head>"
            f"<body><main>{body}</main></body></html>")


def refusal_page(message: str) -> str:
    return _page("Link not valid", f"<h1>This link is not valid</h1><p role='alert'>{_e(message)}</p>"
                                   "<p>Please use the newest link from one of our messages, or contact us.</p>")


def _held_table(caption: str, first: str, items: tuple[HeldItem, ...], test_id: str) -> str:
    if not items:
        return f"<p>{_e(caption)}: nothing.</p>"
    rows = "".join(
        f"<tr><th scope='row'>{_e(i.what)}</th><td>{_e(i.value)}</td>"
        f"<td>{_e(PROVENANCE_NAMES.get(i.provenance, i.provenance))} <small>({_e(i.provenance)})</small>"
        f"{'<br><strong>' + _e(i.note) + '</strong>' if i.note else ''}</td>"
        f"<td>{_e(i.source)}</td><td>{_e(i.when or 'unknown')}</td></tr>"
        for i in items)
    return (f"<table data-testid='{test_id}'><caption>{_e(caption)}</caption><thead><tr><th scope='col'>{_e(first)}</th>"
            "<th scope='col'>Value</th><th scope='col'>Where it came from</th><th scope='col'>Source</th>"
            f"<th scope='col'>When</th></tr></thead><tbody>{rows}</tbody></table>")


def preference_page(p: PreferencePage) -> str:
    parts = ["<h1>Your preferences</h1>"]
    if p.saved:
        items = "".join(f"<li>{_e(s)}</li>" for s in p.saved)
        parts.append(f"<div class='notice' role='status' id='saved'><p><strong>Your changes are saved.</strong> "
                     f"They apply from now on.</p><ul>{items}</ul></div>")
    parts.append("<h2 id='contact'>How we may contact you</h2>")
    if not p.channels:
        parts.append("<p>We hold no way to contact you.</p>")
    else:
        head = "".join(f"<th scope='col'>{_e(PURPOSE_NAMES.get(pu, pu))}</th>" for pu in p.purposes)
        rows = []
        for ch in p.channels:
            cells = []
            for pu in p.purposes:
                c = p.cells[(ch, pu)]
                name = f"pref:{ch}:{pu}"
                label = f"{CHANNEL_NAMES.get(ch, ch)}: {PURPOSE_NAMES.get(pu, pu)}"
                state = STATUS_NAMES.get(c.status, c.status)
                if c.status == "granted" and not c.confirmed and ch == "email" and pu == "marketing":
                    state += " (waiting for your confirmation by email)"
                since = f" since {c.since[:10]}" if c.since else ""
                note = f"<br><small>{_e(c.note)}</small>" if c.note else ""
                cells.append(
                    f"<td><input type='hidden' name='shown' value='{_e(ch)}:{_e(pu)}'>"
                    f"<label><input type='checkbox' name='{_e(name)}' id='{_e(name)}' "
                    f"{'checked ' if c.status == 'granted' else ''}aria-label='{_e(label)}'> "
                    f"<span data-testid='state-{_e(ch)}-{_e(pu)}'>{_e(state)}</span></label>"
                    f"<small>{_e(since)}</small>{note}</td>")
            rows.append(f"<tr><th scope='row'>{_e(CHANNEL_NAMES.get(ch, ch))}</th>{''.join(cells)}</tr>")
        parts.append(
            f"<form method='post' action='/p/{_e(p.token)}'><input type='hidden' name='token' value='{_e(p.token)}'>"
            "<table><caption>Tick what you agree to; untick to withdraw.</caption>"
            f"<thead><tr><th scope='col'>Channel</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            "<button type='submit'>Save my preferences</button></form>")
    parts.append("<h2 id='held'>What we hold about you</h2>")
    parts.append(_held_table("Your contact details", "Kind", p.contact_points, "contact-points"))
    parts.append(_held_table("Other information", "Name", p.traits, "traits"))
    parts.append("<h2 id='messages'>Recent messages</h2>")
    if not p.messages:
        parts.append("<p>We have not sent you any messages.</p>")
    else:
        rows_m = "".join(
            f"<tr><td>{_e(m.sent_at)}</td><td>{_e(CHANNEL_NAMES.get(m.channel, m.channel))}</td>"
            f"<td>{_e(m.contact_point or '')}</td><td>{_e(PURPOSE_NAMES.get(m.intent, m.intent))}"
            f"{' — ' + _e(m.campaign) if m.campaign else ''}</td><td>{_e(m.reason)}</td></tr>"
            for m in p.messages)
        parts.append("<table data-testid='messages'><caption>The newest first</caption><thead><tr>"
                     "<th scope='col'>Sent</th><th scope='col'>Channel</th><th scope='col'>To</th>"
                     "<th scope='col'>What for</th><th scope='col'>Why it was allowed</th></tr></thead>"
                     f"<tbody>{rows_m}</tbody></table>")
    return _page("Your preferences", "".join(parts))

"""HTML of the preference center: a plain, accessible page (no script, no external assets).

Pure rendering: :mod:`takt.api.preferences` gathers what the page shows into a :class:`PreferencePage` and
these functions turn it into HTML, escaping every value, in the page's language: every text comes from the
language's :class:`~takt.ui.texts.PreferenceTexts` (:mod:`takt.ui.texts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from takt.ui.texts import PreferenceTexts
from takt.ui.texts.en import TEXTS as EN

CHANNEL_NAMES = EN.channel_names
PURPOSE_NAMES = EN.purpose_names
PROVENANCE_NAMES = EN.provenance_names
STATUS_NAMES = EN.status_names
"""The English names (every language's texts are in :mod:`takt.ui.texts`)."""

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
    texts: PreferenceTexts = EN


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _page(title: str, body: str, lang: str) -> str:
    return (f"<!doctype html><html lang='{_e(lang)}'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<meta name='robots' content='noindex'><title>{_e(title)}</title><style>{STYLE}</style></head>"
            f"<body><main>{body}</main></body></html>")


def refusal_page(message: str, t: PreferenceTexts = EN) -> str:
    return _page(t.refusal_title, f"<h1>{_e(t.refusal_heading)}</h1><p role='alert'>{_e(message)}</p>"
                                  f"<p>{_e(t.refusal_hint)}</p>", t.lang)


def _held_table(caption: str, first: str, items: tuple[HeldItem, ...], test_id: str, t: PreferenceTexts) -> str:
    if not items:
        return f"<p>{_e(t.nothing.format(caption=caption))}</p>"
    rows = "".join(
        f"<tr><th scope='row'>{_e(i.what)}</th><td>{_e(i.value)}</td>"
        f"<td>{_e(t.provenance_names.get(i.provenance, i.provenance))} <small>({_e(i.provenance)})</small>"
        f"{'<br><strong>' + _e(i.note) + '</strong>' if i.note else ''}</td>"
        f"<td>{_e(i.source)}</td><td>{_e(i.when or t.unknown)}</td></tr>"
        for i in items)
    return (f"<table data-testid='{test_id}'><caption>{_e(caption)}</caption><thead><tr><th scope='col'>{_e(first)}</th>"
            f"<th scope='col'>{_e(t.value_col)}</th><th scope='col'>{_e(t.came_from_col)}</th>"
            f"<th scope='col'>{_e(t.source_col)}</th><th scope='col'>{_e(t.when_col)}</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def preference_page(p: PreferencePage) -> str:
    t = p.texts
    parts = [f"<h1>{_e(t.title)}</h1>"]
    if p.saved:
        items = "".join(f"<li>{_e(s)}</li>" for s in p.saved)
        parts.append(f"<div class='notice' role='status' id='saved'><p><strong>{_e(t.saved_heading)}</strong> "
                     f"{_e(t.saved_hint)}</p><ul>{items}</ul></div>")
    parts.append(f"<h2 id='contact'>{_e(t.contact_heading)}</h2>")
    if not p.channels:
        parts.append(f"<p>{_e(t.no_channels)}</p>")
    else:
        head = "".join(f"<th scope='col'>{_e(t.purpose_names.get(pu, pu))}</th>" for pu in p.purposes)
        rows = []
        for ch in p.channels:
            cells = []
            for pu in p.purposes:
                c = p.cells[(ch, pu)]
                name = f"pref:{ch}:{pu}"
                label = f"{t.channel_names.get(ch, ch)}: {t.purpose_names.get(pu, pu)}"
                state = t.status_names.get(c.status, c.status)
                if c.status == "granted" and not c.confirmed and ch == "email" and pu == "marketing":
                    state += t.email_unconfirmed
                since = t.since.format(date=c.since[:10]) if c.since else ""
                note = f"<br><small>{_e(c.note)}</small>" if c.note else ""
                cells.append(
                    f"<td><input type='hidden' name='shown' value='{_e(ch)}:{_e(pu)}'>"
                    f"<label><input type='checkbox' name='{_e(name)}' id='{_e(name)}' "
                    f"{'checked ' if c.status == 'granted' else ''}aria-label='{_e(label)}'> "
                    f"<span data-testid='state-{_e(ch)}-{_e(pu)}'>{_e(state)}</span></label>"
                    f"<small>{_e(since)}</small>{note}</td>")
            rows.append(f"<tr><th scope='row'>{_e(t.channel_names.get(ch, ch))}</th>{''.join(cells)}</tr>")
        parts.append(
            f"<form method='post' action='/p/{_e(p.token)}'><input type='hidden' name='token' value='{_e(p.token)}'>"
            f"<table><caption>{_e(t.table_caption)}</caption>"
            f"<thead><tr><th scope='col'>{_e(t.channel_col)}</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
            f"</table><button type='submit'>{_e(t.save_button)}</button></form>")
    parts.append(f"<h2 id='held'>{_e(t.held_heading)}</h2>")
    parts.append(_held_table(t.contact_details, t.kind_col, p.contact_points, "contact-points", t))
    parts.append(_held_table(t.other_info, t.name_col, p.traits, "traits", t))
    parts.append(f"<h2 id='messages'>{_e(t.messages_heading)}</h2>")
    if not p.messages:
        parts.append(f"<p>{_e(t.no_messages)}</p>")
    else:
        rows_m = "".join(
            f"<tr><td>{_e(m.sent_at)}</td><td>{_e(t.channel_names.get(m.channel, m.channel))}</td>"
            f"<td>{_e(m.contact_point or '')}</td><td>{_e(t.purpose_names.get(m.intent, m.intent))}"
            f"{' — ' + _e(m.campaign) if m.campaign else ''}</td><td>{_e(m.reason)}</td></tr>"
            for m in p.messages)
        parts.append(f"<table data-testid='messages'><caption>{_e(t.newest_first)}</caption><thead><tr>"
                     f"<th scope='col'>{_e(t.sent_col)}</th><th scope='col'>{_e(t.channel_col)}</th>"
                     f"<th scope='col'>{_e(t.to_col)}</th><th scope='col'>{_e(t.what_for_col)}</th>"
                     f"<th scope='col'>{_e(t.why_col)}</th></tr></thead><tbody>{rows_m}</tbody></table>")
    return _page(t.title, "".join(parts), t.lang)

"""The words of the customer-facing pages (the preference center), one module per language.

Each language module (:mod:`takt.ui.texts.en`, :mod:`takt.ui.texts.de`) holds every text of the pages in one
:class:`PreferenceTexts`; :func:`texts_for` picks one for a language tag (``de``, ``de-DE``, ``de_AT``, …),
English when takt has no texts for it. Texts with ``{placeholders}`` are filled with :meth:`str.format`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True, slots=True)
class PreferenceTexts:
    lang: str
    channel_names: Mapping[str, str]
    purpose_names: Mapping[str, str]
    provenance_names: Mapping[str, str]
    status_names: Mapping[str, str]
    email_unconfirmed: str
    """After the state of an email marketing grant that is not confirmed by double opt-in (it promises no
    email: takt sends none)."""
    title: str
    saved_heading: str
    saved_hint: str
    saved_on: str
    saved_off: str
    nothing_changed: str
    contact_heading: str
    no_channels: str
    table_caption: str
    channel_col: str
    save_button: str
    since: str
    for_contact_point: str
    held_heading: str
    contact_details: str
    kind_col: str
    other_info: str
    name_col: str
    nothing: str
    value_col: str
    came_from_col: str
    source_col: str
    when_col: str
    unknown: str
    held_never_send: str
    held_marketing_blocked: str
    held_never_used: str
    messages_heading: str
    no_messages: str
    newest_first: str
    sent_col: str
    to_col: str
    what_for_col: str
    why_col: str
    intent_words: Mapping[str, str]
    """A message's intent as a word in :attr:`why_not_marketing` (``transactional``, ``service``)."""
    why_not_marketing: str
    why_granted: str
    why_confirmed: str
    why_no_consent: str
    unknown_method: str
    refusal_title: str
    refusal_heading: str
    refusal_hint: str
    refusals: Mapping[str, str]
    """Why a link is refused, by key (``damaged``, ``altered``, ``unreadable``, ``not_preferences``,
    ``expired``, ``gone``, ``other_form``)."""


def _languages() -> dict[str, PreferenceTexts]:
    from takt.ui.texts import de, en

    return {t.lang: t for t in (en.TEXTS, de.TEXTS)}


def languages() -> tuple[str, ...]:
    """The languages takt has texts for."""
    return tuple(_languages())


def language_of(tag: object) -> str | None:
    """The language takt has texts for that a tag names (``de-DE`` → ``de``), else ``None``."""
    if not isinstance(tag, str) or not tag.strip():
        return None
    primary = tag.strip().replace("_", "-").split("-")[0].lower()
    return primary if primary in _languages() else None


def from_accept_language(header: str | None) -> str | None:
    """The first language of an ``Accept-Language`` header (by weight) takt has texts for."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        ranked.append((-weight, i, tag))
    for weight, _, tag in sorted(ranked):
        found = language_of(tag)
        if found is not None and weight < 0:
            return found
    return None


def texts_for(*tags: object) -> PreferenceTexts:
    """The texts for the first tag takt has a language for; English otherwise."""
    known = _languages()
    for tag in _flatten(tags):
        found = language_of(tag)
        if found is not None:
            return known[found]
    return known[DEFAULT_LANGUAGE]


def _flatten(tags: Iterable[object]) -> Iterable[object]:
    for tag in tags:
        if isinstance(tag, list | tuple):
            yield from tag
        else:
            yield tag

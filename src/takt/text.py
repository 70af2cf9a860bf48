"""Small helpers for English texts built from parts: the right indefinite article, sentences joined."""

from __future__ import annotations

import re
from collections.abc import Iterable

_CONSONANT_SOUND = re.compile(r"^(one|once|uni|use|usu|ura|ure|uro|eu|ewe)", re.IGNORECASE)
_VOWEL_SOUND = re.compile(r"^(hour|honest|honou?r|heir)", re.IGNORECASE)
_LETTERS_WITH_VOWEL_SOUND = "AEFHILMNORSX"


def article(word: str) -> str:
    """``word`` with ``a`` or ``an`` before it, by how it sounds: an identify, a user, an SMS, an hour."""
    return f"{'an' if _vowel_sound(word) else 'a'} {word}"


def _vowel_sound(word: str) -> bool:
    if not word:
        return False
    if len(word) > 1 and word.isupper():  # an initialism is read letter by letter: an SMS, a URL
        return word[0] in _LETTERS_WITH_VOWEL_SOUND and not word.startswith("U")
    if _VOWEL_SOUND.match(word):
        return True
    if _CONSONANT_SOUND.match(word):
        return False
    return word[0].lower() in "aeiou"


def sentences(parts: Iterable[str]) -> str:
    """Sentences joined by a space, each ending with a full stop (never ``"channel.; The"``)."""
    out = []
    for part in parts:
        s = part.strip()
        if s:
            out.append(s if s[-1] in ".!?" else s + ".")
    return " ".join(out)

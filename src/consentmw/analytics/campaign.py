"""Campaign parameters (``utm_source``, ``utm_medium``, ``utm_campaign``) from a query string.

The request log never stores query strings: they carry search terms, e-mail addresses,
reset tokens and session ids. These three parameters are the exception analytics needs,
and even they are filled in by whoever writes a link, so only short, plain values are
kept: letters, digits, ``. _ - +`` and spaces, at most 64 characters, and nothing that
looks like an identifier (long random-looking words, long digit runs such as phone
numbers). Every other parameter is ignored.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

__all__ = ["UTM_FIELDS", "campaign", "clean_value"]

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign")
MAX_VALUE_LENGTH = 64
MAX_QUERY_LENGTH = 4096  # longer query strings are read up to here only

_ALLOWED = re.compile(r"^[A-Za-z0-9._\-+ ]{1,64}$")
_WORDS = re.compile(r"[._\-+ ]+")
_DIGITS = re.compile(r"\d{6,}")
_HEX = re.compile(r"^[0-9a-fA-F]+$")


def _token_like(word: str) -> bool:
    if len(word) >= 24:
        return True
    has_digit = any(c.isdigit() for c in word)
    has_alpha = any(c.isalpha() for c in word)
    if len(word) >= 12 and has_digit and has_alpha:
        return True  # a random id, a UUID's last group, a base64 token
    return len(word) >= 8 and has_digit and has_alpha and bool(_HEX.match(word))


def clean_value(raw: str) -> str | None:
    """The value if it is short and plain, else ``None``."""
    value = " ".join(raw.split())  # trim and fold runs of spaces
    if not value or not _ALLOWED.match(value) or _DIGITS.search(value):
        return None
    if any(_token_like(word) for word in _WORDS.split(value) if word):
        return None
    return value


def campaign(query: bytes | str | None) -> dict[str, str | None]:
    """``{"utm_source": ..., "utm_medium": ..., "utm_campaign": ...}``, ``None`` where absent.

    The first occurrence of each parameter counts; names are matched case-insensitively.
    """
    found: dict[str, str | None] = dict.fromkeys(UTM_FIELDS)
    if not query:
        return found
    if isinstance(query, bytes):
        query = query[:MAX_QUERY_LENGTH].decode("latin-1")
    else:
        query = query[:MAX_QUERY_LENGTH]
    if "utm_" not in query.lower():
        return found
    seen: set[str] = set()
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        name = name.strip().lower()
        if name not in found or name in seen:
            continue
        seen.add(name)
        try:
            decoded = unquote_plus(value, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            continue
        found[name] = clean_value(decoded)
    return found

"""Request paths as logs may keep them: no query material, no path parameters, no tokens.

A path is data the visitor's browser chose, and links carry secrets in it: password-reset
and e-mail verification links (``/reset/8f14e45fceea167a5a36dedd4bea2543``), session ids
as path parameters (``/cart;jsessionid=1A2B3C``), a query string hidden behind an encoded
``?`` (``/x%3Ftoken=abc`` decodes to ``/x?token=abc``). :func:`clean_path` takes the
decoded path and keeps what a page-view count needs: the route's shape.

Token-like segments become :data:`TOKEN`. A segment is token-like when it is, or holds a
word (a run between ``-``, ``_``, ``.`` and ``~``) that is:

- a UUID, or 16 or more hexadecimal digits;
- 16 or more letters and digits with both in it (``a1b2c3...``);
- JWT-like: ``eyJ...`` with a dot, or three dot-separated base64url parts of 10+ each;
- base64url of 20 or more characters with a word that is not written the way people
  write words (``Ab3dE``, ``xQzT``); ``How-To-Install-Python-3`` and ``iPhone-15`` stay.

Ordinary slugs (``/blog/how-to-install-python-3-11``, ``/produkter/sms-gateway``) stay.
Site-specific rules (customer numbers, e-mail addresses in paths) go in the request
log's ``redact_path``, which receives the path after these rules.
"""

from __future__ import annotations

import re
from itertools import pairwise

__all__ = ["TOKEN", "clean_path", "is_token_like"]

TOKEN = ":token"

_WORD_SPLIT = re.compile(r"[-_.~]+")
_HEX = re.compile(r"[0-9A-Fa-f]{16,}")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_ALNUM_MIXED = re.compile(r"(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{16,}")
_BASE64URL = re.compile(r"[A-Za-z0-9_\-]{20,}")
_JWT = re.compile(r"[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}")
#: A word as people write them: lower case or camelCase (iPhone), Capitalised or CamelCase
#: with an acronym at either end (OAuth2, FastAPI), an acronym (HDR, Q3), a short tag
#: (v2, mp3, x86), a number or a number with a short unit (4K, 11ax).
_NATURAL_WORD = re.compile(
    r"[a-z]+(?:[A-Z][a-z]+)*(?:[A-Z]{2,6})?[0-9]{0,4}"
    r"|(?:[A-Z]{1,6}(?=[A-Z][a-z]))?(?:[A-Z][a-z]+)+(?:[A-Z]{2,6})?[0-9]{0,4}"
    r"|[A-Z]{1,6}[0-9]{0,4}|[a-z]{1,3}[0-9]{1,4}|[0-9]+|[0-9]{1,4}[A-Za-z]{1,3}"
)


def _natural(word: str) -> bool:
    if not _NATURAL_WORD.fullmatch(word):
        return False
    # Random letters can look CamelCase too, with many short humps: words have at least
    # two small letters per hump (ListOfAllProducts: 14 to 5).
    humps = sum(1 for a, b in pairwise(word) if a.isupper() and b.islower())
    return humps <= 1 or 2 * humps <= sum(1 for c in word if c.islower())


#: Changes between small letters, capitals and digits inside words that make a base64url
#: segment random: 20 random characters have about 11, ``ListOfAllProductsInTheStore`` 6.
_MIN_CHANGES = 7


def _case_changes(words: list[str]) -> int:
    changes = 0
    for word in words:
        kinds = [0 if c.isdigit() else 1 if c.islower() else 2 for c in word]
        for i in range(1, len(kinds)):
            # A capital followed by a small letter is how words are spelt (Python, OfAll).
            if kinds[i] != kinds[i - 1] and not (kinds[i - 1] == 2 and kinds[i] == 1):
                changes += 1
    return changes


def is_token_like(segment: str) -> bool:
    """Whether one path segment (no ``/``) looks like a secret or an identifier."""
    if len(segment) < 16:
        return False
    if _UUID.search(segment) or _JWT.fullmatch(segment):
        return True
    if segment.startswith("eyJ") and "." in segment:
        return True
    for word in _WORD_SPLIT.split(segment):
        if _HEX.fullmatch(word) or _ALNUM_MIXED.fullmatch(word):
            return True
    if not _BASE64URL.fullmatch(segment):
        return False
    words = _WORD_SPLIT.split(segment)
    return not all(_natural(word) for word in words) or _case_changes(words) >= _MIN_CHANGES


def clean_path(path: str) -> str:
    """``path`` (percent-decoded) without query, fragment, path parameters and tokens.

    Everything from the first ``?`` or ``#`` is cut (after decoding, so ``%3F`` counts),
    ``;...`` is dropped from every segment, and token-like segments become ``:token``.
    """
    for mark in ("?", "#"):
        cut = path.find(mark)
        if cut >= 0:
            path = path[:cut]
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if ";" in segment:
            segment = segment.split(";", 1)[0]
        if is_token_like(segment):
            segment = TOKEN
        segments[i] = segment
    return "/".join(segments) or "/"

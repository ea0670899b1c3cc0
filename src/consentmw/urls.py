"""URL helpers: return addresses, origins, and URLs with their secrets redacted.

A return address ("next") travels from the page into a form field and back out as a
``Location`` header, which is latin-1 bytes on the wire and read as percent-encoded
UTF-8 by browsers. So it is built from the bytes the browser sent and kept ASCII end to
end: ``/søk`` stays ``/s%C3%B8k``, never ``/s\\xf8k`` (which a browser reads as
``/s%F8k``) and never a character that cannot be sent at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, quote, urlsplit

MAX_NEXT = 2048
Origin = tuple[str, str, int]  # scheme, lower-case host, port

# Printable ASCII is kept as the browser sent it (escapes included), except '\\', which
# browsers read as '/'. Everything else is percent-encoded, as is a '%' starting no escape.
_KEEP = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "\\")
_DECODED_KEEP = _KEEP.translate({ord("%"): None, ord("?"): None, ord("#"): None})
_LONE_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_NEXT_CHARS = re.compile(r"^/[\x21-\x7e]*$")  # printable ASCII only, no space
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SECRET_QUERY = re.compile(r"((?:^|[?&;])(?:password|passwd|pwd|secret|token)=)[^&;#]*", re.I)


def return_path(scope: Mapping[str, Any]) -> str:
    """The address of this request as an ASCII path and query, for a form to return to.

    Built from ``raw_path`` (the bytes the browser sent); without one, from ``path``
    encoded as UTF-8. Bytes that are not allowed in a URL are percent-encoded, so the
    result is always ASCII and safe to send in a ``Location`` header.
    """
    raw = scope.get("raw_path")
    if isinstance(raw, bytes | bytearray) and raw.startswith(b"/"):
        raw = bytes(raw).split(b"?", 1)[0]  # some servers leave the query in raw_path
        path = quote(_LONE_PERCENT.sub(b"%25", raw), safe=_KEEP)
    else:  # ``path`` is decoded: a '%', '?' or '#' in it was an escape in the request
        decoded = str(scope.get("path") or "/").encode("utf-8", "surrogateescape")
        path = quote(decoded, safe=_DECODED_KEEP)
    query = scope.get("query_string") or b""
    if not query:
        return path
    return path + "?" + quote(_LONE_PERCENT.sub(b"%25", bytes(query)), safe=_KEEP)


def safe_next(value: str | None) -> str:
    """``value`` when it is a path on this site, else ``/`` (no open redirects).

    Percent-encoded UTF-8 is kept as it is; anything else outside printable ASCII (raw
    non-ASCII, spaces, control characters) is refused, so the result always fits a
    ``Location`` header. Refused too: other hosts (``//host``, ``/\\host``, a scheme) and
    addresses over 2,048 characters.
    """
    if not value or len(value) > MAX_NEXT or not _NEXT_CHARS.match(value):
        return "/"
    if value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def parse_origin(value: str) -> Origin | None:
    """``(scheme, host, port)`` of an ``Origin``-style value, or None when it is not one.

    Only http(s); the port defaults by scheme, so ``https://a.no`` equals
    ``https://a.no:443``. A path, query, fragment or user name means it is not an origin.
    """
    if not value.isascii() or any(ch <= " " or ch == "\x7f" for ch in value):
        return None  # browsers send IDNs as punycode; urlsplit would drop tabs silently
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    if parts.path or parts.query or parts.fragment or value.endswith(("?", "#")):
        return None
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def origin_of_url(value: str) -> Origin | None:
    """The origin of a full URL such as a ``Referer``, or None."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return parse_origin(SplitResult(parts.scheme, parts.netloc, "", "", "").geturl())


def request_origin(scheme: str, host: str) -> Origin | None:
    """The origin a request was sent to: the scope's scheme and the ``Host`` header."""
    if not host or "/" in host or "@" in host:
        return None
    return parse_origin(f"{scheme}://{host}")


def redact_url(value: str) -> str:
    """``value`` without a password in its user info or its query, for repr and logs."""
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return "<unparsable URL, redacted>"
    if password:
        user, _, host = parts.netloc.rpartition("@")
        name = user.split(":", 1)[0]
        parts = parts._replace(netloc=f"{name}:***@{host}")
    if parts.query:
        parts = parts._replace(query=_SECRET_QUERY.sub(r"\1***", parts.query))
    return parts.geturl()

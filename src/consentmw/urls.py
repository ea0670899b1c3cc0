"""URL helpers: return addresses, origins, and URLs with their secrets redacted.

A return address ("next") comes from the ``Referer`` of a form's request (or from a
``next`` our own pages pass on) and leaves as a ``Location`` header, which is latin-1
bytes on the wire and read as percent-encoded UTF-8 by browsers. Browsers send the
Referer percent-encoded, so it is kept as sent and must be printable ASCII: ``/s%C3%B8k``
stays as it is, and a raw ``/søk`` (never sent by a browser) is refused.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, unquote, urlsplit

MAX_NEXT = 2048
Origin = tuple[str, str, int]  # scheme, lower-case host, port

_NEXT_CHARS = re.compile(r"^/[\x21-\x7e]*$")  # printable ASCII only, no space
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SECRET_QUERY = re.compile(r"((?:^|[?&;])(?:password|passwd|pwd|secret|token)=)[^&;#]*", re.I)


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


def referer_next(referer: str, site: frozenset[Origin], prefix: str) -> str | None:
    """The page a ``Referer`` names, as a return address, when it is on the site.

    ``site`` holds the origins that count as the site; a page under ``prefix`` (consentmw's
    own pages) does not count, nor does anything :func:`safe_next` refuses. Pages carry no
    return address of their own: the browser names the page a form or link was on (with its
    default policy, ``strict-origin-when-cross-origin``, the full address on the same site).
    """
    if not referer or len(referer) > 2 * MAX_NEXT:
        return None
    try:
        parts = urlsplit(referer)
    except ValueError:
        return None
    if parse_origin(f"{parts.scheme}://{parts.netloc}") not in site:
        return None
    path = parts.path or "/"
    decoded = unquote(path)  # the server routes /%5Fconsent/ to our pages too
    if decoded == prefix or decoded.startswith(prefix + "/"):
        return None
    value = path + "?" + parts.query if parts.query else path
    checked = safe_next(value)
    return checked if checked == value else None


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

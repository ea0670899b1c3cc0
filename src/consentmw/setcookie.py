"""Reading cookie names out of headers, and writing the headers that delete cookies.

Only names matter for enforcement, so nothing here parses more of a ``Set-Cookie`` value
than the name. Every function takes any bytes and never raises.
"""

from __future__ import annotations

import ipaddress
import re

_EXPIRED = "Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"

#: How much of a ``Cookie`` header is read: its first 256 cookies, names up to 256 bytes.
#: Browsers keep at most 180 cookies per site (Chrome; Firefox 150) and send them all in
#: one header, so a browser's consent cookie is always among the first 256; a header with
#: more was not written by a browser, and the rest of it is ignored.
MAX_REQUEST_COOKIES = 256
MAX_COOKIE_NAME = 256
#: Hosts with more labels than this give no ``Domain=`` variants (no real site has them).
MAX_HOST_LABELS = 10
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


def set_cookie_name(value: bytes) -> str:
    """The cookie name of one ``Set-Cookie`` header value (``""`` for a nameless cookie).

    Follows RFC 6265 section 5.2: the name is what precedes the first ``=`` of the first
    ``;``-separated part, trimmed; a part without ``=`` names no cookie.
    """
    first = value.split(b";", 1)[0]
    name, eq, _ = first.partition(b"=")
    if not eq:
        return ""
    return name.strip(b" \t").decode("latin-1")


def _request_cookies(cookie_header: bytes) -> list[bytes]:
    """The first :data:`MAX_REQUEST_COOKIES` ``;``-separated parts of a Cookie header."""
    parts = cookie_header.split(b";", MAX_REQUEST_COOKIES)
    if len(parts) > MAX_REQUEST_COOKIES:
        del parts[MAX_REQUEST_COOKIES:]  # the unsplit rest
    return parts


def request_cookie_names(cookie_header: bytes) -> tuple[str, ...]:
    """Names of the cookies a request carries (duplicates kept once, order kept).

    Only the first :data:`MAX_REQUEST_COOKIES` cookies are read, and names longer than
    :data:`MAX_COOKIE_NAME` bytes are skipped: no browser sends more.
    """
    names: dict[str, None] = {}
    for part in _request_cookies(cookie_header):
        name, eq, _ = part.partition(b"=")
        if eq:
            name = name.strip(b" \t")
            if name and len(name) <= MAX_COOKIE_NAME:
                names[name.decode("latin-1")] = None
    return tuple(names)


def request_cookie(cookie_header: bytes, wanted: str) -> str | None:
    """The value of cookie ``wanted`` among a Cookie header's first cookies, or None.

    The first one wins; only the first :data:`MAX_REQUEST_COOKIES` cookies are read.
    """
    key = wanted.encode("latin-1")
    for part in _request_cookies(cookie_header):
        name, eq, value = part.partition(b"=")
        if eq and name.strip(b" \t") == key:
            return value.strip(b" \t").strip(b'"').decode("latin-1")
    return None


def cookie_domains(host: str) -> tuple[str, ...]:
    """The host and each parent domain but the top-level one, for ``Domain=`` deletion.

    ``www.example.no`` gives ``("www.example.no", "example.no")``: a ``_ga`` set on
    ``.example.no`` can only be deleted with a header naming that domain. IP addresses and
    single-label hosts (``localhost``) give nothing: only host-only cookies exist there.
    Nor does anything that is not a DNS name of at most 253 bytes and
    :data:`MAX_HOST_LABELS` labels: the Host header is the client's to write, and what it
    gives must not grow or change the ``Set-Cookie`` headers sent back.
    """
    if len(host) > 260:  # a name, a colon and a port at most
        return ()
    host = host.strip().rstrip(".").lower()
    if host.startswith("["):
        return ()
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    try:
        ipaddress.ip_address(host)
        return ()
    except ValueError:
        pass
    labels = host.split(".")
    if not 2 <= len(labels) <= MAX_HOST_LABELS or len(host) > 253:
        return ()
    if not all(_LABEL.fullmatch(label) for label in labels):
        return ()
    return tuple(".".join(labels[i:]) for i in range(len(labels) - 1))


def expire_headers(name: str, host: str, secure: bool = False) -> list[bytes]:
    """``Set-Cookie`` values that delete ``name`` host-only and on every parent domain."""
    tail = f"; Path=/; {_EXPIRED}" + ("; Secure" if secure else "")
    values = [f"{name}=" + tail]
    values += [f"{name}={tail}; Domain={domain}" for domain in cookie_domains(host)]
    return [v.encode("latin-1") for v in values]


def consent_cookie_header(
    name: str,
    value: str,
    *,
    max_age: int,
    secure: bool,
    domain: str | None = None,
) -> bytes:
    """The consent cookie: written by the server (Safari caps script-written ones at 7 days)."""
    parts = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", "SameSite=Lax", "HttpOnly"]
    if domain:
        parts.append(f"Domain={domain}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts).encode("latin-1")

"""Reading cookie names out of headers, and writing the headers that delete cookies.

Only names matter for enforcement, so nothing here parses more of a ``Set-Cookie`` value
than the name. Every function takes any bytes and never raises.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

_EXPIRED = "Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"


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


@lru_cache(maxsize=1024)
def request_cookie_names(cookie_header: bytes) -> tuple[str, ...]:
    """Names of the cookies a request carries (duplicates kept once, order kept).

    Cached: a visitor sends the same Cookie header on every request until a cookie changes.
    """
    names: dict[str, None] = {}
    for part in cookie_header.split(b";"):
        name, eq, _ = part.partition(b"=")
        if eq:
            name = name.strip(b" \t")
            if name:
                names[name.decode("latin-1")] = None
    return tuple(names)


@lru_cache(maxsize=1024)
def request_cookie(cookie_header: bytes, wanted: str) -> str | None:
    """The value of cookie ``wanted`` in a ``Cookie`` header (first one wins), or None."""
    key = wanted.encode("latin-1")
    for part in cookie_header.split(b";"):
        name, eq, value = part.partition(b"=")
        if eq and name.strip(b" \t") == key:
            return value.strip(b" \t").strip(b'"').decode("latin-1")
    return None


@lru_cache(maxsize=1024)
def cookie_domains(host: str) -> tuple[str, ...]:
    """The host and each parent domain but the top-level one, for ``Domain=`` deletion.

    ``www.example.no`` gives ``("www.example.no", "example.no")``: a ``_ga`` set on
    ``.example.no`` can only be deleted with a header naming that domain. IP addresses and
    single-label hosts (``localhost``) give nothing: only host-only cookies exist there.
    """
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
    if len(labels) < 2 or not all(labels) or len(host) > 253:
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

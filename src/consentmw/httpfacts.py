"""Small facts read from HTTP headers: is this a page navigation, may a cache share it.

Pure functions over raw ASGI header values, used to decide where a per-visitor cookie
may go: only on a top-level page, never on a response a shared cache may hand to others.
"""

from __future__ import annotations

from collections.abc import Mapping

from .cache import memoize

RawHeaders = list[tuple[bytes, bytes]]

_SHARED = (b"public", b"s-maxage", b"max-age")
_PRIVATE = (b"private", b"no-store")


_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@memoize(256, 64 * 1024, max_key=255)
def is_local_host(host: str) -> bool:
    """A development host (``localhost``, ``*.localhost``, ``127.0.0.1``, ``::1``; any port),
    where browsers treat plain http as secure enough to test with."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    return name in _LOCAL_HOSTS or name.endswith(".localhost")


def is_navigation(headers: Mapping[bytes, bytes], method: str) -> bool:
    """A top-level page load: ``Sec-Fetch-Dest: document``, or (browsers without Fetch
    Metadata) a GET whose ``Accept`` asks for HTML."""
    dest = headers.get(b"sec-fetch-dest")
    if dest is not None:
        return dest.strip().lower() == b"document"
    return method == "GET" and (headers.get(b"accept") or b"").lower().find(b"text/html") >= 0


def cache_directives(headers: RawHeaders) -> set[bytes]:
    """The directive names of every ``Cache-Control`` header, lower-cased."""
    out: set[bytes] = set()
    for key, value in headers:
        if key.lower() == b"cache-control":
            for part in bytes(value).split(b","):
                name = part.split(b"=", 1)[0].strip().lower()
                if name:
                    out.add(name)
    return out


def private_for_cookie(headers: RawHeaders) -> RawHeaders | None:
    """Headers under which a per-visitor ``Set-Cookie`` may be added, or None if it may not.

    A response the app marked shareable (``public``, ``s-maxage`` or ``max-age`` without
    ``private``) must not carry one: a shared cache would hand it to other visitors. One
    without any ``Cache-Control`` gets ``private``; a private or no-store one is kept.
    """
    found = cache_directives(headers)
    if found & set(_PRIVATE):
        return headers
    if found & set(_SHARED):
        return None
    if found:  # e.g. "no-cache" alone: revalidated, but still storable by a shared cache
        return [
            (k, bytes(v) + b", private") if k.lower() == b"cache-control" else (k, v)
            for k, v in headers
        ]
    return [*headers, (b"cache-control", b"private")]

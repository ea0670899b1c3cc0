"""What a logged request was: a page view, an asset, an API call, a consent route, ...

Analytics counts page views, so the request log says for each request which ``kind`` it
is, decided here from what the server already knows: the method, the status, the
response's ``Content-Type``, the path, the consent prefix and the parsed User-Agent. A
bare request log counts every image, script and crawler hit as a "visit"; these rules are
what turns it into the numbers Plausible or GoatCounter show. Pure functions, no I/O.
"""

from __future__ import annotations

import re

__all__ = [
    "DEFAULT_CONSENT_PREFIX",
    "KINDS",
    "classify",
    "content_class",
    "is_bot",
    "kind_of",
    "path_class",
]

KINDS = ("page", "asset", "api", "consent", "redirect", "error", "bot")
DEFAULT_CONSENT_PREFIX = "/_consent"

#: Lower-cased substrings of User-Agents that belong to programs, not people. The UA
#: parser's ``is_bot`` knows the big crawlers; these catch HTTP libraries, monitors,
#: link previews and headless browsers that it calls "Other" or even "Chrome".
BOT_TOKENS = (
    "bot", "crawl", "spider", "slurp", "scrape", "fetch", "preview", "monitor", "check",
    "curl", "wget", "httpie", "python", "httpx", "aiohttp", "okhttp", "go-http-client",
    "java/", "apache-httpclient", "libwww", "node-fetch", "axios", "undici", "ruby",
    "php/", "perl", "headlesschrome", "phantomjs", "lighthouse", "pagespeed",
    "pingdom", "uptime", "statuscake", "facebookexternalhit", "embedly", "whatsapp",
    "telegram", "discord", "slack", "skypeuripreview", "bitlybot", "feed", "rss",
    "validator", "archive", "scan", "nmap", "zgrab", "masscan", "nuclei", "sqlmap",
)  # fmt: skip

#: Path extensions of files, not documents. ``.html``/``.htm``/``.php`` are pages.
ASSET_EXTENSIONS = frozenset((
    "css", "js", "mjs", "map", "json", "xml", "txt", "csv", "pdf", "zip", "gz", "br",
    "wasm", "png", "jpg", "jpeg", "gif", "webp", "avif", "svg", "ico", "bmp", "tif", "tiff",
    "woff", "woff2", "ttf", "otf", "eot", "mp3", "mp4", "webm", "ogg", "wav", "m4a", "mov",
    "avi", "webmanifest", "manifest",
))  # fmt: skip
_API_PATH = re.compile(r"^/(?:api|graphql|rpc|ws|socket\.io|_next/data|wp-json)(?:/|$)", re.I)
_WELL_KNOWN = ("/.well-known/", "/robots.txt", "/favicon", "/apple-touch-icon", "/sitemap")


def is_bot(user_agent: str | None, parsed_bot: bool = False) -> bool:
    """A program rather than a person: no User-Agent, the parser says so, or a known token.

    Every browser sends a User-Agent, so an empty one is a script.
    """
    if parsed_bot or not user_agent or not user_agent.strip():
        return True
    lowered = user_agent.lower()
    return any(token in lowered for token in BOT_TOKENS)


def path_class(path: str, prefix: str = DEFAULT_CONSENT_PREFIX) -> str | None:
    """``consent``, ``asset`` or ``api`` from the path alone, or ``None`` (maybe a page)."""
    if path == prefix or path.startswith(prefix + "/"):
        return "consent"
    if path.startswith(_WELL_KNOWN):
        return "asset"
    if _API_PATH.match(path):
        return "api"
    last = path.rsplit("/", 1)[-1]
    if "." in last and last.rsplit(".", 1)[1].lower() in ASSET_EXTENSIONS:
        return "asset"
    return None


def content_class(content_type: str | None) -> str | None:
    """``page``, ``api`` or ``asset`` from a response ``Content-Type``; ``None`` if absent."""
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("text/html", "application/xhtml+xml"):
        return "page"
    if (
        media.endswith(("json", "+xml"))
        or media in ("application/xml", "text/xml", "text/event-stream")
        or media.startswith(("application/grpc", "multipart/", "application/x-www-form"))
    ):
        return "api"
    return "asset"


def kind_of(
    method: str,
    status: int,
    content_type: str | None,
    path: str,
    user_agent: str | None,
    parsed_bot: bool = False,
    prefix: str = DEFAULT_CONSENT_PREFIX,
) -> str:
    """The ``kind`` of one request, from what the server knows about it."""
    return classify(
        method,
        status,
        content_class(content_type),
        path_class(path, prefix),
        is_bot(user_agent, parsed_bot),
    )


def classify(
    method: str,
    status: int,
    type_kind: str | None,
    path_kind: str | None,
    bot: bool,
) -> str:
    """The ``kind`` of one request from its parts: ``type_kind`` is :func:`content_class`
    of the response's ``Content-Type`` and ``path_kind`` :func:`path_class` of its path.

    Order matters: a crawler fetching a page is a bot, a consent form post answered with a
    redirect is a consent request, and a 404 page is an error even though it is HTML.
    A 304 (revalidated) document is a page view: the browser showed the page again.
    """
    if bot:
        return "bot"
    if path_kind == "consent":
        return "consent"
    if status >= 400 or status < 100:
        return "error"
    if 300 <= status < 400 and status != 304:
        return "redirect"
    if method != "GET":
        return "api"
    if type_kind == "page":
        return "asset" if path_kind == "asset" else "page"
    if type_kind is not None:
        return type_kind
    # No Content-Type (a 304, a 204, an old server): the path is all there is.
    if path_kind is not None:
        return path_kind
    return "page" if status == 304 else "api"

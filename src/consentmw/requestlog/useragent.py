"""Browser, OS and device class from a User-Agent, parsed in the writer thread and cached.

Only these coarse facts are logged, never the raw string (which, with its many tokens,
can single a browser out). Parsers copy parts of the string into their results: an app's
own name from a CFNetwork User-Agent (``PrivateApp-1980``), any run of digits as a
version. So the browser and OS names are kept only when they are on our allow-lists
(:data:`BROWSERS`, :data:`OPERATING_SYSTEMS`), otherwise ``Other``, and versions only as
a major number of at most :data:`MAX_VERSION_DIGITS` digits.

Parsing with ``user-agents`` costs about a millisecond for an unseen string, so it runs
off the request path and behind an LRU cache: real traffic repeats a few hundred strings.
The optional ``ua-parser`` 1.x backend (with its ``ua-parser-rs`` accelerator) feeds the
same classification code faster.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

from user_agents.parsers import (
    UserAgent,
    parse_browser,
    parse_device,
    parse_operating_system,
)

__all__ = [
    "BROWSERS",
    "OPERATING_SYSTEMS",
    "UA_BACKENDS",
    "UAInfo",
    "UAParser",
    "fast_backend_available",
]

#: Longer strings are cut before parsing: real ones stay well below, and a 10 KB header
#: must neither cost a long regex scan nor pin a huge cache key.
MAX_UA_LENGTH = 1024
UA_BACKENDS = ("user-agents", "ua-parser", "auto")
MAX_VERSION_DIGITS = 4

#: Browser families that may be logged, as ua-parser names them; any other is "Other".
BROWSERS = frozenset(
    {
        "Android",
        "Baiduspider",
        "bingbot",
        "Brave",
        "Chrome",
        "Chrome Mobile",
        "Chrome Mobile iOS",
        "Chrome Mobile WebView",
        "Chromium",
        "curl",
        "DuckDuckBot",
        "DuckDuckGo Mobile",
        "Edge",
        "Edge Mobile",
        "Electron",
        "Facebook",
        "Firefox",
        "Firefox Focus",
        "Firefox iOS",
        "Firefox Mobile",
        "Google",
        "Googlebot",
        "HeadlessChrome",
        "Huawei Browser",
        "IE",
        "IE Mobile",
        "Instagram",
        "LinkedIn",
        "MiuiBrowser",
        "Mobile Safari",
        "Mobile Safari UI/WKWebView",
        "Opera",
        "Opera Mini",
        "Opera Mobile",
        "Pinterest",
        "Python Requests",
        "Safari",
        "Samsung Internet",
        "Silk",
        "Snapchat",
        "UC Browser",
        "Vivaldi",
        "Whale",
        "Yandex Browser",
        "YandexBot",
    }
)

#: Operating-system families that may be logged, as ua-parser names them.
OPERATING_SYSTEMS = frozenset(
    {
        "Android",
        "BlackBerry OS",
        "Chrome OS",
        "Debian",
        "Fedora",
        "Firefox OS",
        "FreeBSD",
        "HarmonyOS",
        "iOS",
        "KaiOS",
        "Linux",
        "Mac OS X",
        "OpenBSD",
        "Tizen",
        "Ubuntu",
        "Windows",
        "Windows Phone",
    }
)


class UAInfo(NamedTuple):
    browser: str
    browser_version: str | None
    os: str
    os_version: str | None
    device: str  # desktop | mobile | tablet | bot | other


UNKNOWN_UA = UAInfo("Other", None, "Other", None, "other")


def _classify(ua: UserAgent) -> UAInfo:
    if ua.is_bot:
        device = "bot"
    elif ua.is_tablet:
        device = "tablet"
    elif ua.is_mobile:
        device = "mobile"
    elif ua.is_pc:
        device = "desktop"
    else:
        device = "other"
    browser = ua.browser.family if ua.browser.family in BROWSERS else "Other"
    os_family = ua.os.family if ua.os.family in OPERATING_SYSTEMS else "Other"
    return UAInfo(
        browser,
        _major(ua.browser.version) if browser != "Other" else None,
        os_family,
        _major(ua.os.version) if os_family != "Other" else None,
        device,
    )


def _major(version: tuple[Any, ...]) -> str | None:
    """The major version if it is a short number (``"120"``), else nothing."""
    if not version:
        return None
    major = str(version[0])
    if major.isascii() and major.isdigit() and len(major) <= MAX_VERSION_DIGITS:
        return major
    return None


def _parse_legacy(ua_string: str) -> UserAgent:
    return UserAgent(ua_string)


def _make_fast_parse() -> Callable[[str], UserAgent]:
    import ua_parser  # optional extra "fast-ua"

    def parse(ua_string: str) -> UserAgent:
        result = ua_parser.parse(ua_string)  # best available resolver (rs, re2 or regex)
        agent = UserAgent.__new__(UserAgent)
        agent.ua_string = ua_string
        b, o, d = result.user_agent, result.os, result.device
        # The same dicts the legacy API gives user-agents, so its rules classify alike.
        agent.browser = parse_browser(*((b.family, b.major, b.minor, b.patch) if b else ("Other",)))
        agent.os = parse_operating_system(
            *((o.family, o.major, o.minor, o.patch, o.patch_minor) if o else ("Other",))
        )
        agent.device = parse_device(*((d.family, d.brand, d.model) if d else ("Other", None, None)))
        return agent

    return parse


def fast_backend_available() -> bool:
    try:
        import ua_parser

        return hasattr(ua_parser, "BestAvailableResolver")  # only 1.x has it
    except ImportError:
        return False


class UAParser:
    """Callable ``ua -> UAInfo`` with its own LRU cache (one per writer, so per thread)."""

    def __init__(self, backend: str = "user-agents", cache_size: int = 4096) -> None:
        if backend not in UA_BACKENDS:
            raise ValueError(f"ua_backend must be one of {UA_BACKENDS}, got {backend!r}")
        if backend == "auto":
            backend = "ua-parser" if fast_backend_available() else "user-agents"
        if backend == "ua-parser":
            if not fast_backend_available():
                raise ValueError(
                    "ua_backend='ua-parser' needs ua-parser 1.x: pip install 'consentmw[fast-ua]'"
                )
            raw: Callable[[str], Any] = _make_fast_parse()
        else:
            raw = _parse_legacy
        self.backend = backend

        def parse(ua_string: str) -> UAInfo:
            try:
                return _classify(raw(ua_string))
            except Exception:  # a parser bug must not lose the record
                return UNKNOWN_UA

        self._cached = functools.lru_cache(maxsize=cache_size)(parse)

    def __call__(self, ua_string: str | None) -> UAInfo:
        if not ua_string:
            return UNKNOWN_UA
        return self._cached(ua_string[:MAX_UA_LENGTH])

    def cache_info(self) -> Any:
        return self._cached.cache_info()

    def cache_clear(self) -> None:
        self._cached.cache_clear()

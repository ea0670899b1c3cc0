"""ConsentConfig: every option of the consent middleware, validated once at start-up.

Bad values raise :class:`ConfigError` (a ``ValueError``) whose message names the option
and what would be valid, so a misconfigured site fails when it starts, not on a request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .privacy.ip import parse_trusted_proxies
from .registry import (
    DEFAULT_CATEGORIES,
    DEFAULT_COOKIES,
    Category,
    CookieSpec,
    Registry,
    consent_cookie_spec,
)
from .retention import DEFAULT_RETENTION_MONTHS, validate_retention_months
from .urls import parse_origin, redact_url

MIN_SECRET_BYTES = 32
DEFAULT_LIFETIME_DAYS = 182
#: 13 months, the longest lifetime European regulators accept for a consent choice.
MAX_LIFETIME_DAYS = 395
# A refusal must be remembered at least as long as regulators expect (about six months),
# or the visitor is asked again and again until they give in.
MIN_LIFETIME_DAYS = 182
#: Browsers accept a cookie so named only with Secure, Path=/ and no Domain: no sibling
#: subdomain can plant or overwrite it.
HOST_PREFIX = "__Host-"
LANGUAGES = ("nb", "en")

UndeclaredPolicy = Literal["block", "report", "allow"]
AnalyticsMode = Literal["basic", "advanced"]

_GA_ID = re.compile(r"^G-[A-Z0-9]{4,20}$")
_PREFIX = re.compile(r"^/[A-Za-z0-9._~\-/]*[A-Za-z0-9._~\-]$")
_VERSION = re.compile(r"^[A-Za-z0-9._\-]{1,32}$")
_COOKIE_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which and what to use instead."""


def _secret_keys(value: Any) -> tuple[bytes, ...]:
    if value is None or value == "" or value == []:
        raise ConfigError(
            "secret_key is required: pass a random string of at least 32 bytes, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    items = [value] if isinstance(value, str | bytes) else list(value)
    keys: list[bytes] = []
    for i, item in enumerate(items):
        if not isinstance(item, str | bytes):
            raise ConfigError(f"secret_key[{i}] must be a str or bytes, got {type(item).__name__}")
        raw = item.encode() if isinstance(item, str) else item
        if len(raw) < MIN_SECRET_BYTES:
            where = "secret_key" if len(items) == 1 else f"secret_key[{i}]"
            raise ConfigError(
                f"{where} is {len(raw)} bytes; it must be at least {MIN_SECRET_BYTES} bytes "
                "of random data (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        keys.append(raw)
    if not keys:
        raise ConfigError("secret_key is an empty list; give at least one key")
    return tuple(keys)


def _check_origins(value: Any) -> None:
    if isinstance(value, str | bytes):
        raise ConfigError(
            f"trusted_origins must be a list of origins, e.g. ['https://www.example.no'], "
            f"not the string {value!r}"
        )
    for item in value:
        if not isinstance(item, str) or parse_origin(item) is None:
            raise ConfigError(
                f"trusted_origins entry {item!r} is not an origin: write scheme, host and "
                "optional port, like 'https://www.example.no' or 'https://example.no:8443' "
                "(http or https; no path, not even a trailing '/'; IDNs in punycode)"
            )


@dataclass(frozen=True)
class ConsentConfig:
    """All options of :class:`~consentmw.ConsentMiddleware`.

    ``secret_key`` may be a list: the first key signs, every key verifies (rotation).
    """

    secret_key: str | bytes | Sequence[str | bytes] | None = None
    policy_version: str = "1"
    google_analytics_id: str | None = None
    analytics_mode: AnalyticsMode = "basic"
    prefix: str = "/_consent"
    cookie_name: str = "consentmw"
    cookie_domain: str | None = None
    secure_cookie: bool | None = None
    consent_lifetime_days: int = DEFAULT_LIFETIME_DAYS
    categories: Sequence[Category] = DEFAULT_CATEGORIES
    cookies: Sequence[CookieSpec] = DEFAULT_COOKIES
    extra_cookies: Sequence[CookieSpec] = ()
    undeclared_cookies: UndeclaredPolicy = "block"
    honour_privacy_signals: bool = True
    default_language: str = "nb"
    privacy_policy_url: str | None = None
    controller: str | None = None
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    templates_dir: str | Path | None = None
    records_url: str | None = "sqlite:///consentmw-receipts.db"
    records_retention_months: int = DEFAULT_RETENTION_MONTHS
    legal_hold: bool | str = False
    trusted_proxies: Sequence[str] = ()
    trusted_origins: Sequence[str] = ()
    forwarded_header: str = "x-forwarded-for"
    ipv4_prefix: int = 16
    ipv6_prefix: int = 48
    timezone: str = "Europe/Oslo"

    # Derived at validation; not options.
    secret_keys: tuple[bytes, ...] = field(init=False, repr=False)
    registry: Registry = field(init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "secret_keys", _secret_keys(self.secret_key))
        if not isinstance(self.policy_version, str) or not _VERSION.match(self.policy_version):
            raise ConfigError(
                f"policy_version {self.policy_version!r} must be 1-32 characters of letters, "
                "digits, '.', '_' or '-' (e.g. '1.07')"
            )
        if self.google_analytics_id is not None and not _GA_ID.match(str(self.google_analytics_id)):
            raise ConfigError(
                f"google_analytics_id {self.google_analytics_id!r} is not a GA4 measurement id "
                "like 'G-ABC123XYZ9' (or None to turn analytics off)"
            )
        if self.analytics_mode not in ("basic", "advanced"):
            raise ConfigError(
                f"analytics_mode {self.analytics_mode!r} must be 'basic' (default: nothing "
                "from Google before consent) or 'advanced'"
            )
        if (
            not isinstance(self.prefix, str)
            or not _PREFIX.match(self.prefix)
            or "//" in (self.prefix)
        ):
            raise ConfigError(
                f"prefix {self.prefix!r} must be an absolute URL path such as '/_consent' "
                "(starting with '/', no trailing '/', no query, no '//')"
            )
        if not isinstance(self.cookie_name, str) or not _COOKIE_NAME.match(self.cookie_name):
            raise ConfigError(
                f"cookie_name {self.cookie_name!r} must be 1-64 letters, digits, '_' or '-'"
            )
        lifetime = self.consent_lifetime_days
        if (
            isinstance(lifetime, bool)
            or not isinstance(lifetime, int)
            or not (MIN_LIFETIME_DAYS <= lifetime <= MAX_LIFETIME_DAYS)
        ):
            raise ConfigError(
                f"consent_lifetime_days={lifetime!r} must be a whole number of days from "
                f"{MIN_LIFETIME_DAYS} (6 months: a refusal must be remembered at least that "
                f"long) to {MAX_LIFETIME_DAYS} (13 months); the default is "
                f"{DEFAULT_LIFETIME_DAYS}"
            )
        if self.undeclared_cookies not in ("block", "report", "allow"):
            raise ConfigError(
                f"undeclared_cookies {self.undeclared_cookies!r} must be 'block', 'report' "
                "or 'allow'"
            )
        if self.default_language not in LANGUAGES:
            raise ConfigError(
                f"default_language {self.default_language!r} must be one of {', '.join(LANGUAGES)}"
            )
        for lang in self.texts:
            if lang not in LANGUAGES:
                raise ConfigError(f"texts has language {lang!r}; supported: {', '.join(LANGUAGES)}")
        if self.templates_dir is not None and not Path(self.templates_dir).is_dir():
            raise ConfigError(f"templates_dir {str(self.templates_dir)!r} is not a directory")
        if self.records_url is not None and not str(self.records_url).startswith(
            ("sqlite://", "postgresql://", "postgres://")
        ):
            raise ConfigError(
                f"records_url {redact_url(str(self.records_url))!r} must be "
                "'sqlite:///path/to/file.db', 'postgresql://user@host/db', "
                "or None to turn receipts off"
            )
        try:
            validate_retention_months(self.records_retention_months, "records_retention_months")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        for name, bits, top in (
            ("ipv4_prefix", self.ipv4_prefix, 32),
            ("ipv6_prefix", self.ipv6_prefix, 128),
        ):
            if isinstance(bits, bool) or not isinstance(bits, int) or not 0 <= bits <= top:
                raise ConfigError(f"{name}={bits!r} must be a whole number from 0 to {top}")
        try:
            parse_trusted_proxies(self.trusted_proxies, header=self.forwarded_header)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.privacy_policy_url is not None and not str(self.privacy_policy_url).startswith(
            ("/", "https://", "http://")
        ):
            raise ConfigError(
                f"privacy_policy_url {self.privacy_policy_url!r} must be a path ('/privacy') "
                "or an http(s) URL"
            )
        if self.controller is not None and (
            not isinstance(self.controller, str) or not self.controller.strip()
        ):
            raise ConfigError(
                f"controller {self.controller!r} must be the name of the data controller "
                "shown on the pages (e.g. 'Example AS, org.nr. 123 456 789'), or None"
            )
        try:
            ZoneInfo(str(self.timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"timezone {self.timezone!r} is not an IANA time zone such as 'Europe/Oslo' "
                "or 'UTC' (times on the visitor's pages are shown in it)"
            ) from None
        _check_origins(self.trusted_origins)
        cookies = [*self.cookies, *self.extra_cookies]
        for name in self.consent_cookie_names:
            if not any(c.name == name for c in cookies):
                cookies.append(consent_cookie_spec(name, lifetime))
        try:
            set_(self, "registry", Registry(self.categories, cookies))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def __repr__(self) -> str:
        """Every option, with the secret keys and any password in a URL redacted."""
        items = []
        for f in fields(self):
            if not f.repr:
                continue
            value = getattr(self, f.name)
            if f.name == "secret_key":
                shown = f"<{len(self.secret_keys)} key(s), redacted>"
            elif isinstance(value, str) and "://" in value:
                shown = repr(redact_url(value))
            else:
                shown = repr(value)
            items.append(f"{f.name}={shown}")
        return f"{type(self).__name__}({', '.join(items)})"

    @property
    def consent_cookie_names(self) -> tuple[str, ...]:
        """The consent cookie's names: ``__Host-<cookie_name>`` where it can be used (no
        ``cookie_domain``; served with ``Secure``), and the plain name (local development
        over http, a configured ``cookie_domain``, and cookies written before the prefix)."""
        if self.cookie_domain is None:
            return (HOST_PREFIX + self.cookie_name, self.cookie_name)
        return (self.cookie_name,)

    @property
    def lifetime_seconds(self) -> int:
        return self.consent_lifetime_days * 86400

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.init)

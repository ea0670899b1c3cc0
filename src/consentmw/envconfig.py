"""Configuration from ``CONSENTMW_*`` environment variables (12-factor deployments).

Every :class:`~consentmw.ConsentConfig` option has a variable named after it in upper
case (``CONSENTMW_SECRET_KEY``, ``CONSENTMW_GOOGLE_ANALYTICS_ID``, ...). Values go through
the same validation as keyword options; a value that cannot even be parsed raises a
:class:`~consentmw.config.ConfigError` naming the variable.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from .config import ConfigError, ConsentConfig
from .registry import Category, CookieSpec
from .urls import redact_url

logger = logging.getLogger("consentmw")

PREFIX = "CONSENTMW_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_INTS = {"consent_lifetime_days", "records_retention_months", "ipv4_prefix", "ipv6_prefix"}
_BOOLS = {"honour_privacy_signals"}
_OPTIONAL_BOOLS = {"secure_cookie"}
_LISTS = {"trusted_proxies", "trusted_origins"}
_NULLABLE = {"google_analytics_id", "records_url", "privacy_policy_url", "cookie_domain",
             "templates_dir"}  # fmt: skip
_SECRETS = {"secret_key"}


def env_name(option: str) -> str:
    return PREFIX + option.upper()


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} must be one of 1/0, true/false, yes/no, on/off")


def _json(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be JSON ({exc.msg} at position {exc.pos})") from None


def _parse(option: str, raw: str) -> Any:
    name = env_name(option)
    if option in _SECRETS:
        keys = [k.strip() for k in raw.split(",") if k.strip()]
        return keys[0] if len(keys) == 1 else keys
    if option in _INTS:
        try:
            return int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r} must be a whole number") from None
    if option in _BOOLS:
        return _bool(name, raw)
    if option in _OPTIONAL_BOOLS:
        return None if raw.strip().lower() in ("", "auto") else _bool(name, raw)
    if option in _LISTS:
        return [item.strip() for item in raw.split(",") if item.strip()]
    if option == "legal_hold":
        value = raw.strip()
        return _bool(name, value) if value.lower() in _TRUE | _FALSE else value
    if option in ("categories", "cookies", "extra_cookies", "texts"):
        data = _json(name, raw)
        try:
            if option == "texts":
                return dict(data)
            kind = Category if option == "categories" else CookieSpec
            return [kind(**item) for item in data]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name}: {exc}") from None
    if option in _NULLABLE and raw.strip().lower() in ("", "none", "null", "off"):
        return None
    return raw


def options_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The options set in the environment, parsed (not yet validated as a whole)."""
    env = os.environ if environ is None else environ
    options: dict[str, Any] = {}
    for f in fields(ConsentConfig):
        if f.init and env_name(f.name) in env:
            options[f.name] = _parse(f.name, env[env_name(f.name)])
    return options


def config_from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> ConsentConfig:
    """A validated config from ``CONSENTMW_*`` variables; keyword ``overrides`` win."""
    return ConsentConfig(**{**options_from_env(environ), **overrides})


def describe(config: ConsentConfig) -> dict[str, Any]:
    """The effective configuration for display, with secrets redacted."""
    out: dict[str, Any] = {}
    for f in fields(ConsentConfig):
        if not f.init:
            continue
        value = getattr(config, f.name)
        if f.name in _SECRETS:
            out[f.name] = f"<{len(config.secret_keys)} key(s), redacted>"
        elif isinstance(value, str) and "://" in value:
            out[f.name] = redact_url(value)
        elif f.name in ("categories",):
            out[f.name] = [c.name for c in value]
        elif f.name in ("cookies", "extra_cookies"):
            out[f.name] = [f"{c.name} ({c.category})" for c in value]
        elif isinstance(value, tuple | list):
            out[f.name] = list(value)
        elif isinstance(value, Mapping):
            out[f.name] = dict(value)
        else:
            out[f.name] = value if value is None or isinstance(value, bool | int) else str(value)
    return out


def deployment_notes(config: ConsentConfig) -> list[str]:
    """Warnings about settings that are valid but often wrong in a real deployment."""
    notes: list[str] = []
    if config.secure_cookie is True and not config.trusted_origins:
        notes.append(
            "secure_cookie is on but trusted_origins is empty, so consent POSTs are checked "
            "against the scheme the app sees. If TLS ends at a load balancer that sends no "
            "X-Forwarded-Proto the app sees http while browsers send an https Origin, and "
            "every decision is refused with 403. Set "
            f"{env_name('trusted_origins')}=https://www.example.no (your site's origins, "
            "comma-separated), or run uvicorn with --proxy-headers and "
            "--forwarded-allow-ips set to the load balancer's addresses."
        )
    return notes


#: RequestLogMiddleware options and their variables (shared ones keep their consent names).
LOG_VARIABLES = {
    "directory": "CONSENTMW_LOG_DIR",
    "rotation": "CONSENTMW_LOG_ROTATION",
    "timezone": "CONSENTMW_LOG_TIMEZONE",
    "retention_months": "CONSENTMW_LOG_RETENTION_MONTHS",
    "legal_hold": "CONSENTMW_LOG_LEGAL_HOLD",
    "asn_database": "CONSENTMW_LOG_ASN_DATABASE",
    "country_database": "CONSENTMW_LOG_COUNTRY_DATABASE",
    "mask_client_in_scope": "CONSENTMW_MASK_CLIENT_IN_SCOPE",
    "trusted_proxies": "CONSENTMW_TRUSTED_PROXIES",
    "forwarded_header": "CONSENTMW_FORWARDED_HEADER",
    "ipv4_prefix": "CONSENTMW_IPV4_PREFIX",
    "ipv6_prefix": "CONSENTMW_IPV6_PREFIX",
    "count_visitors": "CONSENTMW_COUNT_VISITORS",
    "salt_dir": "CONSENTMW_SALT_DIR",
    "salt_url": "CONSENTMW_SALT_URL",
}


def log_options_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """RequestLogMiddleware options set in the environment (keywords still win)."""
    env = os.environ if environ is None else environ
    options: dict[str, Any] = {}
    for option, name in LOG_VARIABLES.items():
        if name not in env:
            continue
        raw = env[name]
        if option in ("retention_months", "ipv4_prefix", "ipv6_prefix"):
            try:
                options[option] = int(raw.strip())
            except ValueError:
                raise ConfigError(f"{name}={raw!r} must be a whole number") from None
        elif option == "mask_client_in_scope":
            options[option] = _bool(name, raw)
        elif option == "count_visitors":
            value = raw.strip().lower()
            options[option] = value if value == "consented" else _bool(name, value)
        elif option == "trusted_proxies":
            options[option] = [item.strip() for item in raw.split(",") if item.strip()]
        elif option == "legal_hold":
            value = raw.strip()
            options[option] = _bool(name, value) if value.lower() in _TRUE | _FALSE else value
        else:
            options[option] = raw
    return options


#: Variables this repository's scripts, tests and examples read; not options, but known.
TOOLING_VARIABLES = frozenset({
    "CONSENTMW_DEMO_GA_ID",  # consentmw demo --ga-id
    "CONSENTMW_TEST_PG",  # the test suite's PostgreSQL
    "CONSENTMW_PG_PORT",  # scripts/start-postgres.sh
    "CONSENTMW_PG_BASE",
    "CONSENTMW_KEEP_SERVICES",  # scripts/test
    "CONSENTMW_AXE_DIR",  # scripts/install-axe.sh
    "CONSENTMW_CLICKHOUSE_URL",  # analytics tests against ClickHouse
})  # fmt: skip


def known_variables() -> frozenset[str]:
    """Every ``CONSENTMW_*`` name that consentmw, its CLI or its scripts read."""
    consent = {env_name(f.name) for f in fields(ConsentConfig) if f.init}
    return frozenset(consent | set(LOG_VARIABLES.values()) | TOOLING_VARIABLES)


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """``CONSENTMW_*`` names nobody reads, each with the closest known name (or None).

    Such a name is almost always a misspelling, and a misspelt option is silently left
    at its default: ``consentmw check`` reports them as errors.
    """
    env = os.environ if environ is None else environ
    known = known_variables()
    by_suffix = {name[len(PREFIX) :]: name for name in known}
    out: list[tuple[str, str | None]] = []
    for name in sorted(env):
        if not name.startswith(PREFIX) or name in known:
            continue
        # Compare without the shared prefix, which would make every name look alike.
        close = difflib.get_close_matches(name[len(PREFIX) :], list(by_suffix), n=1, cutoff=0.6)
        out.append((name, by_suffix[close[0]] if close else None))
    return out


_warned_unknown = False


def warn_unknown_variables() -> None:
    """Say once per process, at start-up, which ``CONSENTMW_*`` names nothing reads: a
    misspelt option silently keeps its default (``consentmw check`` fails on them)."""
    global _warned_unknown
    if _warned_unknown:
        return
    _warned_unknown = True
    for name, close in unknown_variables():
        hint = f"; did you mean {close}?" if close else ""
        logger.warning("consentmw: %s is not a consentmw setting and is ignored%s", name, hint)

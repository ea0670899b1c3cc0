"""Bad configuration fails at start-up with a message that names the option."""

from __future__ import annotations

import pytest

from consentmw import Category, ConfigError, ConsentConfig, ConsentMiddleware, CookieSpec
from consentmw.config import MAX_LIFETIME_DAYS

from .conftest import SECRET, site


def build(**options: object) -> ConsentMiddleware:
    options.setdefault("secret_key", SECRET)
    options.setdefault("records_url", None)
    return ConsentMiddleware(site(), **options)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"secret_key": None}, "secret_key is required"),
        ({"secret_key": ""}, "secret_key is required"),
        ({"secret_key": "short"}, "at least 32 bytes"),
        ({"secret_key": [SECRET, "tooshort"]}, "secret_key[1]"),
        ({"secret_key": [SECRET, 42]}, "secret_key[1] must be a str or bytes"),
        ({"consent_lifetime_days": MAX_LIFETIME_DAYS + 1}, "13 months"),
        ({"consent_lifetime_days": 0}, "consent_lifetime_days"),
        ({"consent_lifetime_days": True}, "consent_lifetime_days"),
        ({"prefix": "_consent"}, "absolute URL path"),
        ({"prefix": "/_consent/"}, "no trailing"),
        ({"prefix": "//evil"}, "prefix"),
        ({"prefix": "/a b"}, "prefix"),
        ({"undeclared_cookies": "ignore"}, "'block', 'report' or 'allow'"),
        ({"google_analytics_id": "UA-1234-1"}, "GA4 measurement id"),
        ({"analytics_mode": "sneaky"}, "analytics_mode"),
        ({"policy_version": "1 0"}, "policy_version"),
        ({"default_language": "sv"}, "default_language"),
        ({"texts": {"de": {}}}, "texts has language 'de'"),
        ({"records_url": "mysql://x"}, "records_url"),
        ({"records_retention_months": 2}, "records_retention_months=2"),
        ({"records_retention_months": 121}, "3..120"),
        ({"ipv4_prefix": 33}, "ipv4_prefix"),
        ({"privacy_policy_url": "javascript:alert(1)"}, "privacy_policy_url"),
        ({"templates_dir": "/nonexistent/dir"}, "templates_dir"),
        ({"cookie_name": "bad name"}, "cookie_name"),
        (
            {"extra_cookies": [CookieSpec("sessionid", "sessions")]},
            "unknown category 'sessions'",
        ),
        (
            {"extra_cookies": [CookieSpec("_ga", "analytics")]},
            "'_ga' is declared twice",
        ),
        ({"nonsense_option": 1}, "unknown option(s) nonsense_option"),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(**options)
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_declarations_fail_with_clear_errors() -> None:
    with pytest.raises(ValueError, match="not a valid cookie name"):
        CookieSpec("bad name;", "necessary")
    with pytest.raises(ValueError, match="category name"):
        Category("Bad Name", "x", "y")
    with pytest.raises(ConfigError, match="only 'necessary' is required"):
        build(categories=[Category("necessary", "n", "n", True), Category("ads", "a", "a", True)])
    with pytest.raises(ConfigError, match="must include 'necessary'"):
        build(categories=[Category("analytics", "a", "a")], cookies=[])


def test_config_and_keywords_are_exclusive() -> None:
    config = ConsentConfig(secret_key=SECRET, records_url=None)
    with pytest.raises(ConfigError, match="not both"):
        ConsentMiddleware(site(), config=config, prefix="/x")


def test_config_is_frozen_and_complete() -> None:
    config = ConsentConfig(secret_key=[SECRET, SECRET + "2"], records_url=None)
    with pytest.raises(AttributeError):
        config.prefix = "/other"  # type: ignore[misc]
    assert config.secret_keys[0] == SECRET.encode()
    assert config.consent_lifetime_days == 182
    assert config.registry.lookup("consentmw").category == "necessary"  # type: ignore[union-attr]


def test_user_defined_categories() -> None:
    mw = build(
        categories=[
            *ConsentConfig.__dataclass_fields__["categories"].default,  # type: ignore[misc]
            Category("marketing", {"nb": "Markedsføring", "en": "Marketing"}, "Ads"),
        ],
        extra_cookies=[CookieSpec("_fbp", "marketing", "Meta")],
    )
    assert mw.registry.optional == ("analytics", "marketing")
    assert mw.registry.lookup("_fbp").category == "marketing"  # type: ignore[union-attr]

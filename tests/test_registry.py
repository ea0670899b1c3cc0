"""The default registry holds the policy's cookies, and names match exactly or by pattern."""

from __future__ import annotations

import pytest

from consentmw.config import ConsentConfig

from .conftest import SECRET

REGISTRY = ConsentConfig(secret_key=SECRET, records_url=None).registry


@pytest.mark.parametrize(
    "name", ["AWSALB", "AWSALBCORS", "access_token", "refresh_token", "io", "consentmw"]
)
def test_necessary_cookies(name: str) -> None:
    spec = REGISTRY.lookup(name)
    assert spec is not None and spec.category == "necessary"


@pytest.mark.parametrize(
    "name",
    [
        "_ga",
        "_ga_ABC123",
        "_gid",
        "_gat",
        "_gat_UA1",
        "__utma",
        "_utma",
        "__utmb",
        "_utmb",
        "__utmc",
        "_utmc",
        "__utmz",
        "_utmz",
    ],
)
def test_analytics_cookies(name: str) -> None:
    spec = REGISTRY.lookup(name)
    assert spec is not None and spec.category == "analytics"
    assert spec.provider == "Google" and spec.third_party


@pytest.mark.parametrize("name", ["_gax", "ga", "AWSALBX", "Access_Token", "", "__utmx"])
def test_undeclared(name: str) -> None:
    assert REGISTRY.lookup(name) is None


def test_every_cookie_has_both_languages() -> None:
    for spec in REGISTRY.cookies:
        for lang in ("nb", "en"):
            assert spec.text("purpose", lang), spec.name
            assert spec.text("lifetime", lang), spec.name

"""Every option can come from CONSENTMW_* variables, with the same validation."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from consentmw import ConfigError, ConsentMiddleware
from consentmw.envconfig import config_from_env, describe

from .conftest import SECRET, client_for, site

ENV = {
    "CONSENTMW_SECRET_KEY": f"{SECRET},{SECRET}-old",
    "CONSENTMW_POLICY_VERSION": "1.07",
    "CONSENTMW_GOOGLE_ANALYTICS_ID": "G-ABC123XYZ9",
    "CONSENTMW_CONSENT_LIFETIME_DAYS": "200",
    "CONSENTMW_HONOUR_PRIVACY_SIGNALS": "false",
    "CONSENTMW_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
    "CONSENTMW_RECORDS_URL": "none",
    "CONSENTMW_SECURE_COOKIE": "auto",
    "CONSENTMW_EXTRA_COOKIES": json.dumps(
        [{"name": "sessionid", "category": "necessary", "purpose": "Django session"}]
    ),
    "CONSENTMW_TEXTS": json.dumps({"en": {"title": "Cookies at Front"}}),
}


def test_all_kinds_of_values_parse() -> None:
    config = config_from_env(ENV)
    assert config.secret_keys == (SECRET.encode(), (SECRET + "-old").encode())
    assert config.policy_version == "1.07"
    assert config.consent_lifetime_days == 200
    assert config.honour_privacy_signals is False
    assert list(config.trusted_proxies) == ["10.0.0.0/8", "127.0.0.1"]
    assert config.records_url is None and config.secure_cookie is None
    assert config.registry.lookup("sessionid").category == "necessary"  # type: ignore[union-attr]
    shown = json.dumps(describe(config))
    assert SECRET not in shown and "redacted" in shown


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"CONSENTMW_CONSENT_LIFETIME_DAYS": "lots"}, "CONSENTMW_CONSENT_LIFETIME_DAYS"),
        ({"CONSENTMW_CONSENT_LIFETIME_DAYS": "500"}, "13 months"),
        ({"CONSENTMW_HONOUR_PRIVACY_SIGNALS": "maybe"}, "true/false"),
        ({"CONSENTMW_EXTRA_COOKIES": "[{"}, "must be JSON"),
        ({"CONSENTMW_EXTRA_COOKIES": '[{"name": "x", "category": "nope"}]'}, "unknown category"),
        ({"CONSENTMW_SECRET_KEY": "short"}, "at least 32 bytes"),
    ],
)
def test_bad_values_name_the_variable_or_option(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        config_from_env({"CONSENTMW_SECRET_KEY": SECRET, **env})


async def test_middleware_reads_environment_and_keywords_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONSENTMW_SECRET_KEY", SECRET)
    monkeypatch.setenv("CONSENTMW_PREFIX", "/from-env")
    monkeypatch.setenv("CONSENTMW_RECORDS_URL", "none")
    mw = ConsentMiddleware(site())
    assert mw.config.prefix == "/from-env"
    async with client_for(mw) as client:
        assert (await client.get("/from-env")).status_code == 200
    assert ConsentMiddleware(site(), prefix="/kw").config.prefix == "/kw"


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTMW_")}
    return subprocess.run(
        [sys.executable, "-m", "consentmw.cli", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
    )


def test_check_prints_redacted_config_and_fails_on_errors() -> None:
    ok = run_cli("check", env=ENV)
    assert ok.returncode == 0, ok.stderr
    shown = json.loads(ok.stdout)
    assert shown["google_analytics_id"] == "G-ABC123XYZ9"
    assert SECRET not in ok.stdout
    bad = run_cli("check", env={**ENV, "CONSENTMW_PREFIX": "no-slash"})
    assert bad.returncode != 0 and "prefix" in bad.stderr
    missing = run_cli("check", env={})
    assert missing.returncode != 0 and "secret_key is required" in missing.stderr


def test_request_log_options_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from consentmw import RequestLogMiddleware

    monkeypatch.setenv("CONSENTMW_LOG_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("CONSENTMW_LOG_ROTATION", "hourly")
    monkeypatch.setenv("CONSENTMW_LOG_RETENTION_MONTHS", "6")
    monkeypatch.setenv("CONSENTMW_TRUSTED_PROXIES", "10.0.0.0/8")
    mw = RequestLogMiddleware(site())
    try:
        assert str(mw.log.directory) == str(tmp_path / "from-env")
        assert mw.log.retention_months == 6
        assert "10.0.0.0/8" in repr(mw.log.trusted)
    finally:
        mw.close()
    explicit = RequestLogMiddleware(site(), directory=str(tmp_path / "kw"))
    try:
        assert str(explicit.log.directory) == str(tmp_path / "kw")
    finally:
        explicit.close()
    monkeypatch.setenv("CONSENTMW_LOG_RETENTION_MONTHS", "200")
    with pytest.raises(ValueError, match=r"3\.\.120"):
        RequestLogMiddleware(site())
    monkeypatch.setenv("CONSENTMW_LOG_RETENTION_MONTHS", "many")
    with pytest.raises(ConfigError, match="CONSENTMW_LOG_RETENTION_MONTHS"):
        RequestLogMiddleware(site())


def test_unknown_variables_come_with_the_closest_known_name() -> None:
    from consentmw.envconfig import unknown_variables

    env = {**ENV, "CONSENTMW_DEFALT_LANGUAGE": "en", "CONSENTMW_LOG_ROTATON": "hourly",
           "CONSENTMW_TEST_PG": "postgresql://x", "CONSENTMW_ZZZ": "1",
           "OTHER_THING": "1"}  # fmt: skip
    assert unknown_variables(env) == [
        ("CONSENTMW_DEFALT_LANGUAGE", "CONSENTMW_DEFAULT_LANGUAGE"),
        ("CONSENTMW_LOG_ROTATON", "CONSENTMW_LOG_ROTATION"),
        ("CONSENTMW_ZZZ", None),
    ]


def test_check_validates_the_request_log_too(tmp_path) -> None:
    bad = run_cli("check", env={**ENV, "CONSENTMW_LOG_ROTATION": "weekly",
                                "CONSENTMW_LOG_DIR": str(tmp_path)})  # fmt: skip
    assert bad.returncode == 2 and "rotation" in bad.stderr
    assert "configuration OK" not in bad.stderr


def test_start_up_warns_once_about_misspelt_variables(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import consentmw.envconfig as envconfig

    monkeypatch.setattr(envconfig, "_warned_unknown", False)
    monkeypatch.setenv("CONSENTMW_DEFALT_LANGUAGE", "en")
    with caplog.at_level(logging.WARNING, logger="consentmw"):
        ConsentMiddleware(site(), secret_key=SECRET, records_url=None)
        ConsentMiddleware(site(), secret_key=SECRET, records_url=None)
    lines = [r.getMessage() for r in caplog.records if "DEFALT" in r.getMessage()]
    assert lines == [
        "consentmw: CONSENTMW_DEFALT_LANGUAGE is not a consentmw setting and is ignored; "
        "did you mean CONSENTMW_DEFAULT_LANGUAGE?"
    ]

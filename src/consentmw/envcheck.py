"""``consentmw check``: the start-up validation of both middlewares, without a server.

Each middleware is built from the environment exactly as an app would build it, so an
option that would stop the site (a rotation it does not know, a ``postgresql://`` store
without psycopg installed) stops the check too. Nothing is connected to: stores and
salt stores are lazy, as at start-up. ``CONSENTMW_*`` names that nothing reads are
errors, with the closest known name, because a misspelt option silently keeps its
default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import ConsentConfig
from .envconfig import (
    config_from_env,
    deployment_notes,
    describe,
    log_options_from_env,
    unknown_variables,
)
from .urls import redact_url

__all__ = ["CheckResult", "check_environment"]


@dataclass
class CheckResult:
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The effective configuration, redacted (only the parts that validated).
    shown: dict[str, Any] = field(default_factory=dict)


async def _no_app(scope: Any, receive: Any, send: Any) -> None:  # never called
    raise RuntimeError("consentmw check builds the middleware only")


def check_environment(environ: Mapping[str, str] | None = None) -> CheckResult:
    env = os.environ if environ is None else environ
    result = CheckResult()
    for name, suggestion in unknown_variables(env):
        hint = f"did you mean {suggestion}?" if suggestion else "consentmw does not read it"
        result.errors.append(f"unknown variable {name}: {hint}")
    _check_consent(env, result)
    _check_request_log(env, result)
    return result


def _check_consent(env: Mapping[str, str], result: CheckResult) -> None:
    from .middleware import ConsentMiddleware

    try:
        config: ConsentConfig = config_from_env(env)
        # The middleware's own constructor: templates, legal_hold, the store's backend.
        ConsentMiddleware(_no_app, config=config)
    except ValueError as exc:  # ConfigError is a ValueError
        result.errors.append(f"ConsentMiddleware: {exc}")
        return
    result.shown.update(describe(config))
    result.notes.extend(deployment_notes(config))


def _check_request_log(env: Mapping[str, str], result: CheckResult) -> None:
    from .requestlog.service import RequestLog

    try:
        options = log_options_from_env(env)
        shown = {k: redact_url(v) if k == "salt_url" else v for k, v in options.items()}
        # What RequestLogMiddleware does with its options before building the RequestLog.
        options.pop("mask_client_in_scope", None)  # already parsed as a boolean
        log = RequestLog(options.pop("directory", "logs"), **options)
    except ValueError as exc:
        result.errors.append(f"RequestLogMiddleware: {exc}")
        return
    log.close()
    result.shown["request_log"] = {
        **shown,
        "directory": str(log.directory),
        "rotation": log.writer.schedule.rotation,
        "timezone": log.tz.key,
        "retention_months": log.retention_months,
    }

"""Puts the visitor's consent state into every template's context."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from consentmw import consent_state


def consent(request: HttpRequest) -> dict[str, Any]:
    # Under ASGI, request.scope is the scope dict ConsentMiddleware filled in. Without
    # the middleware (or under WSGI) the state is "undecided": consent is never assumed.
    state = consent_state(request)
    return {"consent": state, "analytics_allowed": state.allows("analytics")}

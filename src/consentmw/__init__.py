"""consentmw: cookie consent and privacy-preserving request logs for ASGI apps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection

from .config import ConfigError, ConsentConfig
from .consent import ConsentState
from .middleware import ConsentMiddleware
from .registry import Category, CookieSpec

if TYPE_CHECKING:
    from .requestlog import RequestLogMiddleware

__all__ = [
    "Category",
    "ConfigError",
    "ConsentConfig",
    "ConsentMiddleware",
    "ConsentState",
    "CookieSpec",
    "RequestLogMiddleware",
    "consent_state",
]
__version__ = "0.1.0"


def consent_state(request_or_scope: HTTPConnection) -> ConsentState:
    """The visitor's consent state as ConsentMiddleware resolved it for this request.

    Takes a Starlette/FastAPI ``Request`` (anything with ``.scope``: Django's and
    Litestar's requests too) or an ASGI scope dict; FastAPI can use it directly as a
    dependency: ``state: ConsentState = Depends(consent_state)``.
    Outside the middleware it returns an undecided state: no consent is ever assumed.
    """
    scope = getattr(request_or_scope, "scope", request_or_scope)
    state = scope.get("consentmw") if isinstance(scope, dict) else None
    return state if isinstance(state, ConsentState) else ConsentState()


def __getattr__(name: str) -> Any:
    # The request log pulls in user-agent parsing; import it only when asked for.
    if name == "RequestLogMiddleware":
        from .requestlog import RequestLogMiddleware

        return RequestLogMiddleware
    raise AttributeError(f"module 'consentmw' has no attribute {name!r}")

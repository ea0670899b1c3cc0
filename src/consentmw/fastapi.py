"""FastAPI shorthand for the visitor's consent state.

``Depends(consent_state)`` works as is; :data:`ConsentDep` saves writing it out::

    from consentmw.fastapi import ConsentDep

    @app.get("/")
    def home(consent: ConsentDep) -> dict[str, bool]:
        return {"analytics": consent.allows("analytics")}

or ``consent: ConsentState = Depends(consent_dependency)``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from . import consent_state
from .consent import ConsentState

__all__ = ["ConsentDep", "consent_dependency"]


def consent_dependency(request: Request) -> ConsentState:
    """The consent state ConsentMiddleware resolved for this request (undecided without it)."""
    return consent_state(request)


ConsentDep = Annotated[ConsentState, Depends(consent_dependency)]

"""The app the server fuzz test runs under uvicorn (--factory): a page at every path.

The request log sits outside the consent middleware, as in production, so hostile
requests also go through the log's record building and its writer thread.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.routing import Route

from consentmw import ConsentMiddleware
from consentmw.requestlog import RequestLogMiddleware

from .conftest import SECRET, page


def create_app() -> RequestLogMiddleware:
    consent = ConsentMiddleware(
        Starlette(routes=[Route("/{rest:path}", page)]),
        secret_key=SECRET,
        records_url=os.environ["FUZZ_RECORDS_URL"],
        trusted_origins=["https://www.example.no"],
        controller="Example AS",
    )
    return RequestLogMiddleware(consent, directory=os.environ["FUZZ_LOG_DIR"])

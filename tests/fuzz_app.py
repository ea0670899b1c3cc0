"""The app the server fuzz test runs under uvicorn (--factory): a page at every path."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.routing import Route

from consentmw import ConsentMiddleware

from .conftest import SECRET, page


def create_app() -> ConsentMiddleware:
    return ConsentMiddleware(
        Starlette(routes=[Route("/{rest:path}", page)]),
        secret_key=SECRET,
        records_url=os.environ["FUZZ_RECORDS_URL"],
        trusted_origins=["https://www.example.no"],
    )

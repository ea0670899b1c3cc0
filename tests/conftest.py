"""Shared fixtures: a small Starlette app behind ConsentMiddleware, driven over real ASGI."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from consentmw import ConsentMiddleware
from consentmw.records import ReceiptStore

from .records_support import BACKENDS, MakeStore, store_factory

SECRET = "test-secret-key-that-is-long-enough-0123456789"
PAGE = "<!doctype html><html lang='en'><head><title>t</title></head><body><h1>Hi</h1></body></html>"


async def page(request: Request) -> Response:
    return HTMLResponse(PAGE)


async def set_cookies(request: Request) -> Response:
    """Sets whatever cookies the query asks for: ?c=name=value;Domain=x&c=..."""
    response = HTMLResponse(PAGE)
    for raw in request.query_params.getlist("c"):
        response.raw_headers.append((b"set-cookie", raw.encode("latin-1")))
    return response


async def api(request: Request) -> Response:
    response = JSONResponse({"ok": True})
    response.set_cookie("_ga", "GA1.1.1.1")
    response.set_cookie("access_token", "abc")
    return response


def site() -> Starlette:
    return Starlette(
        routes=[
            Route("/", page),
            Route("/set", set_cookies),
            Route("/api", api),
        ]
    )


def make_app(**options: Any) -> ConsentMiddleware:
    options.setdefault("secret_key", SECRET)
    options.setdefault("records_url", None)
    options.setdefault("controller", "Example AS")
    # Plain http on a public name: the tests of the Secure / __Host- defaults set it.
    options.setdefault("secure_cookie", False)
    return ConsentMiddleware(site(), **options)


def client_for(app: Any, base_url: str = "http://www.example.no") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.fixture
def app_factory() -> Callable[..., ConsentMiddleware]:
    return make_app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_app()) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- receipt stores, on every backend (tests/records_support.py) ---------------------------
@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_store(backend: str, tmp_path: Path) -> AsyncIterator[MakeStore]:
    """Factory for stores of the current backend, all on one fresh database."""
    async with store_factory(backend, tmp_path) as make:
        yield make


@pytest.fixture
def store(make_store: MakeStore) -> ReceiptStore:
    return make_store()

"""Two reference injectors, both given consentmw's undecided-visitor snippet.

- :class:`NaiveInjectMiddleware`, the straightforward way with Starlette: a
  ``BaseHTTPMiddleware`` that reads the whole response body, inserts the snippet before
  ``</body>`` and builds a new response.
- :class:`FloorInjectMiddleware`, the floor: a pure-ASGI injector with none of the checks
  a consent tool needs, to read consentmw's overhead against what any send-wrapping
  middleware in Python costs on the same server.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response


class NaiveInjectMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: Any, snippet: bytes) -> None:
        super().__init__(app)
        self.snippet = snippet

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        if not response.headers.get("content-type", "").startswith("text/html"):
            return response
        body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
        i = body.lower().rfind(b"</body>")
        if i >= 0:
            body = body[:i] + self.snippet + body[i:]
        headers = {k: v for k, v in response.headers.items() if k != "content-length"}
        return Response(body, status_code=response.status_code, headers=headers)


class FloorInjectMiddleware:
    """The floor: the least any pure-ASGI injector does, with none of consentmw's checks.

    One dict lookup of a cookie; a start message with an HTML content type is held, the
    snippet goes before the last ``</body>`` of a body sent in one message and
    ``Content-Length`` is rewritten; anything else is passed on as it comes, without a
    coroutine of its own. No signature check, no Set-Cookie filtering, no charset,
    compression, status, HEAD, CSP or streaming rules, no ``Vary``: what no real consent
    tool can go below, so its ratio to bare is about the best any send-wrapping middleware
    in Python can reach on the same server.
    """

    def __init__(self, app: Any, snippet: bytes) -> None:
        self.app = app
        self.snippet = snippet
        self.states: dict[bytes | None, str] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.states.get(dict(scope["headers"]).get(b"cookie"))
        await self.app(scope, receive, _FloorSend(send, self.snippet).send)


class _Done:
    def __await__(self) -> Any:
        return iter(())


_DONE = _Done()


class _FloorSend:
    __slots__ = ("next", "snippet", "start")

    def __init__(self, send: Any, snippet: bytes) -> None:
        self.next = send
        self.snippet = snippet
        self.start: Any = None

    def send(self, message: Any) -> Any:
        start = self.start
        if start is None:
            if message["type"] == "http.response.start":
                for name, value in message["headers"]:
                    if name == b"content-type" and value.startswith(b"text/html"):
                        self.start = message
                        return _DONE
            return self.next(message)
        self.start = None
        if message.get("more_body", False):  # streamed: passed on untouched
            return self._two(start, message)
        body = message["body"]
        i = body.rfind(b"</body>")
        if i >= 0:
            view = memoryview(body)
            body = b"".join((view[:i], self.snippet, view[i:]))
            message["body"] = body
        start["headers"] = [(k, v) for k, v in start["headers"] if k != b"content-length"]
        start["headers"].append((b"content-length", b"%d" % len(body)))
        return self._two(start, message)

    async def _two(self, first: Any, second: Any) -> None:
        await self.next(first)
        await self.next(second)

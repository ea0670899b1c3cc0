"""A bare app for the server access-log test: nothing of consentmw in front of it, so
only the logging configuration stands between the request and the log."""

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request):  # type: ignore[no-untyped-def]
    return PlainTextResponse("hello")


app = Starlette(routes=[Route("/{path:path}", hello)])

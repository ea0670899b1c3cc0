"""consent_state() gives app code the same answer the middleware enforces."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from consentmw import ConsentMiddleware, ConsentState, consent_state
from consentmw.fastapi import ConsentDep

from .conftest import SECRET, client_for


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/direct")
    def direct(state: ConsentState = Depends(consent_state)) -> dict[str, object]:
        return {"analytics": state.allows("analytics"), "summary": state.summary}

    @app.get("/alias")
    def alias(state: ConsentDep) -> dict[str, object]:
        return {"analytics": state.allows("analytics"), "summary": state.summary}

    app.add_middleware(ConsentMiddleware, secret_key=SECRET, records_url=None)
    return app


async def test_depends_consent_state_in_fastapi() -> None:
    async with client_for(fastapi_app(), base_url="https://www.example.no") as client:
        for route in ("/direct", "/alias"):
            assert (await client.get(route)).json() == {"analytics": False, "summary": "undecided"}
        await client.post("/_consent", data={"action": "accept_all"})
        for route in ("/direct", "/alias"):
            assert (await client.get(route)).json() == {"analytics": True, "summary": "granted"}


def test_outside_the_middleware_nothing_is_assumed() -> None:
    state = consent_state({"type": "http"})
    assert not state.decided and not state.allows("analytics") and state.allows("necessary")


async def test_plain_asgi_scope() -> None:
    seen: list[ConsentState] = []

    async def app(scope, receive, send):
        seen.append(consent_state(scope))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with client_for(ConsentMiddleware(app, secret_key=SECRET, records_url=None)) as c:
        await c.get("/", headers={"Sec-GPC": "1"})
    assert seen[0].signal == "gpc" and not seen[0].allows("analytics")

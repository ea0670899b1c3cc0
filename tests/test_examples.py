"""The runnable examples under examples/ work as real servers.

Each test starts the example's real server process on 127.0.0.1 (uvicorn for Starlette,
FastAPI, Litestar and Django's ASGI application; run.sh's gunicorn with 4 uvicorn
workers behind nginx for the multi-worker setting) and checks over HTTP: the banner on
an HTML page, the handler's ``_ga`` cookie dropped before consent and passed after it,
and a request log holding exactly one line per request, with masked addresses only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .conftest import SECRET, free_port

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
FORGED = "203.0.113.50"
START_TIMEOUT = 45.0


@dataclass
class Server:
    base: str
    log_dir: Path
    records: Path
    answered: int  # requests the app answered while starting (they are logged too)


def cookie_names(response: httpx.Response) -> set[str]:
    return {c.split("=", 1)[0].strip() for c in response.headers.get_list("set-cookie")}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server (run.sh passes it on), SIGKILL to its group if it hangs."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    with suppress(ProcessLookupError):  # anything the leader left behind in its group
        os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def running(
    cmd: list[str],
    cwd: Path,
    tmp: Path,
    port: int,
    env: dict[str, str] | None = None,
    probe: str = "/_consent",
) -> Iterator[Server]:
    """Start ``cmd``, wait until the app answers, yield, then stop it (even on failure)."""
    log_dir, records = tmp / "logs", tmp / "receipts.db"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTMW_")}
    environ.update(
        CONSENTMW_SECRET_KEY=SECRET,
        CONSENTMW_LOG_DIR=str(log_dir),
        CONSENTMW_RECORDS_URL=f"sqlite:///{records}",
        PYTHONDONTWRITEBYTECODE="1",
        **(env or {}),
    )
    output = tmp / "server.out"
    base = f"http://127.0.0.1:{port}"
    # Append mode: nginx opens /dev/stdout itself (a new description of this file, with
    # O_APPEND); a shared offset without O_APPEND would let the server's lines overwrite it.
    with output.open("ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=environ, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            answered = _wait_ready(proc, base + probe, output)
            yield Server(base, log_dir, records, answered)
        finally:
            _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, output: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    answered = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            # A long timeout: a probe given up on would still be logged, uncounted.
            status = httpx.get(url, timeout=START_TIMEOUT).status_code
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        if status != 502:  # 502: nginx is up, gunicorn not yet
            answered += 1
        if status < 500:
            return answered
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up:\n{output.read_text(errors='replace')[-4000:]}")


def uvicorn(app: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
            "--log-config", str(EXAMPLES / "logging.json")]  # fmt: skip


def test_logging_json_is_the_library_config() -> None:
    from consentmw.privacy import logging_config

    assert json.loads((EXAMPLES / "logging.json").read_text()) == logging_config()


def check_consent_flow(
    server: Server, client: httpx.Client, necessary: frozenset[str] = frozenset()
) -> int:
    """Banner, _ga blocked then allowed; returns how many requests the app answered."""
    before = client.get("/")
    assert before.status_code == 200, before.text
    assert "data-consentmw-snippet" in before.text and "cmw-banner" in before.text
    assert "_ga" not in cookie_names(before)  # dropped: analytics not granted
    assert necessary <= cookie_names(before)  # strictly necessary cookies pass
    accept = client.post(
        "/_consent",
        data={"action": "accept_all", "next": "/"},
        headers={"Origin": server.base},  # what a browser sends; same origin
        follow_redirects=True,
    )
    assert [r.status_code for r in accept.history] == [303], accept.text
    assert accept.status_code == 200 and accept.url.path == "/"
    assert "_ga" in cookie_names(accept)
    after = client.get("/")
    assert "_ga" in cookie_names(after) and "cmw-banner" not in after.text
    return 4


def read_log(log_dir: Path) -> list[dict[str, object]]:
    files = sorted(log_dir.glob("requests-*.jsonl"))
    assert files, f"no request log in {log_dir}: {list(log_dir.iterdir())}"
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def check_log(log_dir: Path, expected_lines: int, raw: tuple[str, ...] = ("127.0.0.1",)) -> None:
    """One line per request, masked addresses only, no raw address in any file."""
    lines = read_log(log_dir)
    assert len(lines) == expected_lines, [(r["method"], r["path"]) for r in lines]
    assert {r["ip"] for r in lines} == {"127.0.0.0"}
    for path in log_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for address in raw:
                assert address.encode() not in data, f"{address} in {path}"
    assert lines[-1]["consent"] == "granted" and lines[0]["consent"] == "undecided"


# ------------------------------------------------------------------------------------------
# uvicorn: Starlette, FastAPI, Litestar, Django


def _state(client: httpx.Client) -> dict[str, object]:
    response = client.get("/state")
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize(
    ("folder", "app"),
    [
        ("starlette", "app:app"),
        ("fastapi", "app:app"),
        ("litestar", "app:app"),
    ],
)
def test_uvicorn_example(folder: str, app: str, tmp_path: Path) -> None:
    port = free_port()
    with (
        running(uvicorn(app, port), EXAMPLES / folder, tmp_path, port) as server,
        httpx.Client(base_url=server.base, timeout=10) as client,
    ):
        assert _state(client) == {"decided": False, "granted": []}
        answered = server.answered + 1 + check_consent_flow(server, client)
        # Handler code sees the state through consent_state(...) / the FastAPI dependency.
        assert _state(client) == {"decided": True, "granted": ["analytics"]}
        answered += 1
        client.get(SECRET_PATHS[0])  # a query string the access log must not keep
        answered += 1
    check_log(server.log_dir, answered)
    assert _receipts(server.records) == 1
    check_access_logs((tmp_path / "server.out").read_text(errors="replace"), nginx=False)


def test_django_example(tmp_path: Path) -> None:
    port = free_port()
    cmd = uvicorn("project.asgi:application", port)
    with (
        running(cmd, EXAMPLES / "django", tmp_path, port) as server,
        httpx.Client(base_url=server.base, timeout=10) as client,
    ):
        page = client.get("/")
        # The template reads the consent state through the context processor.
        assert "<code>undecided</code>" in page.text and 'id="analytics-off"' in page.text
        # Django's own cookies are declared necessary and pass without consent.
        necessary = frozenset({"sessionid", "csrftoken"})
        answered = server.answered + 1 + check_consent_flow(server, client, necessary)
        page = client.get("/")
        assert "<code>granted</code>" in page.text and 'id="analytics-on"' in page.text
        assert necessary | {"_ga"} <= cookie_names(page)
        answered += 1
        client.get("/?token=SECRET&phone=4791234567")
        answered += 1
    check_log(server.log_dir, answered)
    assert _receipts(server.records) == 1
    output = (tmp_path / "server.out").read_text(errors="replace")
    check_access_logs(output, nginx=False, expect="/")


def _receipts(records: Path) -> int:
    with closing(sqlite3.connect(records)) as db:
        rows = db.execute("SELECT masked_ip, action FROM receipts").fetchall()
    assert all(ip == "127.0.0.0" for ip, _ in rows), rows
    return len(rows)


# ------------------------------------------------------------------------------------------
# gunicorn with 4 uvicorn workers behind nginx


@pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")
def test_multiworker_behind_nginx(tmp_path: Path) -> None:
    port, app_port = free_port(), free_port()
    while app_port == port:
        app_port = free_port()
    env = {"PORT": str(port), "APP_PORT": str(app_port), "PYTHON": sys.executable,
           "NGINX": NGINX, "CONSENTMW_TRUSTED_PROXIES": "127.0.0.1"}  # fmt: skip
    folder = EXAMPLES / "multiworker"
    cmd = ["bash", str(folder / "run.sh")]
    forged = {"X-Forwarded-For": FORGED}  # a client pretending to be someone else
    with (
        running(cmd, folder, tmp_path, port, env, probe="/healthz") as server,
        httpx.Client(base_url=server.base, timeout=20, headers=forged) as client,
    ):
        answered = server.answered + check_consent_flow(server, client)
        cookie = client.cookies.get("consentmw")
        assert cookie

        # The consent cookie one worker signed is honoured by every other worker. Asked
        # of gunicorn directly, one fresh connection per request: nginx keeps its upstream
        # connections alive, and on a busy machine one worker may have accepted them all.
        app_base = f"http://127.0.0.1:{app_port}"

        def fetch(_: int) -> dict[str, object]:
            with httpx.Client(base_url=app_base, timeout=20) as c:
                c.cookies.set("consentmw", cookie)
                response = c.get("/state", headers={"Connection": "close"})
                assert response.status_code == 200
                return response.json()

        # The kernel hands each new connection to whichever worker accepts first; batches
        # of concurrent requests until all 4 have answered (or enough).
        states: list[dict[str, object]] = []
        with ThreadPoolExecutor(8) as pool:
            while len(states) < 192 and len({s["worker"] for s in states}) < 4:
                states += pool.map(fetch, range(16))
        answered += len(states)
        assert all(s["decided"] and s["granted"] == ["analytics"] for s in states), states
        workers = {s["worker"] for s in states}
        assert len(workers) >= 2, f"all requests went to one worker: {workers}"
        # Secrets in the query string, an encoded query, a path parameter, a path token.
        for path in SECRET_PATHS:
            client.get(path)
        answered += len(SECRET_PATHS)
    # Exactly one line per request across the 4 workers (and whole lines: all parse),
    # neither the real nor the forged address in it, masked or not.
    check_log(server.log_dir, answered, raw=("127.0.0.1", "203.0."))
    assert _receipts(server.records) == 1
    check_access_logs((tmp_path / "server.out").read_text(errors="replace"))


SECRET_PATHS = (
    "/state?token=SECRET&phone=4791234567",
    "/healthz%3Fphone=4791234567",
    "/healthz;jsessionid=SESSION1",
    "/reset/8f14e45fceea167a5a36dedd4bea2543",
)


def check_access_logs(output: str, nginx: bool = True, expect: str = "/state") -> None:
    """nginx's and gunicorn's/uvicorn's access lines: masked client, no query, no token."""
    proxy = [line for line in output.splitlines() if line.startswith("nginx ")]
    server = [line for line in output.splitlines() if '"GET /' in line and line not in proxy]
    assert server and (proxy or not nginx), output[-3000:]
    assert any(f'127.0.0.0 - "GET {expect} HTTP/1.1" 200' in line for line in server), server
    if nginx:
        check_nginx_lines(proxy)
    for line in proxy + server:
        for secret in ("127.0.0.1", "203.0.", "SECRET", "4791234567", "?", "jsessionid",
                       "8f14e45fceea"):  # fmt: skip
            assert secret not in line, (secret, line)


def check_nginx_lines(nginx: list[str]) -> None:
    for line in nginx:
        assert line.startswith("nginx 127.0.0.0 - ["), line
    assert any('"GET /state HTTP/1.1" 200' in line for line in nginx), nginx
    assert any('"GET /reset/:token HTTP/1.1" 404' in line for line in nginx), nginx

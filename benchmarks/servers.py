"""What both benchmark runners share: the stacks, the routes, the budgets, and a uvicorn
server per stack (pinned to the last core, with the load generator on the first).

``run.py`` loads these servers with wrk, ``instructions.py`` counts their instructions under
callgrind; both read the same scenarios and budgets from here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

STACK_LABELS = {
    "bare": "bare",
    "consent": "ConsentMiddleware",
    "full": "Consent+RequestLog",
    "naive": "naive BaseHTTPMiddleware",
    "floor": "floor (no checks)",
}
MARKER = b"data-consentmw-snippet"


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    decided: bool = False
    stacks: tuple[str, ...] = ("bare", "consent", "full", "naive", "floor")
    baseline: str | None = None  # ratio against bare of another scenario (the control)


SCENARIOS = (
    Scenario("json", "/json"),
    Scenario("html undecided", "/html"),
    Scenario("html decided", "/html", decided=True),
    Scenario("html 28 KB ctrl", "/html28", stacks=("bare",), baseline="html undecided"),
    Scenario("realistic ~1ms", "/realistic"),
    # The floor injects into bodies sent in one message only.
    Scenario("stream 1 MB", "/stream", stacks=("bare", "consent", "full", "naive")),
)


BUDGETS = (
    ("JSON / non-HTML passthrough", "json", "consent", 0.95),
    ("HTML with injection, undecided visitor", "html undecided", "consent", 0.88),
    ("HTML, decided visitor", "html decided", "consent", 0.92),
    ("realistic page (~1 ms handler)", "realistic ~1ms", "consent", 0.97),
    ("full stack with request log, 20 KB HTML", "html undecided", "full", 0.80),
    ("1 MB streamed HTML page", "stream 1 MB", "consent", 0.60),
)


def pinned(cpu: int) -> tuple[str, ...]:
    """``taskset -c CPU`` when the machine has a second core and taskset: the server and
    the load generator then never take turns on one core."""
    if (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        return ()
    return ("taskset", "-c", str(cpu))


#: Servers run on the last core, the load generator on the first.
SERVER_CPU, LOAD_CPU = (os.cpu_count() or 1) - 1, 0


# -- servers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(
        self, stack: str, http: str, rows: int, log_dir: str, wrapper: tuple[str, ...] = ()
    ) -> None:
        self.stack = stack
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTMW_")}
        env.update(BENCH_STACK=stack, BENCH_ROWS=str(rows), BENCH_LOG_DIR=log_dir)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
        cmd = [
            *pinned(SERVER_CPU),
            *wrapper,
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "apps:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--http",
            http,
            "--loop",
            "asyncio",
        ]
        # stderr goes to a file: an unread pipe fills up (uvicorn warns on every connection
        # wrk cuts at the end of a run) and then blocks the server mid-benchmark.
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(cmd, env=env, cwd=HERE, stderr=self.stderr)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stderr.seek(0)
                err = self.stderr.read().decode(errors="replace")
                raise RuntimeError(f"server {self.stack} exited: {err}")
            try:
                with urllib.request.urlopen(self.base + "/json", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server {self.stack} did not start in {timeout}s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def fetch(url: str, cookie: str | None = None, data: bytes | None = None) -> tuple[int, Any, bytes]:
    req = urllib.request.Request(url, data=data)
    if cookie:
        req.add_header("Cookie", cookie)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def decided_cookie(server: Server) -> str:
    """A visitor who refused everything: POST /_consent, keep the consent cookie."""
    status, headers, _ = fetch(server.base + "/_consent", data=b"action=reject_all&next=/")
    for value in headers.get_all("set-cookie") or []:
        if value.startswith("consentmw="):
            return value.split(";", 1)[0]
    raise RuntimeError(f"POST /_consent gave {status} without a consent cookie")


def find_tool(name: str, package: str | None = None) -> str | None:
    """``name`` on PATH, installed from Debian (``package``) when missing and we are root."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path:
        return path
    if shutil.which("apt-get") and os.geteuid() == 0:
        print(f"{name} missing: apt-get install -y {package or name}", file=sys.stderr)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", package or name],
            check=False,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    return shutil.which(name)

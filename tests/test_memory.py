"""Oversized request headers do not pin memory in a real uvicorn (httptools) process.

uvicorn with httptools accepts headers up to 8 MB, so every cache keyed on request data
must stay bounded in bytes, not only in entries. Each flood below sends headers that are
all different (so an entry-bounded cache would keep every one) and checks the server's
resident memory (VmRSS) grows by less than 20 MB and that it still answers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
MAX_GROWTH_MB = 20


@pytest.fixture
def server() -> Iterator[tuple[int, int]]:
    """A uvicorn process (httptools parser, from uvicorn[standard] in the test extra)
    serving the test site behind ConsentMiddleware."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "tests.conftest:make_app",
         "--http", "httptools", "--port", str(port), "--log-level", "warning",
         "--no-access-log"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            if request(port, b"/", []).startswith(b"HTTP/1.1 200"):
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"uvicorn did not start: {out}")
        time.sleep(0.1)
    yield port, proc.pid
    proc.terminate()
    proc.wait(timeout=15)


def request(port: int, path: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """One HTTP/1.1 request on a fresh connection; the whole response."""
    head = b"GET " + path + b" HTTP/1.1\r\n"
    if not any(name == b"host" for name, _ in headers):
        head += b"host: www.example.no\r\n"
    for name, value in headers:
        head += name + b": " + value + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + b"connection: close\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def flood(
    server: tuple[int, int], count: int, headers: Callable[[int], list[tuple[bytes, bytes]]]
) -> float:
    """RSS growth (MB) over ``count`` requests, after a warm-up of the same kind."""
    port, pid = server
    for i in range(20):  # warm-up: code paths, allocator arenas, the caches' first entries
        request(port, b"/", headers(count + i))
    before = rss_mb(pid)
    for i in range(count):
        response = request(port, b"/", headers(i))
        assert response.startswith(b"HTTP/1.1 "), response[:100]
        assert not response.startswith(b"HTTP/1.1 5"), response[:100]
    growth = rss_mb(pid) - before
    assert request(port, b"/", []).startswith(b"HTTP/1.1 200")  # still answers
    print(f"RSS {before:.1f} MB -> +{growth:.1f} MB after {count} requests")
    return growth


def test_megabyte_cookie_headers(server: tuple[int, int]) -> None:
    filler = b"v" * MB

    def headers(i: int) -> list[tuple[bytes, bytes]]:
        cookie = b"_ga=GA1.1.1.1; consentmw=junk; big%d=" % i + filler
        return [(b"cookie", cookie)]

    assert flood(server, 200, headers) < MAX_GROWTH_MB


def test_many_long_cookie_names(server: tuple[int, int]) -> None:
    filler = b"n" * (100 * 1024)

    def headers(i: int) -> list[tuple[bytes, bytes]]:
        return [(b"cookie", b"_ga=GA1.1.1.1; %d" % i + filler + b"=1")]

    assert flood(server, 1500, headers) < MAX_GROWTH_MB


def test_megabyte_host_headers(server: tuple[int, int]) -> None:
    filler = b"h" * MB

    def headers(i: int) -> list[tuple[bytes, bytes]]:
        return [(b"host", b"%d." % i + filler), (b"cookie", b"_ga=GA1.1.1.1")]

    assert flood(server, 200, headers) < MAX_GROWTH_MB

"""10,000 hostile requests against a real uvicorn process: no 5xx, and it still serves.

Raw sockets, so nothing on the client side tidies the bytes up: non-ASCII and broken
percent-escapes in paths, odd methods, huge and garbage headers, tampered cookies and
random bodies of every content type. The seed is fixed, so a failure can be replayed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlencode

from .conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261127
REQUESTS = 10_000
CONCURRENCY = 24
PREFIX = b"/_consent"
PROBE = b"GET /_consent HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"

SUBPATHS = [b"", b"/", b"/preferences", b"/cookies", b"/me", b"/forget", b"/static/x/consent.js",
            b"/static/", b"/nothing", b"//", b"/%2e%2e/%2e%2e"]  # fmt: skip
PAGES = ["/", "/søk", "/blog/✓-tips", "/a b", "/100%", "/%zz", "/%E2%9C%93", "/\\x", "//evil"]
METHODS = [b"GET", b"GET", b"POST", b"POST", b"POST", b"HEAD", b"PUT", b"DELETE",
           b"OPTIONS", b"PATCH", b"get", b"FOO", b"CONNECT"]  # fmt: skip
CONTENT_TYPES = [b"application/json", b"application/x-www-form-urlencoded", b"text/plain",
                 b"multipart/form-data; boundary=zz", b"application/json; charset=latin-1",
                 b"\xff\xfe", b""]  # fmt: skip


HEADER_NAMES = [b"origin", b"referer", b"sec-fetch-site", b"accept", b"accept-language",
                b"sec-gpc", b"user-agent", b"x-garbage"]  # fmt: skip


def rand_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def rand_text(rng: random.Random, n: int) -> str:
    alphabet = "aø✓/%?&=#\\ \"'<>;:\x00\u2028é" + "abcdefgh"
    return "".join(rng.choice(alphabet) for _ in range(n))


def header_safe(data: bytes) -> bytes:
    """Garbage a server passes on in a header value: visible ASCII and obs-text bytes."""
    return bytes(b if b >= 0x20 and b != 0x7F else 0x2A for b in data)


def path_garbage(rng: random.Random, n: int) -> bytes:
    """Mostly percent-encoded random bytes (what browsers send), now and then raw ones."""
    data = rand_bytes(rng, n)
    if rng.random() < 0.1:
        return bytes(b for b in data if b > 0x20 and b != 0x7F)
    return quote(data, safe="/%?=&").encode()


def body_for(rng: random.Random, ctype: bytes) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return rand_bytes(rng, rng.randrange(0, 2000))
    if kind == 1:
        return b"[" * rng.randrange(500, 60000)
    if kind == 2:
        pairs = [
            (rng.choice(["action", "category", "next", "source", "lang"]), rand_text(rng, 12))
            for _ in range(rng.randrange(0, 6))
        ]
        pairs.append(("action", rng.choice(["accept_all", "reject_all", "save"])))
        pairs.append(("next", "/" + rand_text(rng, 10)))
        return urlencode(pairs).encode()
    if kind == 3:
        value = {"action": rng.choice(["accept_all", "save", 3, None, []]),
                 "categories": rng.choice([["analytics"], "x", [1], [[]], {}])}  # fmt: skip
        return json.dumps(value).encode()
    if kind == 4:
        return rand_text(rng, rng.randrange(0, 300)).encode("utf-8", "surrogatepass")
    return b""


def request_bytes(rng: random.Random, cookie: bytes) -> bytes:
    if rng.random() < 0.85:
        path = PREFIX + rng.choice(SUBPATHS) + path_garbage(rng, rng.choice([0, 0, 3, 12]))
    else:
        page = rng.choice(PAGES)
        path = page.encode() if rng.random() < 0.2 else quote(page, safe="/%\\").encode()
    path = bytes(b for b in path if b > 0x20)  # a space ends the request target
    if not path.startswith(b"/"):
        path = b"/" + path
    if rng.random() < 0.5:
        path += b"?" + path_garbage(rng, rng.randrange(0, 60))
    method = rng.choice(METHODS)
    headers = [(b"host", rng.choice([b"www.example.no", b"127.0.0.1", b"\xc3\xb8.no", b"x:1"]))]
    for _ in range(rng.randrange(0, 6)):
        name = rng.choice(HEADER_NAMES)
        value = rng.choice([b"https://www.example.no", b"null", b"same-site", b"none",
                            b"same-origin", b"https://evil.example", b"application/json",
                            header_safe(rand_bytes(rng, rng.randrange(0, 200)))])  # fmt: skip
        headers.append((name, value))
    if rng.random() < 0.03:
        headers.append((b"x-huge", b"a" * rng.randrange(4000, 12000)))
    if rng.random() < 0.03:  # control bytes: the server's parser refuses these
        headers.append((b"x-control", rand_bytes(rng, 20).replace(b"\r", b"").replace(b"\n", b"")))
    cookie_kind = rng.randrange(4)
    if cookie_kind == 1:
        headers.append((b"cookie", b"consentmw=" + cookie))
    elif cookie_kind == 2:
        tampered = bytearray(cookie)
        tampered[rng.randrange(len(tampered))] ^= 0x01
        headers.append((b"cookie", b"consentmw=" + bytes(tampered) + b"; _ga=GA1.1.1"))
    elif cookie_kind == 3:
        headers.append((b"cookie", header_safe(rand_bytes(rng, rng.randrange(1, 400)))))
    body = b""
    if method in (b"POST", b"PUT", b"PATCH") or rng.random() < 0.1:
        ctype = rng.choice(CONTENT_TYPES)
        body = body_for(rng, ctype)
        if ctype:
            headers.append((b"content-type", ctype))
    headers.append((b"content-length", str(len(body)).encode()))
    headers.append((b"connection", b"close"))
    head = b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    return method + b" " + path + b" HTTP/1.1\r\n" + head + b"\r\n" + body


async def send_one(port: int, data: bytes) -> int:
    """The status the server answers ``data`` with (0: closed without one; -1: hung)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        await asyncio.wait_for(reader.read(), 5)  # the whole answer, until the close
    except (ConnectionResetError, BrokenPipeError):
        return 0
    except TimeoutError:
        return -1
    finally:
        writer.close()
    parts = line.split(b" ", 2)
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0


async def fuzz(port: int, cookie: bytes) -> dict[int, list[bytes]]:
    rng = random.Random(SEED)
    requests = [request_bytes(rng, cookie) for _ in range(REQUESTS)]
    seen: dict[int, list[bytes]] = {}
    queue = iter(requests)

    async def worker() -> None:
        for data in queue:
            status = await send_one(port, data)
            seen.setdefault(status, []).append(data[:300])

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return seen


async def wait_until_up(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "uvicorn exited at start-up"
        try:
            status = await send_one(port, PROBE)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        if status == 200:
            return
    raise AssertionError("uvicorn did not start within 60 s")


def test_ten_thousand_hostile_requests_get_no_5xx(tmp_path: Path) -> None:
    from consentmw.consent import ConsentCodec, ConsentState

    from .conftest import SECRET

    codec = ConsentCodec((SECRET.encode(),), "1", 182 * 86400)
    cookie = codec.encode(ConsentState(decided=True, policy_version="1")).encode()
    port = free_port()
    env = dict(
        os.environ,
        FUZZ_RECORDS_URL=f"sqlite:///{tmp_path}/receipts.db",
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    )
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "tests.fuzz_app:create_app", "--factory"),
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--log-level", "warning", "--no-access-log"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        asyncio.run(wait_until_up(port, server))
        began = time.monotonic()
        seen = asyncio.run(fuzz(port, cookie))
        took = time.monotonic() - began
        after = asyncio.run(send_one(port, PROBE))
        alive = server.poll() is None
    finally:
        server.send_signal(signal.SIGINT)
        try:
            output = server.communicate(timeout=30)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            server.kill()
            output = server.communicate()[0].decode(errors="replace")
    counts = {status: len(items) for status, items in sorted(seen.items())}
    print(f"{REQUESTS} requests in {took:.1f} s: {counts}")
    errors = {s: items[:3] for s, items in seen.items() if s >= 500 or s == -1}
    assert not errors, errors
    assert sum(counts.values()) == REQUESTS
    assert alive and after == 200
    assert "Traceback" not in output and "Exception in ASGI" not in output, output[-4000:]
    # Most requests must reach the app, not be turned away by uvicorn's parser.
    assert sum(n for status, n in counts.items() if status not in (0, 400)) > REQUESTS // 2

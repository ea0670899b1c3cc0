"""10,000 hostile requests against a real uvicorn process: no 5xx, and it still serves.

Raw sockets, so nothing on the client side tidies the bytes up: non-ASCII and broken
percent-escapes in paths, odd methods, huge and garbage headers, tampered cookies and
random bodies of every content type, to the consent routes and to the app's pages. Valid
decisions are mixed in, so the receipt store takes concurrent writes throughout. The seed
is fixed: a failure names the request, and the run can be replayed.

The server's output goes to a file, never to a pipe nobody reads while the run lasts: a
full pipe (64 KiB of uvicorn's "Invalid HTTP request received." warnings, about 5,000
requests in) blocks the server's event loop in the logging call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from .conftest import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261127
REQUESTS = 10_000
CONCURRENCY = 12
#: Far above the slowest answer seen (well under a second on a busy 2-core machine): a
#: request that takes this long is a hang, and fails the test with its bytes.
REQUEST_TIMEOUT = 20.0
#: What uvicorn's HTTP parser (httptools or h11) answers bytes it cannot parse with.
PARSER_REFUSAL = b"Invalid HTTP request received."
ORIGIN = b"https://www.example.no"
PREFIX = b"/_consent"

SUBPATHS = [b"", b"/", b"/preferences", b"/cookies", b"/me", b"/forget", b"/static/x/consent.js",
            b"/static/", b"/nothing", b"//", b"/%2e%2e/%2e%2e"]  # fmt: skip
PAGES = ["/", "/søk", "/blog/✓-tips", "/a b", "/100%", "/%zz", "/%E2%9C%93", "/\\x", "//evil",
         "/søk?q=blåbær"]  # fmt: skip
METHODS = [b"GET", b"GET", b"POST", b"POST", b"POST", b"HEAD", b"PUT", b"DELETE",
           b"OPTIONS", b"PATCH", b"get", b"FOO", b"CONNECT"]  # fmt: skip
CONTENT_TYPES = [b"application/json", b"application/x-www-form-urlencoded", b"text/plain",
                 b"multipart/form-data; boundary=zz", b"application/json; charset=latin-1",
                 b"\xff\xfe", b""]  # fmt: skip
HEADER_NAMES = [b"origin", b"referer", b"sec-fetch-site", b"accept", b"accept-language",
                b"sec-gpc", b"user-agent", b"x-garbage", b"x-forwarded-for"]  # fmt: skip
HEADER_VALUES = [ORIGIN, b"null", b"same-site", b"none", b"same-origin", b"https://evil.example",
                 b"application/json", b"nb-NO,nb;q=0.9", b"1"]  # fmt: skip
ACTIONS = ["accept_all", "reject_all", "save"]


def rand_text(rng: random.Random, n: int) -> str:
    alphabet = "aø✓/%?&=#\\ \"'<>;:\x00\u2028é\ud800" + "abcdefgh"
    return "".join(rng.choice(alphabet) for _ in range(n))


def header_safe(data: bytes) -> bytes:
    """Garbage a server passes on in a header value: visible ASCII and obs-text bytes."""
    return bytes(b if b >= 0x20 and b != 0x7F else 0x2A for b in data)


def path_garbage(rng: random.Random, n: int) -> bytes:
    """Mostly percent-encoded random bytes (what browsers send), now and then raw ones."""
    data = rng.randbytes(n)
    if rng.random() < 0.05:
        return bytes(b for b in data if b > 0x20 and b != 0x7F)
    return quote(data, safe="/%?=&").encode()


def body_for(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 2000))
    if kind == 1:  # deep JSON, and over the size limit now and then
        return b"[" * rng.choice([rng.randrange(500, 5000), rng.randrange(60_000, 80_000)])
    if kind == 2:
        pairs = [
            (rng.choice(["action", "category", "next", "source", "lang"]), rand_text(rng, 12))
            for _ in range(rng.randrange(0, 6))
        ]
        pairs.append(("action", rng.choice(ACTIONS)))
        pairs.append(("next", "/" + rand_text(rng, 10)))
        return urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode()
    if kind == 3:
        value = {"action": rng.choice([*ACTIONS, 3, None, []]),
                 "categories": rng.choice([["analytics"], "x", [1], [[]], {}])}  # fmt: skip
        return json.dumps(value).encode()
    if kind == 4:
        return rand_text(rng, rng.randrange(0, 300)).encode("utf-8", "surrogatepass")
    return b""


def cookie_header(rng: random.Random, cookie: bytes) -> bytes | None:
    kind = rng.randrange(4)
    if kind == 1:
        return b"consentmw=" + cookie
    if kind == 2:
        tampered = bytearray(cookie)
        tampered[rng.randrange(len(tampered))] ^= 0x01
        return b"consentmw=" + bytes(tampered) + b"; _ga=GA1.1.1"
    if kind == 3:
        return header_safe(rng.randbytes(rng.randrange(1, 400)))
    return None


def finish(method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """One request on its own connection: Connection: close, and a true Content-Length."""
    headers = [*headers, (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return method + b" " + path + b" HTTP/1.1\r\n" + head + b"\r\n" + body


@dataclass
class FuzzRequest:
    data: bytes
    decision: bool = False  # a well-formed decision from the site's own page
    #: Bytes an HTTP parser may refuse: a method llhttp does not know, raw non-ASCII in the
    #: request target, control bytes in a header value.
    malformed: bool = False


def decision(rng: random.Random, cookie: bytes) -> FuzzRequest:
    """A well-formed consent decision from the site's own page: a receipt gets written."""
    headers = [(b"host", b"www.example.no"), (b"origin", ORIGIN)]
    if (value := cookie_header(rng, cookie)) is not None:
        headers.append((b"cookie", value))
    categories = rng.choice([[], ["analytics"], ["necessary", "analytics"]])
    if rng.random() < 0.5:
        body = json.dumps({"action": rng.choice(ACTIONS), "categories": categories}).encode()
        headers.append((b"content-type", b"application/json"))
    else:
        pairs = [("action", rng.choice(ACTIONS)), ("next", "/søk?q=" + rand_text(rng, 5))]
        pairs += [("category", name) for name in categories]
        body = urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode()
        headers.append((b"content-type", b"application/x-www-form-urlencoded"))
    return FuzzRequest(finish(b"POST", PREFIX, headers, body), decision=True)


def hostile(rng: random.Random, cookie: bytes) -> FuzzRequest:
    if rng.random() < 0.7:
        path = PREFIX + rng.choice(SUBPATHS) + path_garbage(rng, rng.choice([0, 0, 3, 12]))
    else:
        page = rng.choice(PAGES)
        path = page.encode() if rng.random() < 0.1 else quote(page, safe="/%\\?=").encode()
    path = bytes(b for b in path if b > 0x20)  # a space ends the request target
    if not path.startswith(b"/"):
        path = b"/" + path
    if rng.random() < 0.5:
        path += b"?" + path_garbage(rng, rng.randrange(0, 60))
    method = rng.choice(METHODS)
    headers = [(b"host", rng.choice([b"www.example.no", b"127.0.0.1", b"\xc3\xb8.no", b"x:1"]))]
    for _ in range(rng.randrange(0, 6)):
        value = rng.choice([*HEADER_VALUES, header_safe(rng.randbytes(rng.randrange(0, 200)))])
        headers.append((rng.choice(HEADER_NAMES), value))
    if rng.random() < 0.03:
        headers.append((b"x-huge", b"a" * rng.randrange(4000, 12000)))
    control = rng.random() < 0.02
    if control:
        garbage = rng.randbytes(20).replace(b"\r", b"").replace(b"\n", b"")
        headers.append((b"x-control", garbage))
    if (value := cookie_header(rng, cookie)) is not None:
        headers.append((b"cookie", value))
    body = b""
    if method in (b"POST", b"PUT", b"PATCH") or rng.random() < 0.1:
        content_type = rng.choice(CONTENT_TYPES)
        body = body_for(rng)
        if content_type:
            headers.append((b"content-type", content_type))
    malformed = control or method in (b"get", b"FOO") or any(b >= 0x80 for b in path)
    return FuzzRequest(finish(method, path, headers, body), malformed=malformed)


def fuzz_requests(cookie: bytes) -> list[FuzzRequest]:
    rng = random.Random(SEED)
    return [
        decision(rng, cookie) if rng.random() < 0.1 else hostile(rng, cookie)
        for _ in range(REQUESTS)
    ]


# -- the client --------------------------------------------------------------------------------
@dataclass
class Answer:
    status: int  # 0: the connection ended before a status line
    refused: bool = False  # uvicorn's parser turned the bytes away
    complete: bool = True  # the body arrived in full, by its framing
    timed_out: bool = False
    body: bytes = b""


async def send_all(sock: socket.socket, data: bytes) -> None:
    """Sends while the answer is read: a server may answer before it reads a large body,
    close, and so end the sending; the answer is already on its way."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        await asyncio.get_running_loop().sock_sendall(sock, data)


def header(head: bytes, wanted: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == wanted:
            return value.strip()
    return None


def content_length(head: bytes, status: int) -> int | None:
    """The body's length by ``head``'s framing; None: until the connection closes."""
    if status in (204, 304) or status < 200:
        return 0
    value = header(head, b"content-length")
    return None if value is None else int(value)


async def read_answer(sock: socket.socket, request: bytes) -> Answer:
    """Reads the answer by its framing. A HEAD answer is read to the close, since the
    parser's refusal (sent before the method is known) has a body and the app's has none."""
    loop = asyncio.get_running_loop()
    head_only = request.startswith(b"HEAD ")
    data = b""
    status = 0
    length: int | None = None
    head_end = -1
    while True:
        try:
            chunk = await loop.sock_recv(sock, 65536)
        except ConnectionResetError:
            chunk = b""
        data += chunk
        if head_end < 0 and (head_end := data.find(b"\r\n\r\n")) >= 0:
            parts = data[: data.find(b"\r\n")].split(b" ", 2)
            status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
            length = content_length(data[:head_end], status)
        if not chunk:
            break
        received = len(data) - head_end - 4
        if head_end >= 0 and not head_only and length is not None and received >= length:
            break
    body = data[head_end + 4 :] if head_end >= 0 else b""
    refused = status == 400 and body == PARSER_REFUSAL
    if head_only and not refused:
        complete = head_end >= 0 and not body
    else:
        chunked = header(data[:head_end], b"transfer-encoding") == b"chunked"
        whole = body.endswith(b"0\r\n\r\n") if chunked else length in (None, len(body))
        complete = head_end >= 0 and whole
    return Answer(status, refused=refused, complete=complete, body=body)


async def send_one(port: int, request: bytes) -> Answer:
    """The server's answer to ``request``, sent on a connection of its own."""
    sock = socket.socket()
    sock.setblocking(False)
    sending: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            sending = asyncio.create_task(send_all(sock, request))
            answer = await read_answer(sock, request)
    except TimeoutError:
        return Answer(0, complete=False, timed_out=True)
    finally:
        if sending is not None:
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending
        sock.close()
    return answer


async def fuzz(port: int, requests: list[FuzzRequest]) -> list[Answer | None]:
    """Each request's answer; after a request hangs, no more are sent (None)."""
    answers: list[Answer | None] = [None] * len(requests)
    queue = iter(enumerate(requests))
    hung = asyncio.Event()

    async def worker() -> None:
        for index, request in queue:
            if hung.is_set():
                return
            answer = answers[index] = await send_one(port, request.data)
            if answer.timed_out:
                hung.set()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return answers


# -- the server --------------------------------------------------------------------------------
def http_implementation() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


async def wait_until_up(port: int, server: subprocess.Popen[bytes]) -> None:
    probe = finish(b"GET", PREFIX, [(b"host", b"www.example.no")], b"")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "uvicorn exited at start-up"
        with contextlib.suppress(OSError):
            if (await send_one(port, probe)).status == 200:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("uvicorn did not start within 60 s")


async def still_serves(port: int, cookie: bytes) -> dict[str, tuple[int, bool]]:
    """A normal page (with the banner) and each consent route, once the run is over."""
    host = [(b"host", b"www.example.no")]
    with_cookie = [*host, (b"cookie", b"consentmw=" + cookie)]
    form = [*host, (b"origin", ORIGIN), (b"content-type", b"application/x-www-form-urlencoded")]
    checks = {
        "page": finish(b"GET", b"/s%C3%B8k", host, b""),
        "state": finish(b"GET", PREFIX, host, b""),
        "preferences": finish(b"GET", PREFIX + b"/preferences", host, b""),
        "cookies": finish(b"GET", PREFIX + b"/cookies", host, b""),
        "me": finish(b"GET", PREFIX + b"/me", with_cookie, b""),
        "decide": finish(b"POST", PREFIX, form, b"action=accept_all&next=%2Fs%C3%B8k"),
    }
    answers = {name: await send_one(port, request) for name, request in checks.items()}
    assert b"data-cmw-banner" in answers["page"].body, answers["page"]
    return {name: (answer.status, answer.complete) for name, answer in answers.items()}


#: All the server may say in a run: uvicorn's warnings about what its parser turns away.
EXPECTED_OUTPUT = (
    "WARNING:  Invalid HTTP request received.",
    "WARNING:  Unsupported upgrade request.",  # CONNECT
    "WARNING:  No supported WebSocket library detected.",
)


def unexpected_output(output: str) -> list[str]:
    return [line for line in output.splitlines() if not line.startswith(EXPECTED_OUTPUT)]


def receipt_count(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return int(connection.execute("SELECT count(*) FROM receipts").fetchone()[0])


def test_ten_thousand_hostile_requests_get_no_5xx(tmp_path: Path) -> None:
    from consentmw.consent import ConsentCodec, ConsentState

    from .conftest import SECRET

    codec = ConsentCodec((SECRET.encode(),), "1", 182 * 86400)
    cookie = codec.encode(ConsentState(decided=True, policy_version="1")).encode()
    requests = fuzz_requests(cookie)
    port = free_port()
    env = dict(
        os.environ,
        FUZZ_RECORDS_URL=f"sqlite:///{tmp_path}/receipts.db",
        FUZZ_LOG_DIR=str(tmp_path / "requestlog"),
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    )
    output_path = tmp_path / "server-output.txt"
    with output_path.open("wb") as output_file:
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "tests.fuzz_app:create_app", "--factory"),
                *("--host", "127.0.0.1", "--port", str(port), "--http", http_implementation()),
                *("--log-level", "warning", "--no-access-log"),
            ],
            cwd=ROOT,
            env=env,
            stdout=output_file,
            stderr=subprocess.STDOUT,
        )
    try:
        asyncio.run(wait_until_up(port, server))
        began = time.monotonic()
        answers = asyncio.run(fuzz(port, requests))
        took = time.monotonic() - began
        # After a hang the checks would only wait out their timeouts too.
        after = asyncio.run(still_serves(port, cookie)) if None not in answers else {}
        alive = server.poll() is None
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    output = output_path.read_text(errors="replace")

    sent = [answer for answer in answers if answer is not None]
    counts = Counter(
        "timeout" if a.timed_out else "refused" if a.refused else a.status for a in sent
    )
    print(f"{len(sent)} requests, {CONCURRENCY} at a time, in {took:.1f} s: {dict(counts)}")
    pairs = [(r, a) for r, a in zip(requests, answers, strict=True) if a is not None]

    def shown(request: FuzzRequest, answer: Answer) -> tuple[int, bytes]:
        return answer.status, request.data[:300]

    hung = [shown(r, a) for r, a in pairs if a.timed_out]
    assert not hung, (
        f"{len(hung)} requests got no answer in {REQUEST_TIMEOUT} s, the run stopped after "
        f"{len(sent)}; the first ones: {hung[:5]}\nserver: {output[-2000:]}"
    )
    assert len(sent) == REQUESTS
    errors = [shown(r, a) for r, a in pairs if a.status >= 500]
    assert not errors, f"{len(errors)} answers were 5xx: {errors[:5]}"
    # Every request gets a whole answer: from the app, or uvicorn's 400 for bytes its
    # parser cannot read. None may end without a status or cut short.
    unanswered = [shown(r, a) for r, a in pairs if not a.status or not a.complete]
    assert not unanswered, f"{len(unanswered)} answers missing or cut short: {unanswered[:5]}"
    # Only the genuinely malformed are turned away by the parser, and they are a minority;
    # everything else reaches the middleware.
    wrongly_refused = [shown(r, a) for r, a in pairs if a.refused and not r.malformed]
    assert not wrongly_refused, wrongly_refused[:5]
    assert counts["refused"] < REQUESTS // 4, counts
    # Concurrent decisions all go through, and the receipt store keeps every one of them.
    undecided = [shown(r, a) for r, a in pairs if r.decision and a.status not in (200, 303)]
    assert not undecided, f"{len(undecided)} decisions failed: {undecided[:5]}"
    # Decisions are POSTs to the prefix itself (with or without a trailing slash or query);
    # a POST to /forget answers 200 too but writes no receipt, and a privacy signal on a
    # decision writes none of its own.
    decided = sum(
        1
        for r, a in pairs
        if r.data.split(b" ", 2)[:2] in ([b"POST", PREFIX], [b"POST", PREFIX + b"/"])
        or r.data.startswith(b"POST " + PREFIX + b"?")
        if a.status in (200, 303)
    )
    assert decided > REQUESTS // 20, counts

    assert alive, output[-4000:]
    assert after == {
        "page": (200, True),
        "state": (200, True),
        "preferences": (200, True),
        "cookies": (200, True),
        "me": (200, True),
        "decide": (303, True),
    }, after
    # No traceback, no error from consentmw (a failing receipt store only logs): nothing
    # but the parser's warnings.
    assert not unexpected_output(output), unexpected_output(output)[:40]
    assert receipt_count(tmp_path / "receipts.db") >= decided + 1
    # One log record per request that reached the app: the run's, the start-up probe's
    # and the six checks after the run.
    records = sum(
        len(path.read_bytes().splitlines())
        for path in (tmp_path / "requestlog").glob("requests-*.jsonl")
    )
    assert records == REQUESTS - counts["refused"] + 1 + len(after), records

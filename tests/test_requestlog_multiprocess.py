"""Four real uvicorn workers share one log directory across several period boundaries.

Every request must end up as exactly one line in the file of its own period (periods of
one second, compressed 0.5 s after they end while other workers still write), and no
raw client address may appear anywhere on disk.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from consentmw.requestlog.maintenance import list_log_files
from consentmw.requestlog.periods import Schedule

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
MIN_REQUESTS = 2000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_ip(n: int) -> str:
    return f"198.51.{100 + n % 50}.{n % 251 + 1}" if n % 3 else f"2001:db8:{n % 97:x}::{n:x}"


async def hammer(port: int) -> int:
    """Send requests until MIN_REQUESTS are done and two period boundaries have passed."""
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
        for _ in range(300):  # wait for the workers
            try:
                await client.get("/ready", headers={"x-forwarded-for": "192.0.2.1"})
                break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        start = time.time()
        n = 0
        while n < MIN_REQUESTS or time.time() < int(start) + 3:
            batch = range(n, n + 200)
            responses = await asyncio.gather(
                *(
                    client.get(f"/r/{i}?secret=tok{i}", headers={"x-forwarded-for": raw_ip(i)})
                    for i in batch
                )
            )
            assert all(r.status_code == 200 for r in responses)
            n += len(batch)
        return n


def read_lines(path: Path) -> list[bytes]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        return fh.read().splitlines()


def test_four_uvicorn_workers_share_the_directory(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    port = free_port()
    env = dict(
        os.environ,
        REQUESTLOG_DIR=str(logs),
        REQUESTLOG_SECONDS="1",
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.requestlog_app:create_app",
            "--factory",
            "--workers",
            "4",
            # uvicorn kills a worker that misses a 5 s health check; on a loaded 2-core
            # machine a busy worker can, and that would cut the test's connections.
            "--timeout-worker-healthcheck",
            "60",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--proxy-headers",
            "--forwarded-allow-ips",
            "",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        total = asyncio.run(hammer(port))
    finally:
        server.send_signal(signal.SIGINT)
        try:
            output = server.communicate(timeout=30)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            server.kill()
            output = server.communicate()[0].decode(errors="replace")
    assert "dropped" not in output and "Traceback" not in output, output

    schedule = Schedule("daily", ZoneInfo("UTC"), rotation_seconds=1)
    seen: dict[str, int] = {}
    keys = set()
    files = list_log_files(logs)
    for log in files:
        for line in read_lines(log.path):
            record = json.loads(line)
            if not record["path"].startswith("/r/"):
                continue
            t = datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()
            assert schedule.key(t) == log.key, (record, log.path.name)
            seen[record["path"]] = seen.get(record["path"], 0) + 1
            keys.add(log.key)
    assert len(keys) >= 3, keys  # at least two period boundaries
    assert sorted(seen) == sorted(f"/r/{i}" for i in range(total))
    assert set(seen.values()) == {1}, "a request was logged twice"
    assert any(f.compressed for f in files)

    disk = b"".join(p.read_bytes() for p in logs.iterdir())
    disk += b"".join(b"\n".join(read_lines(f.path)) for f in files if f.compressed)
    for i in range(0, total, 7):
        assert raw_ip(i).encode() not in disk
    assert b"secret" not in disk and b"tok" not in disk

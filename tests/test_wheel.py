"""The built wheel carries templates and static files: install it in a fresh venv and serve."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SERVE = r"""
import asyncio, json, sys
import consentmw
from consentmw import ConsentMiddleware

async def app(scope, receive, send):
    raise AssertionError("the app is not reached under the prefix")

async def main():
    mw = ConsentMiddleware(app, secret_key="w" * 40, records_url=None)
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    scope = {"type": "http", "method": "GET", "path": "/_consent/cookies", "raw_path": b"",
             "query_string": b"lang=en", "headers": [(b"host", b"example.no")],
             "scheme": "http", "http_version": "1.1", "client": ("203.0.113.9", 5000),
             "server": ("example.no", 80), "asgi": {"version": "3.0"}}
    await mw(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    print(json.dumps({"status": sent[0]["status"], "file": consentmw.__file__,
                      "body": body.decode()}))

asyncio.run(main())
"""


@pytest.mark.slow
def test_wheel_installs_and_serves_cookie_declaration(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
    )
    wheel = next(dist.glob("consentmw-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True)
    result = subprocess.run(
        [str(python), "-c", SERVE], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    import json

    out = json.loads(result.stdout)
    assert out["status"] == 200
    assert str(env_dir) in out["file"]  # served from the installed wheel, not the checkout
    assert "Cookies on this site" in out["body"] and "_ga" in out["body"]
    console = env_dir / "bin" / "consentmw"
    assert console.exists()
    help_text = subprocess.run([str(console), "--help"], capture_output=True, text=True)
    assert "demo" in help_text.stdout
    # Typed (PEP 561) and classified as what it is: ASGI, not WSGI.
    import zipfile

    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        meta = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "consentmw/py.typed" in names
    assert "WSGI" not in meta and "Classifier: Typing :: Typed" in meta
    assert "Project-URL: Source" in meta

"""Where the shipped templates and static files are.

In a wheel they sit inside the package (``consentmw/templates``); in a source checkout
(editable install, tests) they are the top-level ``templates/`` and ``static/`` folders.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _locate(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"consentmw is missing its {name}/ folder (looked in {_PACKAGE})")


@cache
def templates_dir() -> Path:
    return _locate("templates")


@cache
def static_dir() -> Path:
    return _locate("static")


@dataclass(frozen=True)
class StaticFile:
    name: str
    body: bytes
    digest: str
    media_type: str


@cache
def static_files() -> dict[str, StaticFile]:
    """Every static file, read once, with its content hash (its ETag)."""
    files: dict[str, StaticFile] = {}
    for path in sorted(static_dir().iterdir()):
        if path.is_file() and not path.name.startswith("."):
            body = path.read_bytes()
            media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if media.startswith("text/") or media.endswith("javascript"):
                media += "; charset=utf-8"
            files[path.name] = StaticFile(path.name, body, hashlib.sha256(body).hexdigest(), media)
    return files


@cache
def static_digest() -> str:
    """The one content hash in every static URL (``{prefix}/static/{digest}/{name}``).

    One hash for all files, so that consent.js can name the others from its own URL (the
    page need not carry the Google loader's); 8 hex digits (32 bits) tell one release from
    the next, and every page carries two such URLs, so each digit costs on every page.
    """
    h = hashlib.sha256()
    for f in static_files().values():
        h.update(b"%d:%s\0%d:" % (len(f.name), f.name.encode(), len(f.body)))
        h.update(f.body)
    return h.hexdigest()[:8]

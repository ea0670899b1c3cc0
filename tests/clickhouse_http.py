"""ClickHouse's HTTP interface, served by chDB: enough of it for clickhouse-connect.

A real HTTP server on a local port. Each request's SQL (URL ``query`` plus body), its
``param_*`` values and its output format (a trailing ``FORMAT X``, or
``default_format``) go to one chDB session, whose output bytes are the response, so
clickhouse-connect's own client, HTTP transport and Native-format reader run unchanged.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chdb import session

_FORMAT = re.compile(r"\sFORMAT\s+(\w+)\s*$")


class ChdbHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, path: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.chdb = session.Session(path) if path else session.Session()
        self.lock = threading.Lock()  # one chDB session: one query at a time
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.chdb.close()


class _Handler(BaseHTTPRequestHandler):
    server: ChdbHTTPServer

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        args = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        size = int(self.headers.get("content-length") or 0)
        sql = args.get("query", "") + (self.rfile.read(size).decode() if size else "")
        params = {k[len("param_") :]: v for k, v in args.items() if k.startswith("param_")}
        found = _FORMAT.search(sql)
        fmt = found[1] if found else args.get("default_format", "TabSeparated")
        if found:
            sql = sql[: found.start()]
        try:
            with self.server.lock:
                out = self.server.chdb.query(sql, fmt, params=params).bytes()
        except RuntimeError as exc:  # chDB raises its errors as RuntimeError subclasses
            self._send(500, f"Code: 1. DB::Exception: {exc}".encode())
            return
        self._send(200, out, {"X-ClickHouse-Format": fmt})

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass

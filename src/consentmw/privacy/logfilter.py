"""A ``logging.Filter`` that masks client addresses and cleans paths in server logs.

Sites that keep uvicorn's or gunicorn's own access log would otherwise write full client
IPs and query strings (which carry tokens, phone numbers, e-mail addresses) to disk next
to our anonymous request log. :mod:`consentmw.privacy.logconfig` installs this filter.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote

from consentmw.privacy.ip import UNKNOWN_IP, mask_ip
from consentmw.privacy.paths import clean_path

__all__ = ["MaskIPFilter", "install_access_log_filter"]

UVICORN_ACCESS = '%s - "%s %s HTTP/%s" %d'
#: Headers gunicorn's access-log format can name (``%({x-forwarded-for}i)s``) that hold
#: addresses; they are logged as ``-``.
_ADDRESS_HEADERS = ("{x-forwarded-for}i", "{x-real-ip}i", "{forwarded}i", "{true-client-ip}i")


class MaskIPFilter(logging.Filter):
    """Masks the client and cleans the path of access-log records; never drops one.

    Knows uvicorn's access record (``'%s - "%s %s HTTP/%s" %d'``), uvicorn's WebSocket
    lines (``'%s - "WebSocket %s" ...'``, logged on ``uvicorn.error``) and gunicorn's
    access record (a dict of atoms). Paths lose their query string, ``;`` parameters
    and token-like segments (:func:`~consentmw.privacy.paths.clean_path`) unless
    ``strip_query`` is false. Other records on an access logger get their first argument
    masked; other records elsewhere pass unchanged.
    """

    def __init__(
        self, ipv4_prefix: int = 16, ipv6_prefix: int = 48, strip_query: bool = True
    ) -> None:
        super().__init__()
        mask_ip("127.0.0.1", ipv4_prefix, ipv6_prefix)  # validates the prefixes now
        self.ipv4_prefix = ipv4_prefix
        self.ipv6_prefix = ipv6_prefix
        self.strip_query = strip_query

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, dict):
            record.args = self._gunicorn(args)
        elif isinstance(args, tuple) and args and isinstance(args[0], str):
            msg = record.msg if isinstance(record.msg, str) else ""
            if '"WebSocket %s"' in msg and len(args) > 1:
                record.args = (self._mask_client(args[0]), self._path(args[1]), *args[2:])
            elif msg == UVICORN_ACCESS or "error" not in record.name:
                new = list(args)
                new[0] = self._mask_client(args[0])
                if len(new) > 2 and isinstance(new[2], str):
                    new[2] = self._path(new[2])
                record.args = tuple(new)
        return True

    def _path(self, path: object) -> object:
        if not self.strip_query or not isinstance(path, str):
            return path
        # uvicorn percent-encodes the path it logs: %3F must count as a "?" here too.
        return clean_path(unquote(path))

    def _gunicorn(self, atoms: dict[str, Any]) -> dict[str, Any]:
        atoms = dict(atoms)
        if isinstance(atoms.get("h"), str):
            atoms["h"] = self._mask_client(atoms["h"])
        for name in _ADDRESS_HEADERS:
            if name in atoms:
                atoms[name] = "-"
        if self.strip_query:
            if "q" in atoms:
                atoms["q"] = ""
            if isinstance(atoms.get("U"), str):
                atoms["U"] = clean_path(unquote(atoms["U"]))
            request = atoms.get("r")
            if isinstance(request, str):
                method, _, rest = request.partition(" ")
                target, _, protocol = rest.rpartition(" ") if " " in rest else (rest, "", "")
                path = clean_path(unquote(target))
                atoms["r"] = " ".join(p for p in (method, path, protocol) if p)
            referer = atoms.get("f")
            if isinstance(referer, str) and referer != "-":
                # Another site's path and query are theirs to keep, not ours to log.
                scheme, sep, rest = referer.partition("://")
                atoms["f"] = scheme + sep + rest.split("/", 1)[0].split("?", 1)[0] if sep else "-"
        return atoms

    def _mask_client(self, client: str) -> str:
        # "1.2.3.4:5678", "::1:5678" (uvicorn does not bracket IPv6) or a bare host.
        host, sep, port = client.rpartition(":")
        if sep and port.isdigit():
            masked = mask_ip(host, self.ipv4_prefix, self.ipv6_prefix)
            if masked != UNKNOWN_IP or host in (UNKNOWN_IP, ""):
                return masked
        return mask_ip(client, self.ipv4_prefix, self.ipv6_prefix)


def install_access_log_filter(
    ipv4_prefix: int = 16,
    ipv6_prefix: int = 48,
    strip_query: bool = True,
    logger_name: str = "uvicorn.access",
) -> MaskIPFilter:
    """Attach a :class:`MaskIPFilter` to ``logger_name`` (and its handlers) and return it.

    uvicorn configures its loggers at start-up; call this afterwards (for example from a
    lifespan handler), or better, start the server with
    ``log_config=consentmw.privacy.logging_config()``.
    """
    log_filter = MaskIPFilter(ipv4_prefix, ipv6_prefix, strip_query)
    logger = logging.getLogger(logger_name)
    logger.addFilter(log_filter)
    for handler in logger.handlers:
        handler.addFilter(log_filter)
    return log_filter

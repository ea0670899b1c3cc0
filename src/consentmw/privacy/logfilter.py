"""A ``logging.Filter`` that masks client addresses in uvicorn's access log.

Sites that keep uvicorn's own access log would otherwise write full client IPs (and
query strings, which may carry tokens) to disk next to our anonymous request log.
"""

from __future__ import annotations

import logging

from consentmw.privacy.ip import UNKNOWN_IP, mask_ip

__all__ = ["MaskIPFilter", "install_access_log_filter"]


class MaskIPFilter(logging.Filter):
    """Masks the client address of uvicorn access-log records; optionally drops queries.

    uvicorn logs ``'%s - "%s %s HTTP/%s" %d'`` with the client as ``host:port`` first.
    Records of other shapes pass through unchanged.
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
        if isinstance(args, tuple) and args and isinstance(args[0], str):
            new = list(args)
            new[0] = self._mask_client(args[0])
            if self.strip_query and len(new) > 2 and isinstance(new[2], str):
                new[2] = new[2].split("?", 1)[0]
            record.args = tuple(new)
        return True

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
    lifespan handler) or pass the filter in your ``log_config``.
    """
    log_filter = MaskIPFilter(ipv4_prefix, ipv6_prefix, strip_query)
    logger = logging.getLogger(logger_name)
    logger.addFilter(log_filter)
    for handler in logger.handlers:
        handler.addFilter(log_filter)
    return log_filter

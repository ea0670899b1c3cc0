"""Logging configurations for uvicorn and gunicorn with masked clients and clean paths.

uvicorn and gunicorn write their own access log: by default ``198.51.100.77:0 - "GET
/pling?token=SECRET&phone=4791234567"``, the full address and the query string. These
dictionaries (for :func:`logging.config.dictConfig`) keep the servers' usual format but
pass every access record, and uvicorn's WebSocket lines, through
:class:`~consentmw.privacy.logfilter.MaskIPFilter`:

    uvicorn.run(app, log_config=consentmw.privacy.logging_config())
    uvicorn app:app --log-config logging.json  # json.dump(logging_config(), ...)
    # gunicorn.conf.py
    logconfig_dict = consentmw.privacy.gunicorn_logconfig_dict()
"""

from __future__ import annotations

from typing import Any

from consentmw.privacy.ip import mask_ip

__all__ = ["gunicorn_logconfig_dict", "logging_config"]

_FILTER = "consentmw.privacy.logfilter.MaskIPFilter"


def _filters(ipv4_prefix: int, ipv6_prefix: int) -> dict[str, Any]:
    mask_ip("127.0.0.1", ipv4_prefix, ipv6_prefix)  # a bad prefix fails here, not at start
    return {
        "consentmw_mask": {"()": _FILTER, "ipv4_prefix": ipv4_prefix, "ipv6_prefix": ipv6_prefix}
    }


def logging_config(
    ipv4_prefix: int = 16,
    ipv6_prefix: int = 48,
    level: str = "INFO",
    use_colors: bool | None = None,
) -> dict[str, Any]:
    """uvicorn's default ``log_config`` with the access log masked and cleaned."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": _filters(ipv4_prefix, ipv6_prefix),
        "formatters": {
            "default": {
                "()": "uvicorn.logging.DefaultFormatter",
                "fmt": "%(levelprefix)s %(message)s",
                "use_colors": use_colors,
            },
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
                "use_colors": use_colors,
            },
        },
        "handlers": {
            "default": {
                "formatter": "default",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "formatter": "access",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "filters": ["consentmw_mask"],
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            # WebSocket handshakes are logged here, with the client and the query string.
            "uvicorn.error": {"level": level, "filters": ["consentmw_mask"]},
            "uvicorn.access": {
                "handlers": ["access"],
                "level": level,
                "propagate": False,
                "filters": ["consentmw_mask"],
            },
        },
    }


def gunicorn_logconfig_dict(
    ipv4_prefix: int = 16, ipv6_prefix: int = 48, level: str = "INFO"
) -> dict[str, Any]:
    """A ``logconfig_dict`` for gunicorn: its access log masked, on standard output.

    The filter sits on the access handler, which uvicorn's gunicorn worker also hands
    to ``uvicorn.access``: gunicorn's own records (a dict of atoms) and uvicorn's
    (a tuple) are both masked.
    """
    fmt = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": _filters(ipv4_prefix, ipv6_prefix),
        "formatters": {
            "generic": {"format": fmt, "datefmt": "[%Y-%m-%d %H:%M:%S %z]"},
            "access": {"format": "%(message)s"},
        },
        "handlers": {
            "error_console": {
                "class": "logging.StreamHandler",
                "formatter": "generic",
                "stream": "ext://sys.stderr",
            },
            "access_console": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "stream": "ext://sys.stdout",
                "filters": ["consentmw_mask"],
            },
        },
        "root": {"level": level, "handlers": ["error_console"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {
                "level": "INFO",
                "handlers": ["access_console"],
                "propagate": False,
                "filters": ["consentmw_mask"],
            },
            "uvicorn.error": {"level": level, "filters": ["consentmw_mask"]},
            "uvicorn.access": {"level": "INFO", "filters": ["consentmw_mask"]},
        },
    }

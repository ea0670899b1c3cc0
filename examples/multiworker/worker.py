"""The gunicorn worker class: uvicorn's, with uvicorn's own proxy-header handling off.

consentmw resolves the client address from X-Forwarded-For itself, with its
``trusted_proxies``. uvicorn would otherwise rewrite ``scope["client"]`` first, using
gunicorn's ``forwarded_allow_ips``: a second trust list that must never disagree with
the first. (Behind TLS termination, set ``CONSENTMW_SECURE_COOKIE=true``.)
"""

from __future__ import annotations

from typing import Any, ClassVar

try:  # the maintained home of the worker class (pip install uvicorn-worker)
    from uvicorn_worker import UvicornWorker
except ImportError:  # deprecated in uvicorn itself, still shipped there
    from uvicorn.workers import UvicornWorker


class ConsentUvicornWorker(UvicornWorker):
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS,
        "proxy_headers": False,
    }

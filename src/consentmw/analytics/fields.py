"""The analytics fields of a request-log record: ``kind`` and the campaign parameters.

The request log's writer adds these to every record (:mod:`consentmw.requestlog.record`
calls in here), so the record module only needs to know that they exist. Two ways to the
same result: :func:`analytics_fields` (a dict, for the generic record builder), and
:func:`make_kind_json` and :func:`campaign_json` (JSON fragments, the first with small
caches, for the writer's fast path); a test holds them equal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from consentmw.analytics.campaign import UTM_FIELDS, campaign
from consentmw.analytics.kind import (
    DEFAULT_CONSENT_PREFIX,
    classify,
    content_class,
    is_bot,
    path_class,
)

__all__ = [
    "ANALYTICS_FIELDS",
    "NO_CAMPAIGN_JSON",
    "Extra",
    "analytics_fields",
    "campaign_json",
    "make_kind_json",
]

#: The keys this module adds to a record, in order.
ANALYTICS_FIELDS = ("kind", *UTM_FIELDS)

#: What the middleware captures for these fields: the response's ``Content-Type`` and
#: the request's query string (held in memory until the writer has read it, never stored).
Extra = tuple[bytes | None, bytes | None]

_CACHE_LIMIT = 4096
_MAX_CACHED_KEY = 1024
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


def _path_text(path: bytes | str) -> str:
    return (_text(path) or "/").split("?", 1)[0]


def _parts(extra: Any) -> tuple[bytes | str | None, bytes | str | None]:
    if isinstance(extra, tuple) and len(extra) >= 2:  # a third item is the visitor key
        return extra[0], extra[1]
    return None, None


def analytics_fields(
    method: str,
    status: object,
    path: bytes | str,
    user_agent: bytes | None,
    device: str,
    extra: Extra | None,
    prefix: str = DEFAULT_CONSENT_PREFIX,
) -> dict[str, Any]:
    """``{"kind": ..., "utm_source": ..., "utm_medium": ..., "utm_campaign": ...}``.

    ``device`` is the parsed User-Agent's device class (``"bot"`` when the parser knows
    a crawler); ``path`` the raw path; ``extra`` what the middleware captured.
    """
    content_type, query = _parts(extra)
    kind = classify(
        method,
        status if type(status) is int else 0,
        content_class(_text(content_type)),
        path_class(_path_text(path), prefix),
        is_bot(_text(user_agent), device == "bot"),
    )
    return {"kind": kind, **campaign(query)}


def make_kind_json(
    parse_ua: Callable[[str | None], Any],
    prefix: str = DEFAULT_CONSENT_PREFIX,
) -> Callable[[str, int, bytes | str, bytes | None, bytes | str | None], str]:
    """``(method, status, raw path, User-Agent bytes, Content-Type) -> ',"kind":"page"'``.

    ``parse_ua`` is the writer's (cached) parser, giving ``.device``. Not thread-safe:
    one per writer thread, like the encoder that calls it.
    """
    path_kinds: dict[bytes | str, str | None] = {}
    type_kinds: dict[bytes | str, str | None] = {}
    bots: dict[bytes | None, bool] = {}
    kind_json = {}

    def kind_of(
        method: str,
        status: int,
        path: bytes | str,
        user_agent: bytes | None,
        content_type: bytes | str | None,
    ) -> str:
        try:
            pk = path_kinds[path]
        except KeyError:
            pk = path_class(_path_text(path), prefix)
            if len(path) <= _MAX_CACHED_KEY:
                if len(path_kinds) >= _CACHE_LIMIT:
                    path_kinds.clear()
                path_kinds[path] = pk
        if content_type is None:
            tk = None
        else:
            try:
                tk = type_kinds[content_type]
            except KeyError:
                tk = content_class(_text(content_type))
                if len(type_kinds) >= 256:
                    type_kinds.clear()
                type_kinds[content_type] = tk
        try:
            bot = bots[user_agent]
        except KeyError:
            text = _text(user_agent)
            bot = is_bot(text, parse_ua(text).device == "bot")
            if user_agent is None or len(user_agent) <= _MAX_CACHED_KEY:
                if len(bots) >= _CACHE_LIMIT:
                    bots.clear()
                bots[user_agent] = bot
        kind = classify(method, status, tk, pk, bot)
        head = kind_json.get(kind)
        if head is None:
            head = kind_json[kind] = f',"kind":{_ENCODE(kind)}'
        return head

    return kind_of


NO_CAMPAIGN_JSON = "".join(f',"{name}":null' for name in UTM_FIELDS)


def campaign_json(query: bytes | str | None) -> str:
    """``',"utm_source":...,"utm_medium":...,"utm_campaign":...'`` of a query string."""
    if not query:
        return NO_CAMPAIGN_JSON
    found = campaign(query)
    return "".join(f',"{name}":{_ENCODE(found[name])}' for name in UTM_FIELDS)

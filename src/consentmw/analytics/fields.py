"""The analytics fields of a request-log record: ``kind`` and the campaign parameters.

The request log's writer adds these to every record (:mod:`consentmw.requestlog.record`
calls in here), so the record module only needs to know that they exist. Two ways to the
same result: :func:`analytics_fields` (a dict, for the generic record builder) and
:func:`make_fields_json` (the JSON fragment, with small caches, for the writer's fast
path); a test holds them equal.
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

__all__ = ["ANALYTICS_FIELDS", "Extra", "analytics_fields", "make_fields_json"]

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


def make_fields_json(
    parse_ua: Callable[[str | None], Any],
    prefix: str = DEFAULT_CONSENT_PREFIX,
) -> Callable[[str, int, bytes | str, bytes | None, Any], str]:
    """``(method, status, raw path, User-Agent bytes, extra) -> ',"kind":...'``.

    The fragment starts with a comma and equals the JSON of :func:`analytics_fields`
    without its braces. ``parse_ua`` is the writer's (cached) parser, giving ``.device``.
    Not thread-safe: one per writer thread, like the encoder that calls it.
    """
    path_kinds: dict[bytes | str, str | None] = {}
    type_kinds: dict[bytes | str, str | None] = {}
    bots: dict[bytes | None, bool] = {}
    kind_json = {}
    no_campaign = "".join(f',"{name}":null' for name in UTM_FIELDS)

    def fields_json(
        method: str, status: int, path: bytes | str, user_agent: bytes | None, extra: Any
    ) -> str:
        content_type, query = _parts(extra)
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
        if not query:
            return head + no_campaign
        found = campaign(query)
        return head + "".join(f',"{name}":{_ENCODE(found[name])}' for name in UTM_FIELDS)

    return fields_json

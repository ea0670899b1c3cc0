"""The encoded snippet of one response, cached as bytes per page, language and state.

The responder asks for the snippet once per injected page; a site serves the same few
pages to visitors in the same few states, so the encoded bytes are kept in one bounded
cache, keyed by what decides them and read without parsing: the page's ``<html ...>``
tag, the Accept-Language header, the consent state, the path and query, and the charset.
A response with a CSP nonce gets its own snippet, never cached.
"""

from __future__ import annotations

from typing import Any

from .banner import Banner
from .cache import BoundedCache
from .pages import LANG_WINDOW, SNIPPET_END, html_lang, lang_of_tag
from .policy import ACCEPT_LANGUAGE_READ, ConsentPolicy, RequestContext
from .urls import return_path

_MB = 1024 * 1024
_MAX_CACHED_PATH = 1024  # path and query


class PageSnippets:
    """``snippets.for_page(ctx, head, nonce, codec) -> (snippet + SNIPPET_END, language)``."""

    def __init__(self, banner: Banner, policy: ConsentPolicy) -> None:
        self.banner = banner
        self.policy = policy
        # ~10 KB each at most.
        self.cache: BoundedCache[tuple[Any, ...], tuple[bytes, str]] = BoundedCache(
            1024, 8 * _MB
        )

    def for_page(
        self, ctx: RequestContext, head: bytes, nonce: str | None, codec: str
    ) -> tuple[bytes, str]:
        scope = ctx.scope
        at = head.find(b"<html", 0, LANG_WINDOW)
        end = head.find(b">", at, at + 512) if at >= 0 else -1
        accept = ctx.headers.get(b"accept-language")
        if accept is not None and len(accept) > ACCEPT_LANGUAGE_READ:
            accept = accept[:ACCEPT_LANGUAGE_READ]
        # The tag decides the page's language; without a lower-case one, find it the long way.
        page = head[at : end + 1] if end >= 0 else html_lang(head)
        key = (
            page,
            accept,
            ctx.state.view_key,
            scope["path"],
            scope.get("query_string"),
            codec,
        )
        if nonce is None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        lang = self.policy.page_language(lang_of_tag(page) if end >= 0 else page, accept)
        html = self.banner.snippet_parts(lang, ctx.state, return_path(scope), nonce)
        out = html.encode(codec, errors="xmlcharrefreplace") + SNIPPET_END
        if nonce is None and len(key[3] or "") + len(key[4] or b"") <= _MAX_CACHED_PATH:
            self.cache.put(key, (out, lang))
        return out, lang

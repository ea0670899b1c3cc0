"""The encoded snippet of one response, cached as bytes per language, state and charset.

The responder asks for the snippet once per injected page. The snippet names no page (the
forms' answers return to the Referer's page), so the encoded bytes are kept in one bounded
cache, keyed by what decides them and read without parsing: the page's ``<html ...>``
tag, the Accept-Language header, the consent state and the charset. A site's many pages
share a few entries. A response with a CSP nonce gets its own snippet, never cached.
"""

from __future__ import annotations

from typing import Any

from .banner import Banner
from .cache import BoundedCache
from .pages import LANG_WINDOW, SNIPPET_END, html_lang, lang_of_tag
from .policy import ACCEPT_LANGUAGE_READ, ConsentPolicy, RequestContext

_MB = 1024 * 1024


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
        at = head.find(b"<html", 0, LANG_WINDOW)
        end = head.find(b">", at, at + 512) if at >= 0 else -1
        accept = ctx.headers.get(b"accept-language")
        if accept is not None and len(accept) > ACCEPT_LANGUAGE_READ:
            accept = accept[:ACCEPT_LANGUAGE_READ]
        # The tag decides the page's language; without a lower-case one, find it the long way.
        page = head[at : end + 1] if end >= 0 else html_lang(head)
        key = (page, accept, ctx.state.view_key, codec)
        if nonce is None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        lang = self.policy.page_language(lang_of_tag(page) if end >= 0 else page, accept)
        html = self.banner.snippet_parts(lang, ctx.state, nonce)
        out = html.encode(codec, errors="xmlcharrefreplace") + SNIPPET_END
        if nonce is None:
            self.cache.put(key, (out, lang))
        return out, lang

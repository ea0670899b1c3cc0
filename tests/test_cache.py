"""BoundedCache holds its entry and byte bounds, and the middleware's caches skip oversized
request data."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentmw.cache import ENTRY_BYTES, MISSING, BoundedCache, memoize, weight

from .conftest import client_for, make_app


def test_weight_counts_text_and_objects() -> None:
    assert weight(b"x" * 1000) >= 1000
    assert weight(("a" * 10, (b"b" * 20, None))) >= 30
    assert weight(None) == weight(True) == weight(7) == 0


@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 3000)), max_size=300),
    st.integers(1, 50),
    st.integers(1, 20_000),
)
def test_bounds_hold_after_every_put(puts: list[tuple[int, int]], entries: int, size: int) -> None:
    cache: BoundedCache[int, bytes] = BoundedCache(entries, size)
    for key, length in puts:
        value = b"v" * length
        assert cache.put(key, value) is value
        assert len(cache) <= entries
        assert cache.size <= size
        held = sum(ENTRY_BYTES + weight(k) + weight(cache.get(k)) for k in cache)
        assert cache.size == held  # the running total is exact
        if ENTRY_BYTES + weight(key) + weight(value) <= size:
            assert cache.get(key) is value  # what fits is stored, after evicting others


def test_oldest_entries_go_first_and_big_ones_are_refused() -> None:
    cache: BoundedCache[str, bytes] = BoundedCache(3, 2_000, max_item=1_500)
    for key in "abc":
        cache.put(key, b"x")
    cache.put("d", b"x")
    assert list(cache) == ["b", "c", "d"]
    cache.put("e", b"x" * 5_000)  # over max_item: returned, not stored
    assert "e" not in cache and list(cache) == ["b", "c", "d"]
    cache.put("f", b"y", size=1_500)  # an explicit size: the oldest go until it fits
    assert list(cache) == ["c", "d", "f"] and cache.size <= 2_000
    cache.put("f", b"z")  # replacing a key frees its old size
    assert cache.get("f") == b"z" and cache.size < 1_000


def test_none_is_a_value() -> None:
    cache: BoundedCache[str, None] = BoundedCache(4, 1_000)
    assert cache.get("k", MISSING) is MISSING
    cache.put("k", None)
    assert cache.get("k", MISSING) is None
    with pytest.raises(ValueError):
        BoundedCache(0, 1)


def test_memoize_skips_long_arguments() -> None:
    calls: list[str] = []

    @memoize(8, 10_000, max_key=16)
    def upper(text: str) -> str:
        calls.append(text)
        return text.upper()

    assert upper("abc") == upper("abc") == "ABC"
    long = "x" * 17
    assert upper(long) == upper(long) == long.upper()
    assert calls == ["abc", long, long]
    assert list(upper.cache) == ["abc"]  # type: ignore[attr-defined]


async def test_oversized_request_headers_are_not_cached() -> None:
    """Over the limits (Cookie 8 KB, Host 255 B, Accept-Language 512 B, cookie name 256 B)
    a request is answered in full and leaves nothing in the caches."""
    app = make_app()
    headers = {
        "cookie": "_ga=GA1.1.1.1; " + "n" * 300 + "=1; big=" + "v" * 9000,
        "host": "h" * 300 + ".example.no",
        "accept-language": "en," + "x" * 600,
    }
    async with client_for(app) as client:
        response = await client.get("/", headers=headers)
        assert response.status_code == 200 and b"data-consentmw-snippet" in response.content
        expired = [c for c in response.headers.get_list("set-cookie") if c.startswith("_ga=")]
        assert len(expired) == 1 and "Domain" not in expired[0]  # the host is not a DNS name
        del headers["cookie"]
        assert (await client.get("/", headers=headers)).status_code == 200
    assert len(app.policy._cookies) == len(app.policy._expiries) == 0
    assert all(len(accept) <= 512 for _, accept in app.policy._languages)  # keyed by what is read
    assert "n" * 300 not in app.registry.lookup.cache  # type: ignore[attr-defined]
    # Within the limits the same requests are cached, once.
    async with client_for(app) as client:
        for _ in range(2):
            await client.get("/", headers={"cookie": "_ga=GA1.1.1.1", "accept-language": "nb"})
    assert len(app.policy._cookies) == len(app.policy._expiries) == 1
    assert (None, b"nb") in app.policy._languages or ("en", b"nb") in app.policy._languages

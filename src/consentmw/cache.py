"""One small cache for everything keyed on request or response data.

A server that accepts 8 MB headers (uvicorn with httptools does) must not keep them: a
cache bounded only in entries holds 1,000 one-megabyte keys as readily as 1,000 short
ones. :class:`BoundedCache` is bounded in entries *and* in bytes, refuses single entries
above a size, and evicts the oldest entries first (insertion order) until both bounds
hold again. A hit does not refresh an entry, so a lookup costs one ``dict.get``; a busy
key evicted by a flood of new ones costs one recomputation per pass of the flood.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")

#: ``cache.get(key, MISSING)`` tells an absent key from a cached ``None``.
MISSING: Any = object()

#: Bytes counted per entry and per nested object beyond the text they hold: what a dict
#: slot, a tuple or a small object costs in CPython, roughly.
ENTRY_BYTES = 100
OBJECT_BYTES = 64


def weight(obj: object) -> int:
    """Approximate bytes held by ``obj``: the length of its text, plus a fixed cost per object.

    ``str`` and ``bytes`` count their length; tuples, lists and sets count their items;
    ``None``, booleans and numbers count nothing (shared or tiny); anything else counts
    :data:`OBJECT_BYTES`.
    """
    if isinstance(obj, (str, bytes)):
        return len(obj) + OBJECT_BYTES
    if isinstance(obj, (tuple, list, frozenset, set)):
        return OBJECT_BYTES + sum(weight(item) for item in obj)
    if obj is None or isinstance(obj, (bool, int, float)):
        return 0
    return OBJECT_BYTES


class BoundedCache(Generic[K, V]):
    """A dict bounded in entries and in bytes (keys + values, by :func:`weight`).

    ``get(key, default=None)`` is the dict's own. ``put(key, value)`` stores unless the
    entry weighs more than ``max_item`` bytes, then drops the oldest entries until at most
    ``max_entries`` remain and they weigh at most ``max_bytes``.
    """

    __slots__ = ("_data", "_sizes", "get", "max_bytes", "max_entries", "max_item", "size")

    def __init__(self, max_entries: int, max_bytes: int, max_item: int | None = None) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a cache needs room for at least one entry and one byte")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_item = max_bytes if max_item is None else min(max_item, max_bytes)
        self._data: dict[K, V] = {}
        self._sizes: dict[K, int] = {}  # same keys, same order
        self.size = 0  # bytes held
        self.get = self._data.get

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def put(self, key: K, value: V, size: int | None = None) -> V:
        """Store ``value`` (if it fits) and return it; ``size`` overrides :func:`weight`."""
        if size is None:
            size = ENTRY_BYTES + weight(key) + weight(value)
        if size > self.max_item:
            return value
        data, sizes = self._data, self._sizes
        old = sizes.pop(key, None)
        if old is not None:
            del data[key]
            self.size -= old
        while data and (len(data) >= self.max_entries or self.size + size > self.max_bytes):
            oldest = next(iter(sizes))
            del data[oldest]
            self.size -= sizes.pop(oldest)
        data[key] = value
        sizes[key] = size
        self.size += size
        return value

    def clear(self) -> None:
        self._data.clear()
        self._sizes.clear()
        self.size = 0


def memoize(
    max_entries: int, max_bytes: int, max_key: int
) -> Callable[[Callable[[Any], T]], Callable[[Any], T]]:
    """Cache a one-argument function of ``str``/``bytes`` in a :class:`BoundedCache`.

    Arguments longer than ``max_key`` are computed every time and never stored. The cache
    is the wrapper's ``cache`` attribute.
    """

    def decorate(fn: Callable[[Any], T]) -> Callable[[Any], T]:
        cache: BoundedCache[Any, T] = BoundedCache(max_entries, max_bytes)
        get, put = cache.get, cache.put

        @functools.wraps(fn)
        def cached(arg: Any) -> T:
            value = get(arg, MISSING)
            if value is MISSING:
                value = fn(arg)
                if len(arg) <= max_key:
                    put(arg, value)
            return value

        cached.cache = cache  # type: ignore[attr-defined]
        return cached

    return decorate

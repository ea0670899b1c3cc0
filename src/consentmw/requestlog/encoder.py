"""The writer thread's encoder: a pending record to its JSON line, from cached pieces.

A line equals ``encode_record(build_record(...))`` byte for byte (tests hold them equal)
but is assembled from JSON fragments: the time string per second, and everything that
depends on the request's :data:`~consentmw.requestlog.record.KEY_FIELDS` (masked address,
method, path, status, User-Agent, consent, language, response type) per key, so a
repeated kind of request costs one dict lookup and a concatenation. The referrer's host
and the campaign fields are added per record, so no cache key ever holds a referrer's
path or a query string. Anything unusual (a type the request path never produces, a
non-finite float, an exception) takes the generic path, which also decides whether the
record is lost.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from json.encoder import encode_basestring_ascii as _json_str  # C: str -> "ascii JSON"
from math import modf
from typing import Any

from consentmw.analytics.fields import NO_CAMPAIGN_JSON, campaign_json, make_kind_json
from consentmw.cache import BoundedCache
from consentmw.requestlog.record import (
    CONSENT_STATES,
    ENCODER,
    MAX_PATH_LENGTH,
    RAW_FIELDS,
    PendingRecord,
    build_record,
    country_of,
    decode_path,
    from_raw,
    is_country_code,
    is_visitor_key,
    primary_language,
    referrer_host,
    valid_method,
    visitor_of,
)
from consentmw.requestlog.useragent import UAInfo, UAParser

__all__ = ["make_encoder"]

_REFERRER_FAST = re.compile(rb"https?://([A-Za-z0-9.\-]{1,253})(?:[/?#]|\Z)")
_MS = tuple(f'{ms:03d}Z"' for ms in range(1000))
#: ``.001`` ... ``.999`` as ``repr`` writes them (no trailing zeros, ``.0`` for none).
_FRACTION = (".0", *(f".{ms:03d}".rstrip("0") for ms in range(1, 1000)))
_CONSENT_JSON = {state: f'"{state}"' for state in CONSENT_STATES}
_UNDECIDED_JSON = _CONSENT_JSON["undecided"]
_UTC = timezone.utc
_PAGE_KIND = ',"kind":"page"'

#: Keys (and single values) longer than this are computed every time, never stored.
MAX_CACHED_KEY = 1024
#: Bytes held by the per-key cache of line pieces, and by each per-field cache.
LINE_CACHE_BYTES = 4 * 1024 * 1024
FIELD_CACHE_BYTES = 1024 * 1024

#: ``(A, B, C, D, page)``: a line is ``time A bytes ,"duration_ms": duration B referrer``
#: then D, which ends the line when there are no campaign fields, visitor or country to
#: add, else C, the campaign fields, the visitor and country (when logged) and ``}``.
Pieces = tuple[str, str, str, str, bool]


def _json_value(value: object) -> str:
    return ENCODER.encode(value)


def _ua_fragment(info: UAInfo) -> str:
    browser, browser_version, os_name, os_version, device = map(_json_value, info)
    return (
        f',"browser":{browser},"browser_version":{browser_version},"os":{os_name},'
        f'"os_version":{os_version},"device":{device},"referrer":'
    )


def _seconds_and_micros(t: float) -> tuple[float, int]:
    """Whole seconds and microseconds of ``t`` as datetime.fromtimestamp rounds them."""
    frac, whole = modf(t)
    us = round(frac * 1e6)
    if us >= 1000000:
        return whole + 1.0, us - 1000000
    if us < 0:
        return whole - 1.0, us + 1000000
    return whole, us


def _duration_json(ms: float) -> str | None:
    """``repr(round(ms, 3))``, or ``None`` for what JSON cannot hold (nan, infinity)."""
    y = ms * 1000.0
    if 0.0 < y < 1e15:
        # whole microseconds... thousandths, exactly as round() would give them unless
        # y lands on a tie (then ask round).
        n = round(y)
        if y - n != 0.5 and n - y != 0.5:
            q, r = divmod(n, 1000)
            return f"{q}{_FRACTION[r]}"
        return repr(round(ms, 3))
    d = round(ms, 3)
    return None if d - d else repr(d)  # nan - nan and inf - inf are nan: true


def _pending_order(record: Sequence[Any]) -> Sequence[Any]:
    """A :data:`~consentmw.requestlog.record.RAW_FIELDS` or :class:`PendingRecord`-ordered
    tuple in :class:`PendingRecord`'s order."""
    return from_raw(record) if len(record) == len(RAW_FIELDS) else record


def _field_cache(entries: int) -> BoundedCache[Any, str]:
    return BoundedCache(entries, FIELD_CACHE_BYTES, max_item=2 * MAX_CACHED_KEY)


def make_pieces(
    parse_ua: UAParser | Callable[[str | None], UAInfo],
    redact_path: Callable[[str], str] | None = None,
    cache_size: int = 4096,
    consent_prefix: str = "/_consent",
) -> Callable[..., Pieces | None]:
    """``(*key) -> Pieces`` for a :data:`~consentmw.requestlog.record.KEY_FIELDS` tuple.

    ``None`` when a value has a type the request path never produces (the generic path
    decides). The costly fields are cached by their own value: the User-Agent's five
    fields, the path, the Accept-Language.
    """
    uas = _field_cache(cache_size)
    paths = _field_cache(cache_size)
    accepts = _field_cache(256)
    unknown_ua = _ua_fragment(parse_ua(None))
    kind_json = make_kind_json(parse_ua, consent_prefix)

    def pieces(
        ip: object,
        asn: object,
        isp: object,
        method: object,
        path: Any,
        status: object,
        ua: Any,
        consent: object,
        accept: Any,
        content_type: Any,
    ) -> Pieces | None:
        if type(status) is not int or type(ip) is not str or type(method) is not str:
            return None
        if (isp is not None and type(isp) is not str) or (asn is not None and type(asn) is not int):
            return None
        ispj = "null" if isp is None else _json_str(isp)
        asnj = "null" if asn is None else str(asn)
        mj = _json_str(method if valid_method(method) else "OTHER")
        if redact_path is None:
            pj = paths.get(path)
            if pj is None:
                pj = _json_str(decode_path(path))
                if len(path) <= MAX_CACHED_KEY and ("?" if type(path) is str else b"?") not in path:
                    paths.put(path, pj)
        else:
            pj = _json_str(str(redact_path(decode_path(path)))[:MAX_PATH_LENGTH])
        if not ua:
            uaj = unknown_ua
        else:
            uaj = uas.get(ua)
            if uaj is None:
                uaj = _ua_fragment(parse_ua(ua.decode("latin-1")))
                if len(ua) <= MAX_CACHED_KEY:
                    uas.put(ua, uaj)
        if not accept:
            lj = "null"
        else:
            lj = accepts.get(accept)
            if lj is None:
                lj = _json_value(primary_language(accept))
                if len(accept) <= MAX_CACHED_KEY:
                    accepts.put(accept, lj)
        kj = kind_json(method, status, path, ua, content_type)
        cj = _CONSENT_JSON.get(consent, _UNDECIDED_JSON)  # type: ignore[call-overload]
        c = f',"consent":{cj},"language":{lj}{kj}'
        return (
            f',"ip":{_json_str(ip)},"isp":{ispj},"asn":{asnj},"method":{mj},"path":{pj},'
            f'"status":{status},"bytes":',
            uaj,
            c,
            f"{c}{NO_CAMPAIGN_JSON}}}\n",
            kj == _PAGE_KIND,
        )

    return pieces


def make_encoder(
    parse_ua: UAParser | Callable[[str | None], UAInfo],
    redact_path: Callable[[str], str] | None = None,
    cache_size: int = 4096,
    consent_prefix: str = "/_consent",
    visitors: bool = False,
    countries: bool = False,
) -> Callable[[Sequence[Any]], str]:
    """``record -> line`` (``str``, ASCII, ending in a newline) for the writer thread.

    ``record`` is a tuple of :data:`~consentmw.requestlog.record.RAW_FIELDS` (what the
    middleware enqueues), a :class:`~consentmw.requestlog.record.PendingRecord` or a plain
    tuple in its field order. Not thread-safe: one encoder per writer thread.
    """
    pieces = make_pieces(parse_ua, redact_path, cache_size, consent_prefix)
    by_key: BoundedCache[tuple[Any, ...], Pieces] = BoundedCache(
        max(cache_size, 1), LINE_CACHE_BYTES, max_item=4 * MAX_CACHED_KEY
    )
    cached_pieces = by_key.get
    seconds: BoundedCache[float, str] = BoundedCache(64, 64 * 256)
    head_of = seconds.get
    origins = _field_cache(256)  # b"https://host" -> '"host"', nothing longer
    origin_of = origins.get

    def slow(record: Sequence[Any]) -> str:
        p = record if type(record) is PendingRecord else PendingRecord(*_pending_order(record))
        built = build_record(p, parse_ua, redact_path, consent_prefix, visitors, countries)
        return ENCODER.encode(built) + "\n"

    def referrer_json(ref: bytes) -> str:
        m = _REFERRER_FAST.match(ref)
        if m is None:
            return _json_value(referrer_host(ref))
        rj = '"' + m.group(1).decode("ascii").lower() + '"'
        end = m.end(1)
        if end == len(ref) or ref[end] == 47:  # "/": the origin alone decides the host
            origins.put(ref[:end], rj)
        return rj

    def pending_pieces(p: Sequence[Any]) -> tuple[Any, ...] | None:
        """(time, bytes, duration JSON, pieces, referer, query, visitor, country) of a
        :class:`PendingRecord`-ordered tuple."""
        t, ip, asn, isp, method, path, status, size, dur, ua, ref, consent, accept = p[:13]
        extra = p[13] if len(p) > 13 else None
        if type(size) is not int or type(dur) is not float:
            return None
        dj = _duration_json(dur)
        content_type = query = None
        if type(extra) is tuple and len(extra) >= 2:
            content_type, query = extra[0], extra[1]
        found = pieces(ip, asn, isp, method, path, status, ua, consent, accept, content_type)
        if found is None or dj is None:
            return None
        return t, size, dj, found, ref, query, visitor_of(extra), country_of(extra)

    def end_of(c: str, page: bool, query: Any, visitor: object, country: object) -> str:
        """The line's end after the consent, language and kind: campaign, visitor, country."""
        end = campaign_json(query)
        if visitors:
            end += f',"visitor":"{visitor}"' if page and is_visitor_key(visitor) else (
                ',"visitor":null'
            )
        if countries:
            end += f',"country":"{country}"' if is_country_code(country) else ',"country":null'
        return f"{c}{end}}}\n"

    plain = not visitors and not countries

    def encode(record: Sequence[Any]) -> str:
        try:
            if len(record) == 8:  # RAW_FIELDS, from the middleware: cached by its key
                t, size, micros, key, ref, query, visitor, country = record
                found = cached_pieces(key)
                if found is None:
                    found = pieces(*key)
                    if found is None:
                        return slow(record)
                    if ("?" if type(key[4]) is str else b"?") not in key[4]:
                        by_key.put(key, found)
                dj = f"{micros // 1000}{_FRACTION[micros % 1000]}"
            else:
                unpacked = pending_pieces(record)
                if unpacked is None:
                    return slow(record)
                t, size, dj, found, ref, query, visitor, country = unpacked
            a, b, c, end, page = found
            # The milliseconds of datetime.fromtimestamp(t), which rounds half-even to
            # whole microseconds: int(x + 0.5) only differs from that on a tie between
            # two microseconds that share their millisecond.
            whole = t // 1.0
            us = int((t - whole) * 1e6 + 0.5)
            if us >= 1000000 or t < 0:
                whole, us = _seconds_and_micros(t)
            head = head_of(whole)
            if head is None:
                moment = datetime.fromtimestamp(whole, _UTC)
                head = seconds.put(whole, moment.strftime('{"time":"%Y-%m-%dT%H:%M:%S.'))
            if not ref:
                rj = "null"
            else:
                slash = ref.find(b"/", 8)
                rj = origin_of(ref[:slash] if slash > 0 else ref)
                if rj is None:
                    rj = referrer_json(ref)
            if query or not plain:
                end = end_of(c, page, query, visitor, country)
        except Exception:
            return slow(record)
        return f'{head}{_MS[us // 1000]}{a}{size},"duration_ms":{dj}{b}{rj}{end}'

    return encode


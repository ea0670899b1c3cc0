"""Client addresses behind trusted proxies, and masking them before anything is stored.

The policy promises that server logs never identify a person, so the request log only
ever sees an address with its host part zeroed (IPv4 /16 and IPv6 /48 by default, as
Matomo recommends; Google Analytics' /24 is ``ipv4_prefix=24``). Proxy headers are
believed only when the direct peer is a configured proxy, walking the chain from the
right like uvicorn's ``proxy_headers.py``: every proxy appends, so the first untrusted
hop from the right is the client and anything to its left may be forged.

Only one header is read: the one the proxies are configured to set (``forwarded_header``,
``X-Forwarded-For`` by default, or RFC 7239 ``Forwarded``). A proxy passes the other one
through as the client sent it, and from the headers alone nobody can tell which of two
the proxy wrote, so "prefer whichever is present" would let a client forge its address.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "FORWARDED_HEADERS",
    "UNKNOWN_IP",
    "TrustedProxies",
    "client_ip",
    "embedded_ipv4",
    "mask_ip",
    "parse_host",
    "parse_trusted_proxies",
]

#: What a missing or malformed address is masked to: never an exception, never the garbage.
UNKNOWN_IP = "0.0.0.0"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAX_HOST_LEN = 100  # longer than any address with brackets, zone and port

#: The values of ``forwarded_header``: which header the trusted proxies set.
FORWARDED_HEADERS = ("x-forwarded-for", "forwarded")


class TrustedProxies:
    """Parsed ``trusted_proxies``: addresses, networks, or ``*`` for "trust every peer",
    and ``header``, the one of :data:`FORWARDED_HEADERS` that they set."""

    __slots__ = ("_trusts", "always", "header", "hosts", "networks")

    def __init__(
        self,
        hosts: Iterable[IPAddress] = (),
        networks: Iterable[IPNetwork] = (),
        always: bool = False,
        header: str = "x-forwarded-for",
    ) -> None:
        self.always = always
        self.header = _forwarded_header(header)
        self.hosts: frozenset[IPAddress] = frozenset(hosts)
        self.networks: tuple[IPNetwork, ...] = tuple(networks)
        self._trusts = functools.lru_cache(maxsize=4096)(self._compute)

    def __contains__(self, host: object) -> bool:
        if self.always:
            return True
        if not isinstance(host, str) or not host or len(host) > _MAX_HOST_LEN:
            return False
        return self._trusts(host)

    def __bool__(self) -> bool:
        return self.always or bool(self.hosts) or bool(self.networks)

    def __repr__(self) -> str:
        if self.always:
            items: object = "*"
        else:
            items = [str(h) for h in sorted(self.hosts, key=str)]
            items += [str(n) for n in self.networks]
        return f"TrustedProxies({items!r}, header={self.header!r})"

    def _compute(self, host: str) -> bool:
        ip = parse_host(host)
        if ip is None:
            return False
        return ip in self.hosts or any(ip in net for net in self.networks)


def _forwarded_header(header: object) -> str:
    name = header.strip().lower() if isinstance(header, str) else ""
    if name not in FORWARDED_HEADERS:
        raise ValueError(
            f"forwarded_header must be 'x-forwarded-for' or 'forwarded' (the header your "
            f"trusted proxies set; the other one is ignored), got {header!r}"
        )
    return name


def parse_trusted_proxies(
    values: Iterable[str] | str | TrustedProxies | None,
    option: str = "trusted_proxies",
    header: str | None = None,
) -> TrustedProxies:
    """Validate proxy addresses/networks (``"10.0.0.0/8"``, ``"::1"``, ``"*"``).

    A comma-separated string is accepted too (as in uvicorn's ``--forwarded-allow-ips``).
    Anything that is not an address or network raises ``ValueError`` naming ``option``:
    silently ignoring a typo would mean trusting nobody, or worse, the wrong host.
    ``header`` is the header those proxies set (see :data:`FORWARDED_HEADERS`); ``None``
    keeps that of a given :class:`TrustedProxies`, else ``x-forwarded-for``.
    """
    if isinstance(values, TrustedProxies):
        if header is None or _forwarded_header(header) == values.header:
            return values
        return TrustedProxies(values.hosts, values.networks, values.always, header)
    header = "x-forwarded-for" if header is None else header
    if values is None:
        return TrustedProxies(header=header)
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    hosts: list[IPAddress] = []
    networks: list[IPNetwork] = []
    always = False
    for raw in values:
        if not isinstance(raw, str):
            raise ValueError(f"{option}: expected address strings, got {raw!r}")
        item = raw.strip()
        if item == "*":
            always = True
            continue
        try:
            if "/" in item:
                networks.append(ipaddress.ip_network(item, strict=False))
            else:
                hosts.append(ipaddress.ip_address(item.strip("[]")))
        except ValueError:
            raise ValueError(
                f"{option}: {raw!r} is not an IP address or CIDR network "
                "(examples: '10.0.0.0/8', '127.0.0.1', '::1', or '*' to trust every peer)"
            ) from None
    return TrustedProxies(hosts, networks, always, header)


def parse_host(value: str) -> IPAddress | None:
    """The address in a forwarded hop or peer: strips quotes, brackets, port and zone.

    Returns ``None`` for ``unknown``, obfuscated identifiers (``_hidden``) and garbage.
    """
    if not isinstance(value, str) or len(value) > _MAX_HOST_LEN:
        return None  # checked before the cache so huge garbage never pins memory
    return _parse_host_cached(value)


@functools.lru_cache(maxsize=8192)
def _parse_host_cached(value: str) -> IPAddress | None:
    host = value.strip().strip('"').strip()
    if not host:
        return None
    if host.startswith("["):
        end = host.find("]")
        if end == -1:
            return None
        host = host[1:end]
    elif host.count(":") == 1:  # IPv4 with port; bare IPv6 has at least two colons
        host = host.split(":", 1)[0]
    host = host.split("%", 1)[0]  # IPv6 zone (fe80::1%eth0) says nothing about the client
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


_FORWARDED_FOR = re.compile(r'(?:^|;)\s*for\s*=\s*("[^"]*"|[^;,\s]*)', re.IGNORECASE)


def _forwarded_for_hops(value: str) -> list[str]:
    """``for=`` values of an RFC 7239 ``Forwarded`` header, in order."""
    hops = []
    for element in value.split(","):
        match = _FORWARDED_FOR.search(element)
        hops.append(match.group(1) if match else "")
    return hops


_HEADER_NAMES = {name: name.encode("latin-1") for name in FORWARDED_HEADERS}


def _header_hops(headers: Iterable[tuple[bytes, bytes]], header: str) -> list[str] | None:
    """The hops of ``header`` (every occurrence, in order); ``None`` when it is absent."""
    wanted = _HEADER_NAMES[header]
    values: list[bytes] = []
    for name, value in headers:
        if name == wanted:
            values.append(value)
    if not values:
        return None
    joined = (values[0] if len(values) == 1 else b",".join(values)).decode("latin-1")
    if header == "forwarded":
        return _forwarded_for_hops(joined)
    return [h.strip() for h in joined.split(",")]


def client_ip(scope: Mapping[str, Any], trusted_proxies: TrustedProxies) -> str | None:
    """The client's address (unmasked), or ``None`` when it cannot be known.

    Proxy headers count only when the direct peer (``scope["client"]``) is trusted, and
    only the header those proxies set (``trusted_proxies.header``); the other one is
    ignored, whatever it says. The chain is walked from the right and the first hop that
    is not a trusted proxy is the client. A hop that is garbage, ``unknown`` or an
    obfuscated ``Forwarded`` identifier (``for=_hidden``) at that place means the client
    is unknown (``None``), never a guess further left, which the client could have
    forged. No such header at all from a trusted peer: the peer itself.
    """
    client = scope.get("client")
    peer = client[0] if client else None
    if peer is None or not trusted_proxies or peer not in trusted_proxies:
        return peer
    hops = _header_hops(scope.get("headers") or (), trusted_proxies.header)
    if not hops or not any(hops):
        return peer
    if trusted_proxies.always:
        ip = parse_host(hops[0])
        return None if ip is None else str(ip)
    for hop in reversed(hops):
        ip = parse_host(hop)
        if ip is None:
            return None
        if not _is_trusted(ip, trusted_proxies):
            return str(ip)
    # Every hop is a trusted proxy: the leftmost one is the best we know (uvicorn does same).
    ip = parse_host(hops[0])
    return None if ip is None else str(ip)


def _is_trusted(ip: IPAddress, trusted: TrustedProxies) -> bool:
    return ip in trusted.hosts or any(ip in net for net in trusted.networks)


# IPv6 addresses that carry a client's IPv4 address in their bits. Masked by the IPv6
# prefix they could keep all of it (6to4 holds it in bits 16-47, inside any /48), so
# they are masked as the IPv4 address they carry, by the IPv4 prefix: that is what the
# address identifies, and the same client then looks the same over IPv4 and IPv6.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215, format not known
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291, deprecated


def embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The client IPv4 address that ``addr`` carries, or ``None``.

    IPv4-mapped (``::ffff:0:0/96``), IPv4-compatible (``::/96``, but not ``::`` and
    ``::1``), NAT64 (``64:ff9b::/96``), 6to4 (``2002::/16``, bits 16-47) and Teredo
    (``2001::/32``: the client's public IPv4 inverted in the last 32 bits; the Teredo
    server's IPv4 in bits 32-63 is public infrastructure and is not what is returned).
    """
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    if addr in _NAT64 or (addr in _IPV4_COMPATIBLE and int(addr) > 1):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def mask_ip(ip: str | None, ipv4_prefix: int = 16, ipv6_prefix: int = 48) -> str:
    """``ip`` with all but the first ``ipv4_prefix``/``ipv6_prefix`` bits zeroed.

    Never raises for any ``ip``: ``None``, garbage and overlong input give
    :data:`UNKNOWN_IP`. Ports, brackets and zones are stripped. An IPv6 address that
    carries an IPv4 address (see :func:`embedded_ipv4`: IPv4-mapped, 6to4, Teredo, ...)
    is masked as that IPv4 address, so whatever ``ipv6_prefix`` is, no more of the IPv4
    address is kept than ``ipv4_prefix`` allows: ``2002:c633:647d::1`` gives
    ``198.51.0.0``. In the local-use NAT64 range ``64:ff9b:1::/48`` the IPv4 address may
    sit anywhere after bit 48, so nothing after the /48 is kept. Invalid prefix lengths
    are a programming error and raise ``ValueError``.
    """
    if not isinstance(ip, str) or len(ip) > _MAX_HOST_LEN:
        return UNKNOWN_IP
    return _mask_cached(ip, ipv4_prefix, ipv6_prefix)


@functools.lru_cache(maxsize=16384)
def _mask_cached(ip: str, ipv4_prefix: int, ipv6_prefix: int) -> str:
    if not (0 <= ipv4_prefix <= 32):
        raise ValueError(f"ipv4_prefix must be 0..32, got {ipv4_prefix!r}")
    if not (0 <= ipv6_prefix <= 128):
        raise ValueError(f"ipv6_prefix must be 0..128, got {ipv6_prefix!r}")
    addr = parse_host(ip)
    if addr is None:
        return UNKNOWN_IP
    prefix = ipv6_prefix
    if isinstance(addr, ipaddress.IPv6Address):
        carried = embedded_ipv4(addr)
        if carried is not None:
            addr = carried
        elif addr in _NAT64_LOCAL:
            prefix = min(prefix, _NAT64_LOCAL.prefixlen)
    if addr.version == 4:
        prefix = ipv4_prefix
    return str(ipaddress.ip_network((addr, prefix), strict=False).network_address)

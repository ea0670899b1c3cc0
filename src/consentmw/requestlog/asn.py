"""Optional ISP/ASN lookup from a user-supplied MaxMind-format database (GeoLite2-ASN).

The policy lists "ISP" among what the logs keep. The lookup needs the full address, so
it happens on the request path before masking; only the network's number and name go
on, the address itself is dropped. Needs the ``asn`` extra (``maxminddb``).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

__all__ = ["AsnLookup", "CountryLookup", "open_asn_database", "open_country_database"]


class AsnLookup:
    """``lookup(ip) -> (asn, organisation)``; both ``None`` when the address is unknown."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self.lookup = functools.lru_cache(maxsize=8192)(self._lookup)

    def _lookup(self, ip: str | None) -> tuple[int | None, str | None]:
        if not ip:
            return None, None
        try:
            data = self._reader.get(ip)
        except (ValueError, TypeError):  # not an address
            return None, None
        if not isinstance(data, dict):
            return None, None
        number = data.get("autonomous_system_number")
        org = data.get("autonomous_system_organization")
        return (
            number if isinstance(number, int) else None,
            org[:200] if isinstance(org, str) else None,
        )

    def close(self) -> None:
        self._reader.close()


class CountryLookup:
    """``lookup(ip) -> "NO"``: the ISO 3166 country code (GeoLite2-Country), or ``None``."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self.lookup = functools.lru_cache(maxsize=8192)(self._lookup)

    def _lookup(self, ip: str | None) -> str | None:
        if not ip:
            return None
        try:
            data = self._reader.get(ip)
        except (ValueError, TypeError):
            return None
        country = data.get("country") if isinstance(data, dict) else None
        code = country.get("iso_code") if isinstance(country, dict) else None
        return code if isinstance(code, str) and len(code) == 2 and code.isalpha() else None

    def close(self) -> None:
        self._reader.close()


def open_country_database(
    path: str | os.PathLike[str], option: str = "country_database"
) -> CountryLookup:
    """Open a MaxMind-format country database now (a wrong path fails at start-up)."""
    return CountryLookup(_open_reader(path, option, "country"))


def open_asn_database(path: str | os.PathLike[str], option: str = "asn_database") -> AsnLookup:
    """Open the database now, so a wrong path fails at start-up with the option's name."""
    return AsnLookup(_open_reader(path, option, "ASN"))


def _open_reader(path: str | os.PathLike[str], option: str, what: str) -> Any:
    try:
        import maxminddb
    except ImportError:
        raise ValueError(
            f"{option} needs the maxminddb package: pip install 'consentmw[asn]'"
        ) from None
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{option}: no such file {str(file)!r} (a MaxMind .mmdb {what} database)")
    try:
        reader = maxminddb.open_database(str(file))
    except Exception as exc:  # InvalidDatabaseError is a RuntimeError
        raise ValueError(f"{option}: {str(file)!r} is not a readable MaxMind DB: {exc}") from None
    return reader

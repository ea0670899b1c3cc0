"""Two ways to a ClickHouse: a server through ``clickhouse-connect``, or chDB in-process.

Both are :class:`Client`: ``query_dicts`` runs one ``SELECT`` with server-side
parameters (``{name:Type}``) and returns rows as dicts of Python values, ``command``
runs a statement. The SQL is the same for both; chDB runs the test suite and local
trials without a server. ``open_client`` takes ``clickhouse://user:password@host:8123/db``
(or ``https://...``; clickhouse-connect's DSN), or ``chdb:`` / ``chdb:///path/to/dir``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["ChdbClient", "Client", "ConnectClient", "client_errors", "open_client"]

INSTALL_HINT = "install the clickhouse extra: pip install 'consentmw[clickhouse]'"


class Client(Protocol):
    def query_dicts(self, sql: str, parameters: Mapping[str, Any]) -> list[dict[str, Any]]: ...

    def command(self, sql: str) -> None: ...

    def close(self) -> None: ...


class ConnectClient:
    """A ClickHouse server over HTTP(S), through ``clickhouse-connect``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def from_dsn(cls, dsn: str, **options: Any) -> ConnectClient:
        try:
            import clickhouse_connect
        except ImportError:
            raise ValueError(INSTALL_HINT) from None
        return cls(clickhouse_connect.get_client(dsn=dsn, **options))

    def query_dicts(self, sql: str, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        return list(self.client.query(sql, parameters=dict(parameters)).named_results())

    def command(self, sql: str) -> None:
        self.client.command(sql)

    def close(self) -> None:
        self.client.close()

    def __repr__(self) -> str:  # the DSN may hold a password
        return "ConnectClient(<clickhouse-connect client>)"


class ChdbClient:
    """ClickHouse in this process (chDB); ``path`` keeps the data, ``None`` is temporary."""

    def __init__(self, path: str | None = None) -> None:
        try:
            from chdb import session
        except ImportError:
            raise ValueError("chdb: URLs need chDB: pip install chdb") from None
        self.session = session.Session(path) if path else session.Session()

    def query_dicts(self, sql: str, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        result = self.session.query(sql, "ArrowTable", params=dict(parameters))
        return list(result.to_pylist())

    def command(self, sql: str) -> None:
        self.session.query(sql)

    def close(self) -> None:
        self.session.close()


def open_client(url: str) -> Client:
    """A client for ``url``; ``ValueError`` says what is wrong or missing."""
    if url == "chdb:" or url.startswith("chdb://"):
        path = url[len("chdb://") :] if url.startswith("chdb://") else ""
        return ChdbClient(path or None)
    if url.startswith(("clickhouse://", "clickhouses://", "http://", "https://")):
        return ConnectClient.from_dsn(url)
    raise ValueError("the ClickHouse URL must start with clickhouse://, https:// or chdb:")


def client_errors() -> tuple[type[Exception], ...]:
    """What a failed query or connection raises: chDB's errors are ``RuntimeError``s,
    clickhouse-connect's derive from its ``ClickHouseError``."""
    errors: list[type[Exception]] = [RuntimeError]
    try:
        from clickhouse_connect.driver.exceptions import ClickHouseError
    except ImportError:
        pass
    else:
        errors.append(ClickHouseError)
    return tuple(errors)

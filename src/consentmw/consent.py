"""The visitor's consent state and the signed cookie that carries it.

The cookie makes the middleware stateless: any instance holding one of the secret keys
can verify it. Anything that does not verify (missing, unsigned, tampered, expired,
oversized, written for an older policy version) reads as "undecided", never as an error.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from itsdangerous import BadData, URLSafeTimedSerializer

from .cache import MISSING, BoundedCache
from .registry import NECESSARY

#: Browsers cap a cookie at 4096 bytes; anything larger was not written by us.
MAX_COOKIE_BYTES = 4096
Summary = Literal["granted", "denied", "undecided"]
Signal = Literal["gpc", "dnt"]


@dataclass(frozen=True)
class ConsentState:
    """What the visitor chose (or that they have not chosen yet).

    ``granted``/``denied`` hold optional categories only; ``necessary`` is always allowed.
    ``signal`` says a browser privacy signal (GPC/DNT) refused the optional categories
    before any explicit choice: a signal can refuse, it never consents.
    """

    decided: bool = False
    granted: frozenset[str] = frozenset()
    denied: frozenset[str] = frozenset()
    policy_version: str = ""
    consent_id: str | None = None
    decided_at: int | None = None
    signal: Signal | None = None

    def allows(self, category: str) -> bool:
        return category == NECESSARY or category in self.granted

    @property
    def summary(self) -> Summary:
        """Coarse state for the request log."""
        if self.granted:
            return "granted"
        if self.decided or self.signal:
            return "denied"
        return "undecided"

    @cached_property
    def show_banner(self) -> bool:
        return not self.decided and self.signal is None

    @cached_property
    def view_key(self) -> str:
        """What the injected snippet depends on, as one string: cached with the state
        (states are reused per cookie), so a cache key holding it hashes it once."""
        granted = ",".join(sorted(self.granted))
        return f"{self.show_banner:d}{self.decided:d}{self.signal or '-'}:{granted}"

    def as_dict(self, categories: Iterable[str], lifetime_seconds: int) -> dict[str, Any]:
        """The public JSON shape of ``GET /_consent``."""
        expires = None
        if self.decided_at is not None:
            expires = _iso(self.decided_at + lifetime_seconds)
        return {
            "decided": self.decided,
            "categories": {name: self.allows(name) for name in categories},
            "policy_version": self.policy_version,
            "expires": expires,
            "decided_at": _iso(self.decided_at) if self.decided_at is not None else None,
            "signal": self.signal,
        }


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def new_consent_id() -> str:
    """128 random bits: unguessable, so a receipt cannot be looked up by anyone else."""
    return secrets.token_urlsafe(16)


class ConsentCodec:
    """Signs and verifies consent cookies; verification results are cached per value."""

    def __init__(
        self, secret_keys: tuple[bytes, ...], policy_version: str, lifetime_seconds: int
    ) -> None:
        # itsdangerous signs with the *last* key; our contract is "first key signs".
        self._serializer = URLSafeTimedSerializer(
            list(reversed(secret_keys)), salt="consentmw.consent.v1"
        )
        self.policy_version = policy_version
        self.lifetime = lifetime_seconds
        # Keyed by the cookie's value, not the whole Cookie header: analytics cookies change
        # the header on every page while the consent cookie stays the same.
        self._verified: BoundedCache[str, tuple[ConsentState, int] | None] = BoundedCache(
            2048, 2 * 1024 * 1024
        )

    def encode(self, state: ConsentState) -> str:
        payload: dict[str, Any] = {
            "v": state.policy_version,
            "g": sorted(state.granted),
            "d": sorted(state.denied),
            "i": state.consent_id,
            "t": state.decided_at,
        }
        if state.signal:
            payload["s"] = state.signal
        if state.decided:
            payload["x"] = 1
        return self._serializer.dumps(payload)

    def verify(self, value: str | None) -> tuple[ConsentState, int] | None:
        """The state in ``value`` and when it was signed, if the signature holds (cached).

        Says nothing about the cookie's age: the caller checks that on every request.
        """
        if not value or len(value) > MAX_COOKIE_BYTES:
            return None
        verified = self._verified.get(value, MISSING)
        if verified is MISSING:
            verified = self._verified.put(value, self._verify_uncached(value))
        return verified

    def _verify_uncached(self, value: str) -> tuple[ConsentState, int] | None:
        try:
            payload, signed_at = self._serializer.loads(value, return_timestamp=True)
            return self._state(payload), int(signed_at.timestamp())
        except (BadData, ValueError, TypeError, KeyError, AttributeError, json.JSONDecodeError):
            return None

    def _state(self, payload: Any) -> ConsentState:
        if not isinstance(payload, dict):
            raise ValueError("not a consent payload")
        if payload.get("v") != self.policy_version:
            # Decided under an older policy: undecided now (the visitor is asked again),
            # but the consent id carries over, so the new decision is recorded under the
            # same id and access and erasure keep covering the earlier receipts.
            consent_id = payload.get("i")
            if not isinstance(consent_id, str) or not 0 < len(consent_id) <= 64:
                raise TypeError("bad id")
            return ConsentState(policy_version=self.policy_version, consent_id=consent_id)
        granted, denied = payload["g"], payload["d"]
        if not all(isinstance(x, str) for x in (*granted, *denied)):
            raise TypeError("category names must be strings")
        consent_id, decided_at = payload["i"], payload["t"]
        if not isinstance(consent_id, str) or not isinstance(decided_at, int):
            raise TypeError("bad id or time")
        signal = payload.get("s")
        if signal not in (None, "gpc", "dnt"):
            raise ValueError("bad signal")
        return ConsentState(
            decided=bool(payload.get("x")),
            granted=frozenset(granted),
            denied=frozenset(denied),
            policy_version=self.policy_version,
            consent_id=consent_id,
            decided_at=decided_at,
            signal=signal,
        )

"""The receipt writer on its own: explicit inputs, no middleware; and derive_action's rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from consentmw.consent import ConsentState
from consentmw.receipts import ReceiptWriter, derive_action
from consentmw.records import SQLiteReceiptStore

NONE = frozenset[str]()
A = frozenset({"analytics"})
AM = frozenset({"analytics", "marketing"})


def state(granted: frozenset[str] = NONE, *, decided: bool = True) -> ConsentState:
    return ConsentState(granted=granted, decided=decided, consent_id="c-1", policy_version="1")


@pytest.mark.parametrize(
    ("old", "new", "requested", "expected"),
    [
        (None, state(A), "accept_all", "accept_all"),
        (None, state(), "reject_all", "reject_all"),
        (state(decided=False), state(A), "save", "save"),  # first custom choice
        (None, state(A), "save", "save"),
        (state(A), state(), "reject_all", "withdraw"),  # a refusal after a consent
        (state(AM), state(A), "save", "withdraw"),  # one purpose taken back
        (state(A), state(NONE), "accept_all", "withdraw"),  # whatever the button says
        (state(), state(A), "save", "change"),  # more granted later
        (state(A), state(AM), "save", "change"),
        (state(A), state(A), "save", "change"),  # re-saved unchanged
        (state(), state(AM), "accept_all", "accept_all"),
        (state(A), state(A), "reject_all", "reject_all"),  # nothing granted was refused
        (None, state(), "withdraw", "withdraw"),
    ],
)
def test_derive_action(
    old: ConsentState | None, new: ConsentState, requested: str, expected: str
) -> None:
    assert derive_action(old, new, requested) == expected


async def test_writer_needs_no_middleware(tmp_path: Path) -> None:
    store = SQLiteReceiptStore(tmp_path / "r.db")
    writer = ReceiptWriter(
        store,
        lambda lang: (f"sha256:{lang}", '{"texts":{}}'),
        policy_version="1",
        trusted_proxies=["10.0.0.1"],
        ipv4_prefix=24,
    )
    raw = [(b"x-forwarded-for", b"198.51.100.77"), (b"user-agent", b"curl/8.0")]
    scope = {"type": "http", "client": ("10.0.0.1", 1), "headers": raw}
    headers = dict(raw)
    await writer.record(scope, headers, "nb", None, state(A), "accept_all", "banner")
    await writer.record(scope, headers, "nb", state(A), state(), "reject_all", "preferences")
    await writer.record(scope, headers, "en", None, state(), "reject_all", "signal")
    await writer.record(scope, headers, "en", None, state(), "reject_all", "api")
    got = await store.for_consent_id("c-1")
    # As the caller derived it; a privacy signal writes no receipt.
    assert [r.action for r in got] == ["accept_all", "reject_all", "reject_all"]
    assert [r.source for r in got] == ["banner", "preferences", "api"]
    assert {r.masked_ip for r in got} == {"198.51.100.0"}  # client behind the trusted proxy
    assert [r.banner_hash for r in got] == ["sha256:nb", "sha256:nb", "sha256:en"]
    assert store.texts_sync("sha256:en") is not None
    await store.close()

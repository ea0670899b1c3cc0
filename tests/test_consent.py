"""The consent cookie codec: round trips, and every kind of bad cookie reads as undecided."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from consentmw.consent import ConsentCodec, ConsentState, new_consent_id

KEY = b"k" * 32
OTHER = b"o" * 32
DAY = 86400


def codec(keys: tuple[bytes, ...] = (KEY,), version: str = "1", lifetime: int = 182 * DAY):
    return ConsentCodec(keys, version, lifetime)


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=16)


@given(
    granted=st.frozensets(names, max_size=5),
    denied=st.frozensets(names, max_size=5),
    decided=st.booleans(),
    signal=st.sampled_from([None, "gpc", "dnt"]),
)
def test_round_trip(granted, denied, decided, signal) -> None:
    c = codec()
    state = ConsentState(
        decided=decided,
        granted=granted,
        denied=denied - granted,
        policy_version="1",
        consent_id=new_consent_id(),
        decided_at=int(time.time()),
        signal=signal,
    )
    assert c.verify(c.encode(state))[0] == state


@given(st.text(max_size=5000))
def test_any_string_decodes_to_none_never_raises(value: str) -> None:
    assert codec().verify(value) is None


def good() -> str:
    return codec().encode(
        ConsentState(True, frozenset({"analytics"}), frozenset(), "1", "id", int(time.time()))
    )


def test_tampered_unsigned_and_oversized_are_undecided() -> None:
    value = good()
    payload, _, sig = value.rpartition(".")
    assert codec().verify(value) is not None
    assert codec().verify(payload + "." + sig[::-1]) is None
    assert codec().verify(payload) is None
    assert codec().verify('{"v":"1","g":["analytics"]}') is None
    assert codec().verify("x" * 5000) is None
    assert codec().verify("") is None and codec().verify(None) is None


def test_verify_says_when_the_cookie_was_signed() -> None:
    """The cookie's age is the caller's check (ConsentPolicy.context, on every request)."""
    value = good()
    verified = codec(lifetime=DAY).verify(value)
    assert verified is not None and abs(verified[1] - time.time()) < 5


def test_older_policy_version_is_undecided_but_keeps_the_consent_id() -> None:
    state = codec(version="2").verify(good())[0]
    assert state is not None and not state.decided and not state.granted
    assert state.policy_version == "2" and state.consent_id == "id"


def test_key_rotation_first_signs_all_verify() -> None:
    old_value = codec((OTHER,)).encode(
        ConsentState(True, frozenset(), frozenset({"analytics"}), "1", "id", int(time.time()))
    )
    rotated = codec((KEY, OTHER))
    assert rotated.verify(old_value) is not None  # old key still verifies
    new_value = rotated.encode(ConsentState(True, policy_version="1", consent_id="i", decided_at=1))
    assert codec((KEY,)).verify(new_value) is not None  # new key signs
    assert codec((OTHER,)).verify(new_value) is None
    assert codec((b"z" * 32,)).verify(old_value) is None


def test_summary() -> None:
    assert ConsentState().summary == "undecided"
    assert ConsentState(decided=True).summary == "denied"
    assert ConsentState(signal="gpc").summary == "denied"
    assert ConsentState(decided=True, granted=frozenset({"analytics"})).summary == "granted"
    assert ConsentState().allows("necessary") and not ConsentState().allows("analytics")

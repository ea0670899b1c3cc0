"""What reaches a log's path and browser fields: no query material, no path parameters,
no tokens in paths; only allow-listed browser and OS names with short major versions."""

from __future__ import annotations

import random
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from consentmw.privacy.paths import TOKEN, clean_path, is_token_like
from consentmw.requestlog.encoder import make_encoder
from consentmw.requestlog.record import MAX_PATH_LENGTH, decode_path
from consentmw.requestlog.useragent import BROWSERS, OPERATING_SYSTEMS, UAInfo, UAParser

# One parser per backend for the whole run: building one compiles the rules (slow once).
PARSERS = (UAParser(), UAParser("auto"))


# -- paths -----------------------------------------------------------------------------


def test_encoded_query_and_fragment_are_cut() -> None:
    assert decode_path(b"/x%3Ftoken=abc") == "/x"
    assert decode_path(b"/x%3ftoken=abc?real=1") == "/x"
    assert decode_path(b"/a%23frag") == "/a"
    assert decode_path(b"/a#frag") == "/a"


def test_path_parameters_are_dropped() -> None:
    assert decode_path(b"/cart;jsessionid=1A2B3C4D/checkout") == "/cart/checkout"
    assert decode_path(b"/a;x=1/b;y=2;z=3") == "/a/b"
    assert decode_path(b"/shop%3Bjsessionid=abc") == "/shop"


def test_tokens_in_paths_are_replaced() -> None:
    assert decode_path(b"/reset/8f14e45fceea167a5a36dedd4bea2543") == f"/reset/{TOKEN}"
    assert decode_path(b"/verify/0b9f6a44-3c1d-4e8a-9f3b-2d7c1a5e6f80/ok") == f"/verify/{TOKEN}/ok"
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0NzkxMjM0NTY3In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    assert decode_path(f"/auth/{jwt}") == f"/auth/{TOKEN}"
    assert decode_path(b"/confirm/Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg") == f"/confirm/{TOKEN}"
    assert decode_path(b"/u/a1b2c3d4e5f6g7h8i9") == f"/u/{TOKEN}"  # letters and digits


def test_ordinary_slugs_stay() -> None:
    for path in [
        "/blog/how-to-install-python-3-11",
        "/produkter/sms-gateway",
        "/nyheter/2024/11/27/pling-far-ny-versjon",
        "/docs/getting-started-with-FastAPI-and-OAuth2",
        "/artikler/iPhone-15-vs-iPad-Pro-M4-vs-MacBook-Air",
        "/static/consent.css",
        "/kategori/ListOfAllProductsInTheStore",
        "/tv/NRK-TV-Dagsrevyen-2024-11-27",
        "/_consent/preferences",
        "/",
    ]:
        assert decode_path(path) == path, path


def test_long_path_loses_its_partial_last_segment() -> None:
    token = "8f14e45fceea167a5a36dedd4bea2543"
    raw = "/" + "a" * (MAX_PATH_LENGTH - 20) + "/" + token  # cut 18 characters in
    logged = decode_path(raw)
    assert len(logged) <= MAX_PATH_LENGTH and token[:12] not in logged


_HEX = "0123456789abcdef"
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"


def _token(kind: str, seed: int) -> str:
    """A secret as reset/verification links carry them, drawn from ``seed``."""
    rng = random.Random(seed)
    if kind == "hex":
        return "".join(rng.choice(_HEX) for _ in range(rng.choice((16, 32, 40, 64))))
    if kind == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if kind == "base64url":  # secrets.token_urlsafe() and most frameworks: 32 bytes
        return "".join(rng.choice(_B64) for _ in range(rng.randint(43, 64)))
    if kind == "alnum":  # letters and digits, both present
        body = [rng.choice(_ALNUM) for _ in range(rng.randint(14, 40))]
        return "".join(body) + rng.choice("abcdef") + rng.choice("0123456789")
    parts = ["eyJ" + "".join(rng.choice(_B64) for _ in range(rng.randint(10, 40)))]
    parts += ["".join(rng.choice(_B64) for _ in range(rng.randint(10, 60))) for _ in "ab"]
    return ".".join(parts)


_segment = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/"), max_size=20)


@settings(max_examples=300, deadline=None)
@given(
    before=st.lists(_segment, max_size=4),
    after=st.lists(_segment, max_size=3),
    kind=st.sampled_from(["hex", "uuid", "base64url", "alnum", "jwt"]),
    seed=st.integers(0, 2**32),
    params=st.text(max_size=12),
    query=st.text(max_size=12),
    encode=st.booleans(),
)
def test_no_logged_path_holds_query_parameters_or_seeded_token(
    before: list[str],
    after: list[str],
    kind: str,
    seed: int,
    params: str,
    query: str,
    encode: bool,
) -> None:
    token = _token(kind, seed)
    path = "/" + "/".join([*before, token, *after]) + ";" + params
    path += ("%3F" if encode else "?") + query
    raw = path.encode("utf-8", "surrogatepass")
    encoder = make_encoder(PARSERS[0])
    for logged in (decode_path(raw), decode_path(path)):
        assert "?" not in logged and ";" not in logged and "#" not in logged
        assert token not in logged
    key = ("0.0.0.0", None, None, "GET", raw, 200, None, "undecided", None, None)
    line = encoder((0.0, 0, 0.001, key, None, None, None, None))
    assert token not in line and "?" not in line.split('"path":')[1].split('","status"')[0]


@given(st.text(max_size=200))
def test_clean_path_never_holds_query_or_parameters(path: str) -> None:
    cleaned = clean_path(path)
    assert cleaned.startswith("/") or path[:1] != "/"
    assert not {"?", ";", "#"} & set(cleaned)


def test_token_detection_catches_random_tokens() -> None:
    rng = random.Random(1)
    for _ in range(2000):
        token = "".join(rng.choice(_B64) for _ in range(43))
        assert is_token_like(token), token


# -- browser and OS --------------------------------------------------------------------

APP_UA = "PrivateApp-1980/1234567890123 CFNetwork/1494.0.7 Darwin/23.4.0"


def test_app_names_and_long_versions_never_reach_the_fields() -> None:
    for backend in ("user-agents", "auto"):
        info = UAParser(backend)(APP_UA)
        assert info.browser == "Other" and info.browser_version is None, info
        assert "PrivateApp" not in repr(info) and "1234567890123" not in repr(info)
        odd = UAParser(backend)("Mozilla/5.0 (Windows NT 10.0) Chrome/1234567890123.0 Safari/1")
        assert odd.browser in BROWSERS | {"Other"} and odd.browser_version is None


def test_known_browsers_keep_name_and_major_version() -> None:
    ios = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
    )
    assert UAParser()(ios) == UAInfo("Mobile Safari", "17", "iOS", "17", "mobile")


def _check_allowed(info: UAInfo) -> None:
    assert info.browser in BROWSERS or info.browser == "Other", info
    assert info.os in OPERATING_SYSTEMS or info.os == "Other", info
    for version in (info.browser_version, info.os_version):
        assert version is None or (version.isdigit() and version.isascii() and len(version) <= 4)
    assert info.device in {"desktop", "mobile", "tablet", "bot", "other"}


_ua_pieces = st.sampled_from(
    [
        "Mozilla/5.0 ",
        "(iPhone; CPU iPhone OS 17_1 like Mac OS X) ",
        "(Windows NT 10.0; Win64; x64) ",
        "(Linux; Android 14; Pixel 8) ",
        "AppleWebKit/537.36 (KHTML, like Gecko) ",
        "Chrome/",
        "Version/",
        "Safari/",
        "Firefox/",
        "CFNetwork/1494.0.7 Darwin/23.4.0",
        "Mobile/15E148 ",
        "Edg/",
        "OPR/",
        "bot",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(_ua_pieces, st.text(max_size=20), st.from_regex(r"[A-Za-z-]{1,12}/[0-9.]{1,20}")),
        max_size=8,
    )
)
def test_fields_are_always_on_the_allow_list(pieces: list[str]) -> None:
    ua = "".join(pieces)
    for parse in PARSERS:
        _check_allowed(parse(ua))

"""Cookie categories and the declared cookies.

Every cookie a site may set is declared here with its category, so the middleware can
decide from the name alone whether a ``Set-Cookie`` may pass. The defaults are the
cookies of Front Information AS's privacy policy (v1.07): four strictly necessary ones
and Google Analytics' cookies, which need consent.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .cache import memoize

NECESSARY = "necessary"
ANALYTICS = "analytics"

FIRST_PARTY = "first party"
GOOGLE = "Google"

_CATEGORY_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# RFC 6265 cookie-name token characters, plus '*' for patterns.
_COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$")


def _texts(value: Mapping[str, str] | str, what: str) -> Mapping[str, str]:
    if isinstance(value, str):
        return {"nb": value, "en": value}
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"{what} must be a string or a mapping like {{'nb': ..., 'en': ...}}")
    return dict(value)


@dataclass(frozen=True)
class Category:
    """A purpose visitors can grant or refuse (``necessary`` cannot be refused)."""

    name: str
    label: Mapping[str, str]
    description: Mapping[str, str]
    required: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _CATEGORY_NAME.match(self.name):
            raise ValueError(
                f"category name {self.name!r} must be 1-32 lower-case letters, digits, '-' "
                "or '_', starting with a letter"
            )
        object.__setattr__(self, "label", _texts(self.label, f"label of category {self.name}"))
        object.__setattr__(
            self, "description", _texts(self.description, f"description of category {self.name}")
        )

    def text(self, attr: str, lang: str) -> str:
        texts: Mapping[str, str] = getattr(self, attr)
        return texts.get(lang) or texts.get("en") or next(iter(texts.values()))


@dataclass(frozen=True)
class CookieSpec:
    """One declared cookie: an exact name or a glob pattern such as ``_ga_*``."""

    name: str
    category: str
    provider: str = FIRST_PARTY
    purpose: Mapping[str, str] = field(default_factory=lambda: {"nb": "", "en": ""})
    lifetime: Mapping[str, str] = field(default_factory=lambda: {"nb": "", "en": ""})
    third_party: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _COOKIE_NAME.match(self.name):
            raise ValueError(
                f"cookie name {self.name!r} is not a valid cookie name (RFC 6265 token, "
                "optionally with '*' as a wildcard)"
            )
        object.__setattr__(self, "purpose", _texts(self.purpose, f"purpose of cookie {self.name}"))
        object.__setattr__(
            self, "lifetime", _texts(self.lifetime, f"lifetime of cookie {self.name}")
        )

    @property
    def is_pattern(self) -> bool:
        return "*" in self.name

    def matches(self, cookie_name: str) -> bool:
        if self.is_pattern:
            return fnmatch.fnmatchcase(cookie_name, self.name)
        return cookie_name == self.name

    def text(self, attr: str, lang: str) -> str:
        texts: Mapping[str, str] = getattr(self, attr)
        return texts.get(lang) or texts.get("en") or next(iter(texts.values()), "")


DEFAULT_CATEGORIES: tuple[Category, ...] = (
    Category(
        NECESSARY,
        {"nb": "Nødvendige", "en": "Strictly necessary"},
        {
            "nb": "Får nettstedet til å virke: innlogging, sikker ruting til riktig server, "
            "oppdateringer i sanntid og lagring av valget ditt. Kan ikke slås av.",
            "en": "Make the site work: signing in, routing you to the right server, live "
            "updates and remembering your choice. They cannot be switched off.",
        },
        required=True,
    ),
    Category(
        ANALYTICS,
        {"nb": "Statistikk", "en": "Analytics"},
        {
            "nb": "Med ditt samtykke bruker vi Google Analytics for å se hvilke sider som "
            "brukes og hvordan besøkende finner fram. Google Analytics setter "
            "informasjonskapsler med en tilfeldig id og får vite hvilke sider du ser, hvor du "
            "kom fra, tidspunktet, nettleser, enhet og omtrentlig sted. Google mottar hele "
            "IP-adressen din, bruker den til å anslå omtrentlig sted og lagrer den ikke. "
            "Google behandler opplysningene på våre vegne (databehandler), og de kan bli "
            "overført til USA.",
            "en": "With your consent we use Google Analytics to see which pages are used and "
            "how visitors find them. Google Analytics sets cookies holding a random id and "
            "learns which pages you view, where you came from, the time, your browser, device "
            "and approximate location. Google receives your full IP address, uses it to "
            "estimate your approximate location and does not store it. Google processes this "
            "data on our behalf (as our processor), and it may be transferred to the USA.",
        },
    ),
)


def _ga(name: str, nb: str, en: str, life_nb: str, life_en: str) -> CookieSpec:
    return CookieSpec(
        name, ANALYTICS, GOOGLE, {"nb": nb, "en": en}, {"nb": life_nb, "en": life_en}, True
    )


def _classic(name: str, nb: str, en: str, life_nb: str, life_en: str) -> tuple[CookieSpec, ...]:
    """Google's classic cookie plus the single-underscore spelling the policy uses."""
    return (_ga(name, nb, en, life_nb, life_en), _ga(name[1:], nb, en, life_nb, life_en))


DEFAULT_COOKIES: tuple[CookieSpec, ...] = (
    CookieSpec(
        "AWSALB",
        NECESSARY,
        "Amazon Web Services",
        {
            "nb": "Sender nettleseren din til den serveren i serverparken som passer best.",
            "en": "Sends your browser to the best-suited server in our server park.",
        },
        {"nb": "7 dager", "en": "7 days"},
    ),
    CookieSpec(
        "AWSALBCORS",
        NECESSARY,
        "Amazon Web Services",
        {
            "nb": "Som AWSALB, for forespørsler fra andre nettsteder (CORS).",
            "en": "Like AWSALB, for requests made from other sites (CORS).",
        },
        {"nb": "7 dager", "en": "7 days"},
    ),
    CookieSpec(
        "access_token",
        NECESSARY,
        FIRST_PARTY,
        {
            "nb": "Bekrefter hvem du er etter at du har logget inn.",
            "en": "Proves who you are after you have signed in.",
        },
        {"nb": "Til du logger ut", "en": "Until you sign out"},
    ),
    CookieSpec(
        "refresh_token",
        NECESSARY,
        FIRST_PARTY,
        {
            "nb": "Fornyer innloggingen din uten at du må logge inn på nytt.",
            "en": "Renews your sign-in without asking you to sign in again.",
        },
        {"nb": "Til du logger ut", "en": "Until you sign out"},
    ),
    CookieSpec(
        "io",
        NECESSARY,
        FIRST_PARTY,
        {
            "nb": "Kjenner igjen nettleseren din slik at nye data kan vises straks "
            "(push-oppdateringer).",
            "en": "Recognises your browser so new data can be shown at once (push updates).",
        },
        {"nb": "Til nettleseren lukkes", "en": "Until the browser closes"},
    ),
    _ga(
        "_ga",
        "Skiller besøkende fra hverandre slik at antall brukere kan telles.",
        "Tells visitors apart so the number of users can be counted.",
        "2 år",
        "2 years",
    ),
    _ga(
        "_ga_*",
        "Husker øktstatus for Google Analytics 4-målingen.",
        "Keeps the session state of the Google Analytics 4 property.",
        "2 år",
        "2 years",
    ),
    _ga(
        "_gid",
        "Skiller besøkende fra hverandre gjennom ett døgn.",
        "Tells visitors apart over one day.",
        "24 timer",
        "24 hours",
    ),
    _ga(
        "_gat",
        "Inneholder ingen opplysninger om deg; begrenser hvor ofte det sendes data til "
        "Google Analytics.",
        "Holds nothing about you; limits how often data is sent to Google Analytics.",
        "1 minutt",
        "1 minute",
    ),
    _ga(
        "_gat_*",
        "Som _gat, for en bestemt måling.",
        "Like _gat, for one particular property.",
        "1 minutt",
        "1 minute",
    ),
    *_classic(
        "__utma",
        "Klassisk Google Analytics: skiller brukere og økter fra hverandre.",
        "Classic Google Analytics: tells users and sessions apart.",
        "2 år etter siste oppdatering",
        "2 years after last update",
    ),
    *_classic(
        "__utmb",
        "Klassisk Google Analytics: merker at et nytt besøk har startet.",
        "Classic Google Analytics: notes that a new visit has begun.",
        "30 minutter etter siste oppdatering",
        "30 minutes after last update",
    ),
    *_classic(
        "__utmc",
        "Klassisk Google Analytics: for samspill med eldre versjoner av Analytics.",
        "Classic Google Analytics: for working with older versions of Analytics.",
        "Til nettleseren lukkes",
        "Until the browser closes",
    ),
    *_classic(
        "__utmz",
        "Klassisk Google Analytics: husker hvor du kom fra (trafikkilde eller kampanje).",
        "Classic Google Analytics: remembers where you came from (source or campaign).",
        "6 måneder etter siste oppdatering",
        "6 months after last update",
    ),
)


def consent_cookie_spec(cookie_name: str, lifetime_days: int) -> CookieSpec:
    """consentmw's own cookie, declared like any other necessary cookie."""
    return CookieSpec(
        cookie_name,
        NECESSARY,
        FIRST_PARTY,
        {
            "nb": "Husker hvilke informasjonskapsler du har godtatt eller avvist.",
            "en": "Remembers which cookies you have accepted or refused.",
        },
        {"nb": f"{lifetime_days} dager", "en": f"{lifetime_days} days"},
    )


class Registry:
    """The validated set of categories and cookies, with a cached name lookup."""

    def __init__(self, categories: Iterable[Category], cookies: Iterable[CookieSpec]) -> None:
        self.categories: tuple[Category, ...] = tuple(categories)
        self.cookies: tuple[CookieSpec, ...] = tuple(cookies)
        names = [c.name for c in self.categories]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"categories: {', '.join(dupes)} declared more than once")
        if NECESSARY not in names:
            raise ValueError(f"categories must include {NECESSARY!r} (always on)")
        for c in self.categories:
            if c.required != (c.name == NECESSARY):
                raise ValueError(
                    f"category {c.name!r}: only {NECESSARY!r} is required; every other "
                    "category must be opt-in (required=False)"
                )
        seen: set[str] = set()
        for spec in self.cookies:
            if spec.category not in names:
                raise ValueError(
                    f"cookie {spec.name!r} is declared in unknown category {spec.category!r}; "
                    f"known categories: {', '.join(names)}"
                )
            if spec.name in seen:
                raise ValueError(
                    f"cookie {spec.name!r} is declared twice; declare each cookie once"
                )
            seen.add(spec.name)
        self._exact = {s.name: s for s in self.cookies if not s.is_pattern}
        self._patterns = tuple(s for s in self.cookies if s.is_pattern)
        self.optional: tuple[str, ...] = tuple(c.name for c in self.categories if not c.required)
        # Names come from requests and responses: long ones are looked up, not stored.
        self.lookup = memoize(4096, 1024 * 1024, max_key=256)(self._lookup)

    def _lookup(self, cookie_name: str) -> CookieSpec | None:
        spec = self._exact.get(cookie_name)
        if spec is not None:
            return spec
        for pattern in self._patterns:
            if pattern.matches(cookie_name):
                return pattern
        return None

    def cookies_in(self, category: str) -> tuple[CookieSpec, ...]:
        return tuple(s for s in self.cookies if s.category == category)

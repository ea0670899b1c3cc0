"""Rendering the banner snippet and the consent pages, in Norwegian bokmål and English.

The snippet depends only on the language and the consent state, so it is rendered once
per combination and cached; the one per-request part, a CSP nonce, is filled into its
placeholder (checked against the nonce syntax first).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from datetime import datetime, timezone, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PrefixLoader,
    pass_context,
    select_autoescape,
)

from .config import LANGUAGES, ConsentConfig
from .consent import ConsentState
from .registry import FIRST_PARTY, CookieSpec
from .resources import static_digest, static_files, templates_dir

logger = logging.getLogger("consentmw")

TEXTS: dict[str, dict[str, str]] = {
    "nb": {
        "title": "Vi bruker informasjonskapsler",
        "intro": "Noen informasjonskapsler trengs for at nettstedet skal virke. Med ditt "
        "samtykke bruker vi også Google Analytics for å se hvordan sidene blir brukt. Du "
        "bestemmer selv, og du kan endre valget ditt når som helst.",
        "accept_all": "Godta alle",
        "reject_all": "Avvis alle",
        "settings": "Innstillinger",
        "save": "Lagre valgene",
        "reopen": "Informasjonskapsler",
        "reopen_label": "Endre valgene dine for informasjonskapsler",
        "reopen_region": "Valg for informasjonskapsler",
        "allow": "Tillat",
        "choose": "Endre valgene",
        "third_party_note": "Opplysninger sendes til {provider}.",
        "nav_label": "Om informasjonskapsler",
        "saved": "Valget ditt er lagret.",
        "first_party": "Dette nettstedet (førstepart)",
        "declaration": "Oversikt over informasjonskapsler",
        "privacy_policy": "Personvernerklæring",
        "preferences_title": "Valgene dine for informasjonskapsler",
        "preferences_intro": "Velg hvilke formål du godtar. Nødvendige informasjonskapsler "
        "er alltid på fordi nettstedet ikke virker uten dem. Du kan trekke tilbake et "
        "samtykke like enkelt som du ga det.",
        "always_on": "Alltid på",
        "cookies_title": "Informasjonskapsler på dette nettstedet",
        "cookies_intro": "Her er alle informasjonskapslene nettstedet kan sette, hvorfor, "
        "og hvor lenge de varer.",
        "name": "Navn",
        "category": "Kategori",
        "provider": "Leverandør",
        "purpose": "Formål",
        "lifetime": "Varighet",
        "third_party": "Data sendes til tredjepart",
        "yes": "Ja",
        "no": "Nei",
        "controller": "Behandlingsansvarlig",
        "current": "Ditt nåværende valg",
        "state_undecided": "Du har ikke valgt ennå.",
        "state_decided": "Du valgte dette",
        "state_signal": "Nettleseren din ber om at du ikke spores (Global Privacy Control "
        "eller Do Not Track), så alt som er valgfritt er slått av til du selv velger noe annet.",
        "on": "På",
        "off": "Av",
        "back": "Tilbake til siden",
        "cookies_in_category": "Informasjonskapsler i denne kategorien",
        # Site-specific notes (for example about localStorage) go in texts=...; empty: none.
        "storage_note": "",
        "my_data": "Se hva vi har lagret om valgene dine",
        "close": "Lukk",
        "me_title": "Det vi har lagret om valgene dine",
        "me_intro": "Her ser du alt vi har lagret om samtykkene dine: valget du har nå, og en "
        "kvittering for hvert valg du har gjort. Kvitteringene er knyttet til en tilfeldig id i "
        "informasjonskapselen din, ikke til navnet ditt.",
        "me_id": "Din samtykke-id",
        "me_none": "Vi har ingen kvitteringer for denne id-en.",
        "me_when": "Tidspunkt",
        "me_what": "Valg",
        "me_granted": "Godtatt",
        "me_denied": "Avvist",
        "me_source": "Hvor",
        "me_ip": "Maskert IP-adresse",
        "me_browser": "Nettleser",
        "me_version": "Versjon",
        "me_log": "Forespørselsloggen vår har ingen samtykke-id og ingen hel IP-adresse, men den "
        "har en maskert IP-adresse, tidspunkt, side og type nettleser og enhet. Den er derfor "
        "pseudonym, ikke anonym: sammen med andre opplysninger kan et besøk i noen tilfeller "
        "knyttes til deg.",
        "me_forget": "Slett alt om meg",
        "me_forget_help": "Sletter kvitteringene over og alle valgfrie informasjonskapsler. Du "
        "blir spurt på nytt neste gang.",
        "me_complain": "Mener du at vi ikke følger reglene, kan du klage til oss eller til "
        "Datatilsynet.",
        "forgot_title": "Slettet",
        "forgot_done": "Vi har slettet kvitteringene for valgene dine (antall: %d) og fjernet "
        "samtykke-informasjonskapselen og alle valgfrie informasjonskapsler.",
        "forgot_log": "Forespørselsloggen har ingen samtykke-id, så den kan ikke slettes ut fra "
        "den. Den har maskerte IP-adresser og slettes når lagringstiden er ute.",
        "forgot_kept": "Noen kvitteringer (antall: %d) må vi likevel ta vare på fordi de er "
        "omfattet av en rettslig plikt til å bevare dem (for eksempel en rettssak). De "
        "slettes når den plikten er over og lagringstiden er ute.",
        "me_nothing_to_delete": "Vi har ikke lagret noe om valgene dine, så det er ingenting å "
        "slette.",
        "me_none_value": "ingen",
        "me_pending": "venter på lagring",
        "action_accept_all": "Godtok alle",
        "action_reject_all": "Avviste alle",
        "action_save": "Lagret egne valg",
        "action_change": "Endret valgene",
        "action_withdraw": "Trakk tilbake samtykke",
        "action_signal": "Avvist av nettleserens personvernsignal",
        "source_banner": "Banneret",
        "source_preferences": "Innstillingene",
        "source_api": "Nettstedets skript",
        "source_signal": "Nettleserens personvernsignal",
    },
    "en": {
        "title": "We use cookies",
        "intro": "Some cookies are needed for this site to work. With your consent we also "
        "use Google Analytics to see how the pages are used. It is your choice, and you can "
        "change it at any time.",
        "accept_all": "Accept all",
        "reject_all": "Reject all",
        "settings": "Settings",
        "save": "Save choices",
        "reopen": "Cookie settings",
        "reopen_label": "Change your cookie choices",
        "reopen_region": "Cookie choices",
        "allow": "Allow",
        "choose": "Change your choices",
        "third_party_note": "Data is sent to {provider}.",
        "nav_label": "About cookies",
        "saved": "Your choice has been saved.",
        "first_party": "This site (first party)",
        "declaration": "Cookie declaration",
        "privacy_policy": "Privacy policy",
        "preferences_title": "Your cookie choices",
        "preferences_intro": "Choose the purposes you accept. Strictly necessary cookies are "
        "always on because the site does not work without them. You can withdraw consent as "
        "easily as you gave it.",
        "always_on": "Always on",
        "cookies_title": "Cookies on this site",
        "cookies_intro": "These are all the cookies this site may set, why, and for how long.",
        "name": "Name",
        "category": "Category",
        "provider": "Provider",
        "purpose": "Purpose",
        "lifetime": "Lifetime",
        "third_party": "Data sent to a third party",
        "yes": "Yes",
        "no": "No",
        "controller": "Data controller",
        "current": "Your current choice",
        "state_undecided": "You have not chosen yet.",
        "state_decided": "You chose this",
        "state_signal": "Your browser asks not to be tracked (Global Privacy Control or Do "
        "Not Track), so everything optional is off until you choose otherwise.",
        "on": "On",
        "off": "Off",
        "back": "Back to the page",
        "cookies_in_category": "Cookies in this category",
        "storage_note": "",
        "my_data": "See what we hold about your choices",
        "close": "Close",
        "me_title": "What we hold about your choices",
        "me_intro": "This is everything we hold about your consent: your current choice and a "
        "receipt for every choice you have made. The receipts are linked to a random id in your "
        "cookie, not to your name.",
        "me_id": "Your consent id",
        "me_none": "We hold no receipts for this id.",
        "me_when": "Time",
        "me_what": "Choice",
        "me_granted": "Accepted",
        "me_denied": "Refused",
        "me_source": "Where",
        "me_ip": "Masked IP address",
        "me_browser": "Browser",
        "me_version": "Version",
        "me_log": "Our request log holds no consent id and no full IP address, but it does hold a "
        "masked IP address, the time, the page and the type of browser and device. It is "
        "therefore pseudonymous, not anonymous: combined with other information, a visit can "
        "in some cases be linked to you.",
        "me_forget": "Delete everything about me",
        "me_forget_help": "Deletes the receipts above and every optional cookie. You will be "
        "asked again next time.",
        "me_complain": "If you think we do not follow the rules, you can complain to us or to the "
        "Norwegian Data Protection Authority (Datatilsynet).",
        "forgot_title": "Deleted",
        "forgot_done": "We have deleted the receipts of your choices (count: %d) and removed the "
        "consent cookie and every optional cookie.",
        "forgot_log": "The request log holds no consent id, so nothing can be deleted from it by "
        "that id. It holds masked IP addresses and is deleted when its retention time is up.",
        "forgot_kept": "We must keep some receipts (count: %d) because a legal obligation to "
        "preserve them applies (for example a court case). They are deleted when that "
        "obligation ends and their retention time is up.",
        "me_nothing_to_delete": "We hold nothing about your choices, so there is nothing to "
        "delete.",
        "me_none_value": "none",
        "me_pending": "waiting to be stored",
        "action_accept_all": "Accepted all",
        "action_reject_all": "Rejected all",
        "action_save": "Saved own choices",
        "action_change": "Changed choices",
        "action_withdraw": "Withdrew consent",
        "action_signal": "Refused by the browser's privacy signal",
        "source_banner": "The banner",
        "source_preferences": "The settings",
        "source_api": "The site's script",
        "source_signal": "The browser's privacy signal",
    },
}

_NONCE_ATTR = ' nonce="__consentmw_nonce__"'
_PLACEHOLDERS = re.compile(f"({_NONCE_ATTR})")
_NONCE = re.compile(r"^[A-Za-z0-9+/=_\-]{1,128}$")
_NB_TAGS = ("nb", "no", "nn")


def _accept_language(header: str, default: str) -> str:
    best, best_q = default, -1.0
    for i, item in enumerate(header.split(",")[:32]):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        lang = "nb" if primary in _NB_TAGS else primary
        if lang not in LANGUAGES:
            continue
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        q -= i * 1e-6  # earlier wins on equal q
        if q > best_q and q > 0:
            best, best_q = lang, q
    return best


def choose_language(html_lang: str | None, accept_language: str, default: str) -> str:
    """The page's own ``<html lang>`` first, then ``Accept-Language``, then the default."""
    if html_lang:
        primary = html_lang.lower().split("-")[0]
        if primary in _NB_TAGS:
            return "nb"
        if primary in LANGUAGES:
            return primary
    if accept_language:
        return _accept_language(accept_language[:512], default)
    return default


class _Segments:
    """A rendered snippet split at its placeholders, with its fixed text encoded per charset."""

    __slots__ = ("encoded", "texts")

    def __init__(self, parts: list[str]) -> None:
        self.texts = tuple(parts)  # text, placeholder, text, placeholder, ..., text
        self.encoded: dict[tuple[str, str], tuple[bytes, ...]] = {}

    def encode(self, codec: str, errors: str) -> tuple[bytes, ...]:
        key = (codec, errors)
        parts = self.encoded.get(key)
        if parts is None:
            parts = tuple(t.encode(codec, errors) for t in self.texts)
            self.encoded[key] = parts
        return parts


class Snippet:
    """The snippet of one response: cached parts plus the CSP nonce.

    ``encode(codec)`` joins the fixed parts, encoded once per charset, with this
    response's own, so a response pays for neither re-rendering nor re-encoding the
    markup; ``str()`` gives the text.
    """

    __slots__ = ("fills", "segments")

    def __init__(self, segments: _Segments, nonce_attr: str) -> None:
        self.segments = segments
        self.fills = {_NONCE_ATTR: nonce_attr}

    def _pieces(self, parts: tuple[Any, ...], fills: dict[str, Any]) -> list[Any]:
        texts = self.segments.texts
        return [fills[texts[i]] if i % 2 else parts[i] for i in range(len(texts))]

    def __str__(self) -> str:
        return "".join(self._pieces(self.segments.texts, self.fills))

    def encode(self, codec: str = "utf-8", errors: str = "strict") -> bytes:
        fills = {k: v.encode(codec, errors) for k, v in self.fills.items()}
        return b"".join(self._pieces(self.segments.encode(codec, errors), fills))


class Banner:
    """The Jinja2 environment and every rendered text of one configuration."""

    def __init__(self, config: ConsentConfig) -> None:
        self.config = config
        # The site's folder is searched first; "consentmw-default/<name>" always reaches the
        # shipped template, so an override can extend the original and change one block.
        shipped = templates_dir()
        loaders: list[Any] = [
            FileSystemLoader(str(shipped)),
            PrefixLoader({"consentmw-default": FileSystemLoader(str(shipped / "consentmw"))}),
        ]
        if config.templates_dir is not None:
            loaders.insert(0, FileSystemLoader(str(config.templates_dir)))
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.texts = {
            lang: {**TEXTS[lang], **dict(config.texts.get(lang, {}))} for lang in LANGUAGES
        }
        self.env.filters["category_labels"] = _category_labels
        self.env.filters["localtime"] = _local_time(ZoneInfo(config.timezone))
        if config.controller is None:
            logger.warning(
                "consentmw: no controller is set, so the consent pages name no data "
                "controller; GDPR Art. 13 asks for one: ConsentMiddleware(..., "
                "controller='Example AS, org.nr. ...')"
            )
        prefix = config.prefix
        self.static_urls = {
            name: f"{prefix}/static/{static_digest()}/{name}" for name in static_files()
        }
        # The rendered template per language and state (a few dozen at most).
        self._snippets: dict[tuple[Any, ...], _Segments] = {}

    # -- shared context ----------------------------------------------------------------
    def context(self, lang: str, state: ConsentState, **extra: Any) -> dict[str, Any]:
        cfg = self.config
        registry = cfg.registry
        return {
            "lang": lang,
            "t": self.texts[lang],
            "prefix": cfg.prefix,
            "static": self.static_urls,
            "state": state,
            "categories": [
                {
                    "name": c.name,
                    "label": c.text("label", lang),
                    "description": c.text("description", lang),
                    "required": c.required,
                    "checked": state.allows(c.name),
                    "cookies": _cookie_rows(
                        registry.cookies_in(c.name), lang, self.texts[lang]["first_party"]
                    ),
                }
                for c in registry.categories
            ],
            "privacy_policy_url": cfg.privacy_policy_url,
            "controller": cfg.controller,
            "ga_id": cfg.google_analytics_id,
            "analytics_mode": cfg.analytics_mode,
            "optional": list(registry.optional),
            **extra,
        }

    def text_hash(self, lang: str) -> str:
        """Fingerprint of everything the visitor read, stored in each receipt."""
        return _shown_texts(self, lang)[0]

    def shown_texts(self, lang: str) -> tuple[str, str]:
        """``(hash, canonical JSON)`` of everything a visitor reads in ``lang``.

        The JSON is what the receipt store keeps once per hash, so a receipt can show the
        exact texts, categories, cookie declarations, controller and privacy-policy link
        the decision was made on; the hash is the SHA-256 of exactly these bytes.
        """
        return _shown_texts(self, lang)

    # -- the snippet ---------------------------------------------------------------------
    def snippet_parts(self, lang: str, state: ConsentState, nonce: str | None) -> Snippet:
        """The snippet for one response, cheap to encode: see :class:`Snippet`.

        The encoded bytes are cached by the caller (:class:`~consentmw.snippets.PageSnippets`).
        """
        key = (lang, state.show_banner, state.granted, state.signal, state.decided)
        segments = self._snippets.get(key)
        if segments is None:
            # next="": a site's template from before pages stopped carrying a return address
            # still renders; the answer to its form goes back to the Referer's page.
            ctx = self.context(lang, state, next="", nonce="__consentmw_nonce__")
            html = self.env.get_template("consentmw/snippet.html").render(ctx)
            segments = _Segments(_PLACEHOLDERS.split(html))
            if len(self._snippets) < 256:
                self._snippets[key] = segments
        nonce_attr = f' nonce="{nonce}"' if nonce and _NONCE.match(nonce) else ""
        return Snippet(segments, nonce_attr)

    def dialog(self, lang: str, state: ConsentState, next_path: str) -> str:
        """The settings dialog fragment that consent.js fetches when the visitor opens it."""
        return self.env.get_template("consentmw/dialog.html").render(
            self.context(lang, state, next=next_path, nonce=None)
        )

    def page(self, template: str, lang: str, state: ConsentState, **extra: Any) -> str:
        labels = {c.name: c.text("label", lang) for c in self.config.registry.categories}
        return self.env.get_template(f"consentmw/{template}").render(
            self.context(lang, state, nonce=None, category_names=labels, **extra)
        )


def _local_time(zone: tzinfo) -> Any:
    """Jinja filter: an ISO time (stored in UTC) as local ``YYYY-MM-DD HH:MM`` in ``zone``."""

    def local(value: object) -> str:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                return value
        if not isinstance(value, datetime):
            return str(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")

    return local


@pass_context
def _category_labels(context: Any, names: Iterable[str]) -> str:
    """Jinja filter: category names as the labels the visitor saw, joined with commas."""
    labels = context.get("category_names") or {}
    return ", ".join(labels.get(n, n) for n in names if n != "necessary")


def _cookie_rows(specs: Iterable[CookieSpec], lang: str, us: str) -> list[dict[str, Any]]:
    """One row per cookie; spellings with identical facts (``__utma``/``_utma``) share a row."""
    rows: list[dict[str, Any]] = []
    for s in specs:
        row = {
            "name": s.name,
            "names": [s.name],
            "purpose": s.text("purpose", lang),
            "lifetime": s.text("lifetime", lang),
            "provider": us if s.provider == FIRST_PARTY else s.provider,
            "third_party": s.third_party,
        }
        prev = rows[-1] if rows else None
        if prev and all(prev[k] == row[k] for k in ("purpose", "lifetime", "provider")):
            prev["names"].append(s.name)
            prev["third_party"] = prev["third_party"] or s.third_party
        else:
            rows.append(row)
    return rows


def text_material(banner: Banner, lang: str) -> dict[str, Any]:
    """Everything the visitor reads in ``lang``, as plain data (see ``shown_texts``)."""
    cfg = banner.config
    texts = banner.texts[lang]
    return {
        "language": lang,
        "policy_version": cfg.policy_version,
        "texts": texts,
        "categories": [
            {
                "name": c.name,
                "label": c.text("label", lang),
                "description": c.text("description", lang),
                "required": c.required,
            }
            for c in cfg.registry.categories
        ],
        "cookies": [
            {
                "name": s.name,
                "category": s.category,
                "provider": texts["first_party"] if s.provider == FIRST_PARTY else s.provider,
                "purpose": s.text("purpose", lang),
                "lifetime": s.text("lifetime", lang),
                "third_party": s.third_party,
            }
            for s in cfg.registry.cookies
        ],
        "controller": cfg.controller,
        "privacy_policy_url": cfg.privacy_policy_url,
    }


@lru_cache(maxsize=16)
def _shown_texts(banner: Banner, lang: str) -> tuple[str, str]:
    material = json.dumps(
        text_material(banner, lang), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return "sha256:" + hashlib.sha256(material.encode()).hexdigest(), material

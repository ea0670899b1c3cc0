"""The texts a visitor read, stored once per hash beside the receipts that refer to them.

A receipt holds only ``banner_hash``; the ``texts`` table maps that hash to the canonical
JSON of everything shown (texts, categories, cookie declarations, controller, privacy
policy link), so a receipt proves what the visitor agreed to, not just that the site
had some texts at the time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

logger = logging.getLogger("consentmw.records")


@dataclass(frozen=True)
class StoredTexts:
    """One row of the ``texts`` table: immutable once stored."""

    hash: str
    language: str
    policy_version: str
    material: str  # canonical JSON, exactly what the hash covers
    first_seen: datetime

    def data(self) -> Any:
        return json.loads(self.material)


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted names of what differs between two text materials, e.g. ``texts.intro``.

    Lists of named items (categories, cookies) are compared by name, so a reordering or one
    changed cookie is reported as that cookie, not as the whole list.
    """
    if old == new:
        return []
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    if _named(old) and _named(new):
        return changed_keys(
            {item["name"]: item for item in old}, {item["name"]: item for item in new}, prefix
        )
    return [prefix.rstrip(".") or "(all)"]


def _named(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, Mapping) and isinstance(item.get("name"), str) for item in value
    )


def warn_if_changed(
    stored: list[StoredTexts], text_hash: str, language: str, policy_version: str, material: str
) -> list[str] | None:
    """Warn when the texts changed while ``policy_version`` did not; return what changed.

    ``stored`` are the texts already stored for this policy version and language. Nothing
    stored yet, or this hash among them, means no change to report.
    """
    if not stored or any(s.hash == text_hash for s in stored):
        return None
    latest = max(stored, key=lambda s: s.first_seen)
    keys = changed_keys(latest.data(), json.loads(material))
    logger.warning(
        "consentmw: the consent texts for language %r changed under the same policy_version "
        "%r (changed: %s; stored as %s, now %s). Visitors who already decided will not be "
        "asked again unless policy_version is bumped.",
        language,
        policy_version,
        ", ".join(keys) or "formatting only",
        latest.hash,
        text_hash,
    )
    return keys

"""The reference for a streamed body: :func:`inject_once`, within the tail-window contract.

A streamed body's end tag is looked for only among the last ``STREAM_WINDOW`` bytes
received when a chunk arrives. The last end tag of a body is thus found when, with the
chunk that completes it (``</body`` and the byte after it), at most ``STREAM_WINDOW``
bytes from its ``<`` on have arrived. Then the output is :func:`inject_once` of the whole
body; otherwise the body passes untouched.
"""

from __future__ import annotations

from consentmw.pages import END_TAG, inject_once, last_end_tag
from consentmw.responder import STREAM_WINDOW


def last_end_tag_found(body: bytes, ends: list[int]) -> bool:
    """Whether the last end tag of ``body``, streamed in chunks ending at ``ends``, is found."""
    at = last_end_tag(body)
    if at < 0:
        return False
    complete = at + len(END_TAG) + 1
    arrived = min(end for end in [*ends, len(body)] if end >= complete)
    return arrived - at <= STREAM_WINDOW


def streamed_reference(body: bytes, ends: list[int], snippet: bytes) -> bytes:
    """What a responder sends for ``body`` streamed in chunks ending at ``ends``."""
    if last_end_tag_found(body, ends):
        return inject_once(body, snippet)
    return body

"""SMS length: which encoding a text needs, how many segments it costs, and cutting it to fit.

A text made only of GSM 03.38 characters goes as GSM-7: 160 septets in a single SMS, 153 per
segment of a multipart one, and each character of the extension table (``€ [ ] { } \\ ^ ~ |``
and form feed) costs two septets (escape + code). Any other character makes the whole text
UCS-2 (UTF-16): 70 code units single, 67 per segment, and a character outside the BMP (most
emoji) costs two. A character is never split across two segments, so a segment can hold one
unit less than its size. Pure functions; nothing here does I/O.
"""

from __future__ import annotations

import enum

# GSM 03.38 default alphabet, code points 0x00-0x7F in order, without 0x1B (the escape)
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# the extension table: each costs the escape plus its own code
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM_ELLIPSIS = "..."  # "…" is not GSM: using it would make the whole text UCS-2
UCS2_ELLIPSIS = "…"


class Encoding(enum.Enum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"

    @property
    def single(self) -> int:
        """Units (septets or UTF-16 code units) one unsegmented SMS holds."""
        return 160 if self is Encoding.GSM7 else 70

    @property
    def per_segment(self) -> int:
        """Units one segment of a multipart SMS holds (the rest is the UDH)."""
        return 153 if self is Encoding.GSM7 else 67


def encoding(text: str) -> Encoding:
    """Return GSM-7 if every character of ``text`` is in GSM 03.38 (basic or extension)."""
    if all(c in GSM_BASIC or c in GSM_EXTENSION for c in text):
        return Encoding.GSM7
    return Encoding.UCS2


def _costs(text: str, enc: Encoding) -> list[int]:
    if enc is Encoding.GSM7:
        return [2 if c in GSM_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def segment_count(text: str) -> int:
    """Return how many SMS segments ``text`` costs (0 for the empty text)."""
    if not text:
        return 0
    enc = encoding(text)
    costs = _costs(text, enc)
    if sum(costs) <= enc.single:
        return 1
    count, used = 1, 0
    for cost in costs:
        if used + cost > enc.per_segment:
            count, used = count + 1, 0
        used += cost
    return count


def fit(text: str, max_segments: int, tail: str = "") -> str:
    """Return ``text`` + " " + ``tail`` if it fits ``max_segments`` segments, else ``text`` cut
    with an ellipsis so that it does, ``tail`` kept whole (e.g. "Reply ACK 42").

    The ellipsis is "..." for GSM-7 text and "…" for UCS-2 text. If even the bare ``tail``
    does not fit, the whole text is cut instead.
    """
    if max_segments < 1:
        raise ValueError(f"max_segments must be at least 1, not {max_segments}")
    whole = " ".join(part for part in (text, tail) if part)
    if segment_count(whole) <= max_segments:
        return whole

    def candidate(k: int) -> str:
        head = text[:k].rstrip()
        ellipsis = GSM_ELLIPSIS if encoding(head + tail) is Encoding.GSM7 else UCS2_ELLIPSIS
        return " ".join(part for part in (head + ellipsis, tail) if part)

    if tail and segment_count(candidate(0)) > max_segments:
        return fit(whole, max_segments)
    # the largest prefix that fits: a longer prefix never costs fewer segments
    lo, hi = 0, len(text)  # candidate(lo) fits; candidate(hi) is longer than ``whole``
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if segment_count(candidate(mid)) <= max_segments:
            lo = mid
        else:
            hi = mid
    return candidate(lo)

"""SMS segment arithmetic: GSM-7 vs UCS-2, extension characters, surrogate pairs, cutting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertd.notify.sms.segments import (
    GSM_BASIC,
    GSM_EXTENSION,
    Encoding,
    encoding,
    fit,
    segment_count,
)

EMOJI = "\U0001f600"  # outside the BMP: a surrogate pair in UTF-16


def test_gsm_tables_have_their_standard_sizes() -> None:
    assert len(GSM_BASIC) == 127  # 128 codes minus the escape
    assert "\x1b" not in GSM_BASIC
    assert frozenset("\f^{}\\[~]|€") == GSM_EXTENSION
    assert not GSM_BASIC & GSM_EXTENSION


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CPU 92% on sw-core-01 @ £5 $6 ¥7 ¤ §", Encoding.GSM7),
        ("èéùìòÇØøÅåÆæßÉÄÖÑÜäöñüà¡¿ΔΦΓΛΩΠΨΣΘΞ_\n\r", Encoding.GSM7),
        ("[x] {y} ~z | ^ \\ €", Encoding.GSM7),
        ("ç", Encoding.UCS2),  # only the capital Ç is in the table
        ("á", Encoding.UCS2),
        ("…", Encoding.UCS2),
        ("`", Encoding.UCS2),
        ("核心交换机 CPU 92%", Encoding.UCS2),
        (f"ok {EMOJI}", Encoding.UCS2),
        ("", Encoding.GSM7),
    ],
)
def test_encoding(text: str, expected: Encoding) -> None:
    assert encoding(text) is expected


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("", 0),
        ("a", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # 160 septets
        ("€" * 81, 2),
        ("a" * 158 + "[", 1),
        ("a" * 159 + "[", 2),
        # the escape and its code never straddle two segments: 152 + (2 + 151) + 1
        ("a" * 152 + "€" + "a" * 152, 3),
        ("中" * 70, 1),
        ("中" * 71, 2),
        ("中" * 134, 2),
        ("中" * 135, 3),
        ("é" * 160, 1),  # é is GSM: one septet
        ("á" * 70, 1),  # á is not: UCS-2
        ("á" * 71, 2),
        (EMOJI * 35, 1),  # 70 UTF-16 units
        (EMOJI * 34 + "a", 1),
        (EMOJI * 36, 2),
        # a surrogate pair never straddles two segments: 66 + (2 + 65) + 1
        ("a" * 66 + EMOJI + "a" * 66, 3),
    ],
)
def test_segment_count(text: str, count: int) -> None:
    assert segment_count(text) == count


def test_fit_returns_text_and_tail_when_they_fit() -> None:
    assert fit("[P1] OPENED #42", 1, "Reply ACK 42") == "[P1] OPENED #42 Reply ACK 42"
    assert fit("just text", 1) == "just text"
    assert fit("", 1, "Reply ACK 42") == "Reply ACK 42"


def test_fit_cuts_gsm_text_with_a_gsm_ellipsis_and_keeps_the_tail() -> None:
    text = "CPU high on sw-core-01 " * 40
    tail = "Reply ACK 42 / RESOLVE 42"
    out = fit(text, 2, tail)
    assert out.endswith("... " + tail)
    assert encoding(out) is Encoding.GSM7
    assert segment_count(out) == 2
    head = out.removesuffix("... " + tail)
    assert text.startswith(head)
    # nearly full: one more character of the text would need a third segment
    assert len(out) > 290


def test_fit_cuts_ucs2_text_with_one_character_ellipsis() -> None:
    text = "核心交换机CPU利用率过高" * 30
    out = fit(text, 1, "Reply ACK 7")
    assert out.endswith("… Reply ACK 7")
    assert segment_count(out) == 1
    assert len(out) == 70  # exactly full: 57 + "…" + " Reply ACK 7"


def test_fit_counts_extension_characters_double() -> None:
    out = fit("€" * 200, 1)
    assert out == "€" * 78 + "..."  # 156 + 3 septets
    assert segment_count(out) == 1


def test_fit_never_splits_a_surrogate_pair() -> None:
    out = fit(EMOJI * 100, 2)
    assert out == EMOJI * 66 + "…"  # 132 + 1 units: 33 + 33 + "…" across two segments
    assert segment_count(out) == 2


def test_fit_cuts_everything_when_the_tail_alone_is_too_long() -> None:
    tail = "x" * 200
    out = fit("head", 1, tail)
    assert segment_count(out) == 1
    assert out.startswith("head x")
    assert out.endswith("...")


def test_fit_rejects_zero_segments() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        fit("x", 0)


@given(
    text=st.text(max_size=800),
    tail=st.sampled_from(["", "Reply ACK 42 / RESOLVE 42", "回复 ACK 42"]),
    max_segments=st.integers(min_value=1, max_value=4),
)
def test_fit_always_fits_and_only_cuts_when_needed(text: str, tail: str, max_segments: int) -> None:
    out = fit(text, max_segments, tail)
    whole = " ".join(p for p in (text, tail) if p)
    assert segment_count(out) <= max_segments
    if segment_count(whole) <= max_segments:
        assert out == whole
    elif tail:
        assert out.endswith(tail)

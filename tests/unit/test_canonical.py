"""The fast canonical form (the standard library's JSON where it is already RFC 8785) agrees
byte for byte with the `rfc8785` reference, on any JSON value it takes the fast path for, and
falls back to the reference for the rest."""

from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.protocol import events

# strings with everything JCS treats specially: quotes, backslashes, control characters,
# DEL, non-ASCII, astral characters, U+2028/2029
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ['"', "\\", "\x00\x1f\x7f", "\u2028\u2029", "\U0001f600", "é", "\n\r\t\b\f"]
)
leaf = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | text
keys = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=8)
value = st.recursive(leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(keys, c, max_size=4), max_leaves=25)


@settings(max_examples=150, deadline=None)
@given(value)
def test_fast_path_equals_rfc8785(v):
    assert events._plain(v)
    assert events.canonical(v) == rfc8785.dumps(v)


@settings(max_examples=80, deadline=None)
@given(
    st.recursive(
        leaf | st.floats(allow_nan=False, allow_infinity=False),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
        max_leaves=10,
    )
)
def test_anything_else_still_equals_rfc8785(v):
    try:
        want = rfc8785.dumps(v)
    except Exception:  # noqa: BLE001 - what the reference refuses, canonical refuses too
        return
    assert events.canonical(v) == want


def test_what_takes_the_slow_path():
    assert not events._plain({"a": 1.5})
    assert not events._plain({"a": 2**53})
    assert not events._plain({"\U0001f600": 1, "\uffff": 2})  # JCS sorts these by UTF-16 units
    assert events.canonical({"\U0001f600": 1, "\uffff": 2}) == rfc8785.dumps({"\U0001f600": 1, "\uffff": 2})

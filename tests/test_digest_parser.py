"""The two readings of a Digest header accept the same headers and split them alike.

``digest._match_params`` splits a header with regular expressions and leaves any header
it cannot split whole, within the limits, to ``digest._scan_params``, the character
scanner whose errors name the position (the other Digest tests check those).  Here both
read generated headers, valid ones and ones with a character put in, taken out or
changed: whenever the expressions split a header the scanner must split it the same
way, and whenever the scanner accepts a header the expressions must too (so the fast
path is taken for every valid header and never for an invalid one).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mbmssec.impl.protocols import digest
from mbmssec.impl.protocols.digest import MAX_PARAMS, MAX_VALUE_CHARS, DigestParseError

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

tokens = st.text(alphabet=TCHARS, min_size=1, max_size=12)
# Pieces of a quoted-string's content: plain characters and quoted-pairs.
qdtext = st.lists(
    st.sampled_from([*"\t !#[]~azAZ09,=", '\\"', "\\\\", "\\a", "\\\t", "ü"]), max_size=8
).map("".join)
ows = st.sampled_from(["", " ", "\t", "  ", " \t"])


@st.composite
def headers(draw: st.DrawFn) -> str:
    params = []
    for _ in range(draw(st.integers(1, 5))):
        name = draw(tokens)
        value = draw(st.one_of(tokens, qdtext.map(lambda q: f'"{q}"')))
        params.append(f"{name}{draw(ows)}={draw(ows)}{value}")
    separators = [
        draw(st.sampled_from([",", ", ", " ,\t", "\t, ", ", ", ",,", " "])) for _ in params[1:]
    ]
    text = params[0] + "".join(s + p for s, p in zip(separators, params[1:], strict=True))
    scheme = draw(st.sampled_from(["Digest", "digest", "DIGEST", "Basic"]))
    after = draw(st.sampled_from([" ", " ", "  ", "\t", " \t"]))
    header = f"{draw(ows)}{scheme}{after}{text}{draw(st.sampled_from(['', '', ' ', ',']))}"
    edit = draw(st.integers(0, 6))  # 4 to 6: no edit
    if 0 < edit < 4:
        at = draw(st.integers(0, len(header) - 1))
        char = draw(st.sampled_from([*' \t,="\\\x7fé\n', "a"]))
        header = {
            1: header[:at] + char + header[at:],
            2: header[:at] + header[at + 1 :],
            3: header[:at] + char + header[at + 1 :],
        }[edit]
    return header


def _scanned(header: str) -> object:
    try:
        return digest._scan_params(header)
    except DigestParseError:
        return None


@settings(max_examples=100, deadline=None)
@given(headers())
def test_the_expressions_and_the_scanner_agree(header: str) -> None:
    fast = digest._match_params(header)
    assert fast == _scanned(header)


def test_limits_leave_a_header_to_the_scanner() -> None:
    long_token = "a" * (MAX_VALUE_CHARS + 1)
    for header in (
        f"Digest realm={long_token}",
        f'Digest realm="{long_token}"',
        "Digest " + ", ".join(f"p{i}=x" for i in range(MAX_PARAMS + 1)),
        "Digest realm=a, REALM=b",
    ):
        assert digest._match_params(header) is None and _scanned(header) is None
    escaped = 'Digest realm="' + "\\a" * MAX_VALUE_CHARS + '"'  # long only when escaped
    assert digest._match_params(escaped) == _scanned(escaped) is not None

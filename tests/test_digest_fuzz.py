"""Fuzzing the Digest header parsers: only DigestError subclasses may escape.

Inputs are random text over a header-heavy alphabet and, mostly, mutations of
valid headers (serialised random challenges/credentials, the RFC 2617 example and
real AKA challenges): insertions, deletions, replacements, duplicated and swapped
spans, truncation.  Whenever a mutated header still parses, serialising the result
must either give a header that parses back to the same value, or fail with a
DigestValueError because the canonical form outgrew the header size cap.

Each Hypothesis example checks one Hypothesis-built input plus a batch of further
mutants of the same valid header made by a PRNG seeded from a Hypothesis-drawn
seed (cheap, and still reproducible from the reported example).  Each test counts
the inputs it ran and asserts the count, so the total of at least 10,000 generated
inputs is checked, not assumed.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mbmssec.impl.protocols.aka import generate_vector
from mbmssec.impl.protocols.digest import (
    DigestAuthorization,
    DigestChallenge,
    DigestError,
    DigestValueError,
    decode_aka_nonce,
    make_aka_challenge,
    parse_authorization,
    parse_challenge,
    respond,
    respond_resync,
    serialise_authorization,
    serialise_challenge,
)
from mbmssec.impl.protocols.milenage import Milenage

CHALLENGE_EXAMPLES = 500
AUTHORIZATION_EXAMPLES = 500
NONCE_EXAMPLES = 300
BATCH = 14  # PRNG mutants per Hypothesis example, besides the Hypothesis-built input
MIN_INPUTS_PER_PARSER = 7_500


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _seed_headers() -> tuple[list[str], list[str]]:
    mil = Milenage(bytes(range(16)), bytes(range(16, 32)))
    av = generate_vector(mil, sqn=42, amf=b"\x80\x00", rand=lambda n: bytes([7]) * n)
    challenge = make_aka_challenge(av, realm="bmsc.example", now=1e9, rand=lambda n: bytes(n))
    authz = respond(
        challenge,
        username="ue@example",
        res=av.xres,
        method="POST",
        uri="/k",
        rand=lambda n: bytes([1]) * n,
    )
    resync = respond_resync(
        challenge,
        username="ue@example",
        auts=bytes(range(14)),
        method="POST",
        uri="/k",
        rand=lambda n: bytes([2]) * n,
    )
    challenges = [
        serialise_challenge(challenge),
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
        'Digest realm="a\\"b", nonce="n", stale=TRUE, algorithm="AKAv1-MD5", x=y',
    ]
    authorizations = [
        serialise_authorization(authz),
        serialise_authorization(resync),
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
        'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"',
    ]
    return challenges, authorizations


SEED_CHALLENGES, SEED_AUTHORIZATIONS = _seed_headers()

# Characters that matter to the grammar, plus ones that must be refused.
_GRAMMAR_CHARS = list("\"\\,= \t;:/+=-_.!#$%&'*^`|~()<>@[]?{}")
_REFUSED_CHARS = ["\x00", "\x01", "\x7f", "\r", "\n", "\x80", "é", "\u2028", "\U0001f600"]
_SPECIAL = _GRAMMAR_CHARS + _REFUSED_CHARS
_CHARS = st.sampled_from(_SPECIAL) | st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_TOKEN = st.text(alphabet="abcXYZ019!#$%&'*+-.^_`|~", min_size=1, max_size=10)
_QTEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


def _valid_challenges() -> st.SearchStrategy[str]:
    built = st.builds(
        DigestChallenge,
        realm=_QTEXT,
        nonce=_QTEXT,
        qop=st.lists(_TOKEN, max_size=3).map(tuple),
        opaque=st.none() | _QTEXT,
        algorithm=st.none() | _TOKEN,
        stale=st.booleans(),
    ).map(serialise_challenge)
    return st.sampled_from(SEED_CHALLENGES) | built


def _valid_authorizations() -> st.SearchStrategy[str]:
    built = st.builds(
        DigestAuthorization,
        username=_QTEXT,
        realm=_QTEXT,
        nonce=_QTEXT,
        uri=_QTEXT,
        response=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
        algorithm=st.none() | _TOKEN,
        cnonce=st.just("c"),
        opaque=st.none() | _QTEXT,
        qop=st.just("auth"),
        nc=st.integers(0, 0xFFFFFFFF),
        auts=st.none() | st.binary(min_size=14, max_size=14),
    ).map(serialise_authorization)
    return st.sampled_from(SEED_AUTHORIZATIONS) | built


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    text = draw(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "dup", "swap", "cut"]))
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 12)))
        if op == "insert":
            text = text[:i] + draw(st.text(alphabet=_CHARS, min_size=1, max_size=4)) + text[i:]
        elif op == "delete":
            text = text[:i] + text[j:]
        elif op == "replace":
            text = text[:i] + draw(st.text(alphabet=_CHARS, max_size=3)) + text[j:]
        elif op == "dup":
            text = text[:j] + text[i:j] + text[j:]
        elif op == "swap" and i < j < len(text):
            text = text[:i] + text[j] + text[i + 1 : j] + text[i] + text[j + 1 :]
        elif op == "cut":
            text = text[:i]
    return text


_SPECIAL_AND_ASCII = _SPECIAL + [chr(c) for c in range(0x20, 0x7F)]


def _prng_mutants(text: str, seed: int, count: int) -> list[str]:
    """The same mutation operators as :func:`_mutated`, driven by a seeded PRNG."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        t = text
        for _ in range(rng.randint(1, 4)):
            op = rng.choice(["insert", "delete", "replace", "dup", "swap", "cut"])
            i = rng.randint(0, len(t))
            j = rng.randint(i, min(len(t), i + 12))
            junk = "".join(rng.choices(_SPECIAL_AND_ASCII, k=rng.randint(1, 4)))
            if op == "insert":
                t = t[:i] + junk + t[i:]
            elif op == "delete":
                t = t[:i] + t[j:]
            elif op == "replace":
                t = t[:i] + junk[: rng.randint(0, 3)] + t[j:]
            elif op == "dup":
                t = t[:j] + t[i:j] + t[j:]
            elif op == "swap" and i < j < len(t):
                t = t[:i] + t[j] + t[i + 1 : j] + t[i] + t[j + 1 :]
            elif op == "cut":
                t = t[:i]
        out.append(t)
    return out


def _inputs(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        _mutated(valid),
        _mutated(valid),
        _mutated(valid),
        st.text(alphabet=_CHARS, max_size=80),
        st.text(alphabet=_CHARS, max_size=80).map(lambda t: "Digest " + t),
    )


def _check(
    text: str,
    parse: Callable[[str], object],
    serialise: Callable[[object], str],
) -> None:
    try:
        value = parse(text)
    except DigestError:
        return
    except Exception as exc:  # the property under test: nothing else may escape
        raise AssertionError(f"{type(exc).__name__} escaped for {text!r}") from exc
    try:
        again = serialise(value)
    except DigestValueError as exc:
        assert exc.field == "header", exc
        return
    assert parse(again) == value


def _serialise_challenge(value: object) -> str:
    assert isinstance(value, DigestChallenge)
    return serialise_challenge(value)


def _serialise_authorization(value: object) -> str:
    assert isinstance(value, DigestAuthorization)
    return serialise_authorization(value)


def test_challenge_parser_fuzz() -> None:
    count = [0]

    @_settings(CHALLENGE_EXAMPLES)
    @given(_inputs(_valid_challenges()), _valid_challenges(), st.integers(0, 2**32 - 1))
    def run(text: str, base: str, seed: int) -> None:
        for item in [text, *_prng_mutants(base, seed, BATCH)]:
            count[0] += 1
            _check(item, parse_challenge, _serialise_challenge)

    run()
    assert count[0] >= MIN_INPUTS_PER_PARSER


def test_authorization_parser_fuzz() -> None:
    count = [0]

    @_settings(AUTHORIZATION_EXAMPLES)
    @given(_inputs(_valid_authorizations()), _valid_authorizations(), st.integers(0, 2**32 - 1))
    def run(text: str, base: str, seed: int) -> None:
        for item in [text, *_prng_mutants(base, seed, BATCH)]:
            count[0] += 1
            _check(item, parse_authorization, _serialise_authorization)

    run()
    assert count[0] >= MIN_INPUTS_PER_PARSER


def test_aka_nonce_decoder_fuzz() -> None:
    count = [0]
    seed = parse_challenge(SEED_CHALLENGES[0]).nonce

    @_settings(NONCE_EXAMPLES)
    @given(_mutated(st.just(seed)) | st.text(alphabet=_CHARS, max_size=150))
    def run(text: str) -> None:
        count[0] += 1
        try:
            nonce = decode_aka_nonce(text)
        except DigestError:
            return
        assert len(nonce.rand) == 16 and len(nonce.autn) == 16

    run()
    assert count[0] >= NONCE_EXAMPLES

"""HTTP Digest AKA (RFC 3310 over RFC 2617): computation, headers, server and client.

The digest computation is checked against the published RFC 2617 clause 3.5
example, and the AKA responses against an independent RFC 2617 computation written
here with hashlib (itself checked against the same published example), fed with
the published TS 35.208 RES.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbmssec.errors import MbmssecError
from mbmssec.impl.protocols.aka import (
    SyncFailure,
    UsimState,
    auc_resync,
    generate_vector,
    usim_authenticate,
)
from mbmssec.impl.protocols.digest import (
    ALGORITHM_AKAV1_MD5,
    MAX_HEADER_CHARS,
    MAX_PARAMS,
    AkaNonce,
    DigestAuthError,
    DigestAuthorization,
    DigestBindingError,
    DigestChallenge,
    DigestError,
    DigestParseError,
    DigestStaleError,
    DigestValueError,
    compute_response,
    decode_aka_nonce,
    encode_aka_nonce,
    make_aka_challenge,
    parse_authorization,
    parse_challenge,
    respond,
    respond_resync,
    serialise_authorization,
    serialise_challenge,
    verify_response,
    verify_resync,
)
from mbmssec.impl.protocols.milenage import Milenage

# RFC 2617 clause 3.5 example (the header lines joined; obs-fold is not accepted).
RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_AUTHORIZATION = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
    'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_PASSWORD = b"Circle Of Life"
RFC2617_METHOD = "GET"  # the example request is "GET /dir/index.html"
RFC2617_RESPONSE = "6629fae49393a05397450978507c4ef1"

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "ts35208.json").read_text(encoding="utf-8")
)
SET1 = VECTORS["test_sets"][0]
REALM = "bmsc.mbms.example.org"
IMPI = "001010000000001@ims.example.org"
URI = "/bmsc/keys"
METHOD = "POST"
NOW = 1_700_000_000.0


def h(value: str) -> bytes:
    return bytes.fromhex(value)


def oracle_response(
    username: str,
    realm: str,
    password: bytes,
    method: str,
    uri: str,
    nonce: str,
    nc: str,
    cnonce: str,
) -> str:
    """RFC 2617 3.2.2.1 with qop=auth, written independently with hashlib."""
    ha1 = hashlib.md5(f"{username}:{realm}:".encode() + password).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    return hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()


def counter_rand(start: int = 1) -> Callable[[int], bytes]:
    state = [start]

    def rand(n: int) -> bytes:
        state[0] += 1
        return state[0].to_bytes(n, "big")

    return rand


def fixed(value: bytes) -> Callable[[int], bytes]:
    def rand(n: int) -> bytes:
        assert n == len(value)
        return value

    return rand


# --------------------------------------------------------------- RFC 2617 example


def test_rfc2617_example_response() -> None:
    a = parse_authorization(RFC2617_AUTHORIZATION)
    got = compute_response(
        username=a.username,
        realm=a.realm,
        password=RFC2617_PASSWORD,
        method=RFC2617_METHOD,
        uri=a.uri,
        nonce=a.nonce,
        qop=a.qop,
        nc=a.nc,
        cnonce=a.cnonce,
    )
    assert got == RFC2617_RESPONSE == a.response


def test_oracle_reproduces_rfc2617_example() -> None:
    assert (
        oracle_response(
            "Mufasa",
            "testrealm@host.com",
            RFC2617_PASSWORD,
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "00000001",
            "0a4f113b",
        )
        == RFC2617_RESPONSE
    )


def test_rfc2617_example_headers_parse() -> None:
    c = parse_challenge(RFC2617_CHALLENGE)
    assert c == DigestChallenge(
        realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop=("auth", "auth-int"),
        opaque="5ccc069c403ebaf9f0171e9517f40e41",
        algorithm=None,
    )
    a = parse_authorization(RFC2617_AUTHORIZATION)
    assert a == DigestAuthorization(
        username="Mufasa",
        realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        uri="/dir/index.html",
        response=RFC2617_RESPONSE,
        cnonce="0a4f113b",
        opaque="5ccc069c403ebaf9f0171e9517f40e41",
        qop="auth",
        nc=1,
    )
    assert parse_challenge(serialise_challenge(c)) == c
    assert parse_authorization(serialise_authorization(a)) == a


def test_response_without_qop_is_rfc2069_form() -> None:
    ha1 = hashlib.md5(b"u:r:p").hexdigest()
    ha2 = hashlib.md5(b"GET:/x").hexdigest()
    expected = hashlib.md5(f"{ha1}:n:{ha2}".encode()).hexdigest()
    got = compute_response(
        username="u",
        realm="r",
        password=b"p",
        method="GET",
        uri="/x",
        nonce="n",
        qop=None,
        nc=None,
        cnonce=None,
    )
    assert got == expected


# ---------------------------------------------------------------- AKA end to end


def server_challenge(now: float = NOW) -> tuple[Any, DigestChallenge, Milenage]:
    mil = Milenage.from_op(h(SET1["K"]), h(SET1["OP"]))
    av = generate_vector(
        mil, sqn=int(SET1["SQN"], 16), amf=h(SET1["AMF"]), rand=fixed(h(SET1["RAND"]))
    )
    challenge = make_aka_challenge(av, realm=REALM, now=now, rand=fixed(bytes(range(16))))
    return av, challenge, mil


def test_challenge_nonce_layout() -> None:
    av, challenge, _ = server_challenge()
    raw = base64.b64decode(challenge.nonce, validate=True)
    assert raw[:16] == h(SET1["RAND"])
    assert raw[16:32] == av.autn
    assert raw[32:] == int(NOW).to_bytes(8, "big")
    assert decode_aka_nonce(challenge.nonce) == AkaNonce(
        rand=h(SET1["RAND"]), autn=av.autn, server_data=int(NOW).to_bytes(8, "big")
    )
    assert challenge.algorithm == ALGORITHM_AKAV1_MD5 == "AKAv1-MD5"
    assert challenge.qop == ("auth",)
    assert challenge.opaque == bytes(range(16)).hex()
    text = serialise_challenge(challenge)
    assert "algorithm=AKAv1-MD5" in text and 'qop="auth"' in text
    assert parse_challenge(text) == challenge


def test_full_exchange_with_res_as_raw_password() -> None:
    av, challenge, mil = server_challenge()
    # UE: parse the header, run the USIM, answer.
    received = parse_challenge(serialise_challenge(challenge))
    nonce = decode_aka_nonce(received.nonce)
    result, _ = usim_authenticate(mil, UsimState(), nonce.rand, nonce.autn)
    assert result.res == h(SET1["f2"])  # published RES
    authz = respond(
        received,
        username=IMPI,
        res=result.res,
        method=METHOD,
        uri=URI,
        rand=fixed(bytes(16 * [0xAB])),
    )
    wire = serialise_authorization(authz)
    assert "auts" not in wire and "algorithm=AKAv1-MD5" in wire
    # The response is RFC 2617 with the published RES octets as the password.
    assert authz.response == oracle_response(
        IMPI, REALM, h(SET1["f2"]), METHOD, URI, challenge.nonce, "00000001", "ab" * 16
    )
    # Server: parse and verify against its own record of the challenge.
    got = parse_authorization(wire)
    assert got == authz
    assert (
        verify_response(
            got,
            challenge=challenge,
            xres=av.xres,
            method=METHOD,
            uri=URI,
            now=NOW + 10,
            username=IMPI,
        )
        == 1
    )


def test_res_as_hex_text_is_rejected() -> None:
    av, challenge, _ = server_challenge()
    wrong = respond(
        challenge,
        username=IMPI,
        res=av.xres.hex().encode(),
        method=METHOD,
        uri=URI,
        rand=counter_rand(),
    )
    with pytest.raises(DigestAuthError):
        verify_response(wrong, challenge=challenge, xres=av.xres, method=METHOD, uri=URI, now=NOW)


def good_authz() -> tuple[Any, DigestChallenge, DigestAuthorization]:
    av, challenge, _ = server_challenge()
    authz = respond(
        challenge, username=IMPI, res=av.xres, method=METHOD, uri=URI, rand=counter_rand()
    )
    return av, challenge, authz


def test_wrong_response_method_or_xres_fail() -> None:
    av, challenge, authz = good_authz()
    kwargs: dict[str, Any] = {"challenge": challenge, "uri": URI, "now": NOW}
    with pytest.raises(DigestAuthError):
        verify_response(authz, xres=bytes(8), method=METHOD, **kwargs)
    with pytest.raises(DigestAuthError):
        verify_response(authz, xres=av.xres, method="GET", **kwargs)
    flipped = authz.response[:-1] + ("0" if authz.response[-1] != "0" else "1")
    with pytest.raises(DigestAuthError) as info:
        verify_response(_replace(authz, response=flipped), xres=av.xres, method=METHOD, **kwargs)
    assert authz.response not in str(info.value)
    with pytest.raises(DigestAuthError):  # cnonce is covered by the digest
        verify_response(_replace(authz, cnonce="00"), xres=av.xres, method=METHOD, **kwargs)
    with pytest.raises(DigestAuthError):  # so is nc
        verify_response(_replace(authz, nc=2), xres=av.xres, method=METHOD, **kwargs)


def _replace(authz: DigestAuthorization, **changes: Any) -> DigestAuthorization:
    from dataclasses import replace

    return replace(authz, **changes)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"realm": "other"}, "realm"),
        ({"nonce": "AAAA"}, "nonce"),
        ({"opaque": None}, "opaque"),
        ({"opaque": "00"}, "opaque"),
        ({"uri": "/elsewhere"}, "uri"),
        ({"username": "someone@else"}, "username"),
        ({"algorithm": "MD5"}, "algorithm"),
        ({"algorithm": None}, "algorithm"),
        ({"qop": None, "nc": None, "cnonce": None}, "qop"),
        ({"nc": 0}, "nc"),
        ({"auts": bytes(14)}, "auts"),
    ],
)
def test_binding_checks(changes: dict[str, Any], field: str) -> None:
    av, challenge, authz = good_authz()
    with pytest.raises(DigestBindingError) as info:
        verify_response(
            _replace(authz, **changes),
            challenge=challenge,
            xres=av.xres,
            method=METHOD,
            uri=URI,
            now=NOW,
            username=IMPI,
        )
    assert info.value.field == field


def test_algorithm_compared_case_insensitively() -> None:
    av, challenge, authz = good_authz()
    assert (
        verify_response(
            _replace(authz, algorithm="akav1-md5"),
            challenge=challenge,
            xres=av.xres,
            method=METHOD,
            uri=URI,
            now=NOW,
        )
        == 1
    )


def test_stale_nonce_only_after_a_correct_digest() -> None:
    av, challenge, authz = good_authz()
    with pytest.raises(DigestStaleError) as info:
        verify_response(
            authz, challenge=challenge, xres=av.xres, method=METHOD, uri=URI, now=NOW + 301
        )
    assert info.value.age == pytest.approx(301)
    assert (
        verify_response(
            authz, challenge=challenge, xres=av.xres, method=METHOD, uri=URI, now=NOW + 300
        )
        == 1
    )
    with pytest.raises(DigestStaleError):  # clock earlier than the issue time
        verify_response(
            authz, challenge=challenge, xres=av.xres, method=METHOD, uri=URI, now=NOW - 5
        )
    with pytest.raises(DigestAuthError):  # a wrong digest is never reported as stale
        verify_response(
            authz, challenge=challenge, xres=bytes(8), method=METHOD, uri=URI, now=NOW + 10_000
        )


def test_stale_flag_round_trips() -> None:
    av, _, _ = server_challenge()
    c = make_aka_challenge(av, realm=REALM, now=NOW, rand=counter_rand(), stale=True)
    text = serialise_challenge(c)
    assert "stale=true" in text and parse_challenge(text).stale is True


def test_resynchronisation_exchange() -> None:
    av, challenge, mil = server_challenge()
    nonce = decode_aka_nonce(challenge.nonce)
    usim = UsimState(sqn_ms=int(SET1["SQN"], 16) + 7)
    with pytest.raises(SyncFailure) as info:
        usim_authenticate(mil, usim, nonce.rand, nonce.autn)
    authz = respond_resync(
        challenge, username=IMPI, auts=info.value.auts, method=METHOD, uri=URI, rand=counter_rand()
    )
    wire = serialise_authorization(authz)
    assert f'auts="{base64.b64encode(info.value.auts).decode()}"' in wire
    # The response uses the empty password (RFC 3310).
    assert authz.response == oracle_response(
        IMPI, REALM, b"", METHOD, URI, challenge.nonce, "00000001", authz.cnonce or ""
    )
    got = parse_authorization(wire)
    auts = verify_resync(got, challenge=challenge, method=METHOD, uri=URI, username=IMPI)
    assert auc_resync(mil, nonce.rand, auts) == usim.sqn_ms
    with pytest.raises(DigestBindingError):  # a resync is not a normal answer
        verify_response(got, challenge=challenge, xres=av.xres, method=METHOD, uri=URI, now=NOW)


def test_resync_with_res_password_or_without_auts_rejected() -> None:
    _av, challenge, authz = good_authz()
    with pytest.raises(DigestBindingError):
        verify_resync(authz, challenge=challenge, method=METHOD, uri=URI)
    with pytest.raises(DigestAuthError):  # RES-based digest plus auts
        verify_resync(_replace(authz, auts=bytes(14)), challenge=challenge, method=METHOD, uri=URI)


def test_client_refuses_non_aka_challenges() -> None:
    _, challenge, _ = server_challenge()
    for changed, field in (
        (DigestChallenge(realm=REALM, nonce=challenge.nonce, algorithm="MD5"), "algorithm"),
        (DigestChallenge(realm=REALM, nonce=challenge.nonce, algorithm=None), "algorithm"),
        (DigestChallenge(realm=REALM, nonce=challenge.nonce, qop=("auth-int",)), "qop"),
        (DigestChallenge(realm=REALM, nonce=challenge.nonce, qop=()), "qop"),
    ):
        with pytest.raises(DigestBindingError) as info:
            respond(
                changed, username=IMPI, res=bytes(8), method=METHOD, uri=URI, rand=counter_rand()
            )
        assert info.value.field == field


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (
            lambda c: respond(
                c, username=IMPI, res=bytes(3), method="GET", uri="/", rand=counter_rand()
            ),
            "res",
        ),
        (
            lambda c: respond(
                c, username=IMPI, res=bytes(17), method="GET", uri="/", rand=counter_rand()
            ),
            "res",
        ),
        (
            lambda c: respond(
                c, username="é", res=bytes(8), method="GET", uri="/", rand=counter_rand()
            ),
            "username",
        ),
        (
            lambda c: respond(
                c, username=IMPI, res=bytes(8), method="GET", uri="/", rand=lambda n: bytes(n - 1)
            ),
            "rand",
        ),
        (
            lambda c: respond_resync(
                c, username=IMPI, auts=bytes(13), method="GET", uri="/", rand=counter_rand()
            ),
            "auts",
        ),
        (
            lambda c: respond(
                c, username=IMPI, res=bytes(8), method="GET", uri="/", rand=counter_rand(), nc=2**32
            ),
            "nc",
        ),
    ],
)
def test_client_argument_errors(call: Any, field: str) -> None:
    _, challenge, _ = server_challenge()
    with pytest.raises(DigestValueError) as info:
        call(challenge)
    assert info.value.field == field


def test_make_challenge_rejects_unsendable_realm_and_bad_time() -> None:
    av, _, _ = server_challenge()
    with pytest.raises(DigestValueError):
        make_aka_challenge(av, realm="réalm", now=NOW, rand=counter_rand())
    with pytest.raises(DigestValueError):
        make_aka_challenge(av, realm=REALM, now=-1, rand=counter_rand())


# ---------------------------------------------------------------- strict parsing


@pytest.mark.parametrize(
    ("header", "position", "param"),
    [
        ('Basic realm="x"', 0, None),
        ("Digest", 6, None),
        ("Digest ", 7, None),
        ('Digest\trealm="a", nonce="n"', 6, None),
        ('Digest realm="a",, nonce="n"', 17, None),
        ('Digest realm="a", nonce="n",', 28, None),
        ('Digest realm="a" nonce="n"', 17, None),
        ('Digest realm="abc', 13, None),
        ('Digest realm="a\x01b", nonce="n"', 15, None),
        ('Digest realm="é", nonce="n"', 14, None),
        ('Digest realm="a\\', 15, None),
        ('Digest realm="a", realm="b", nonce="n"', 18, "realm"),
        ('Digest realm="a", REALM="b", nonce="n"', 18, "realm"),
        ('Digest realm="a"', 16, "nonce"),
        ('Digest realm=a, nonce="n"', 7, "realm"),
        ('Digest realm="a", nonce="n", stale=maybe', 29, "stale"),
        ('Digest realm="a", nonce="n", qop="auth,,x"', 29, "qop"),
        ('Digest realm="a", nonce="n", algorithm="MD 5"', 29, "algorithm"),
        ('Digest realm="a",\r\n nonce="n"', 17, None),
        ('Digest realm=="a", nonce="n"', 13, None),
        ("Digest abc==", 11, None),
    ],
)
def test_challenge_parse_errors(header: str, position: int, param: str | None) -> None:
    with pytest.raises(DigestParseError) as info:
        parse_challenge(header)
    assert (info.value.position, info.value.param) == (position, param)
    assert isinstance(info.value, DigestError) and isinstance(info.value, MbmssecError)


def test_whitespace_escapes_and_case() -> None:
    c = parse_challenge(
        ' dIgEsT   realm \t=\t"a\\"b\\\\c" ,nonce="n"\t, Stale=TRUE , algorithm="AKAv1-MD5",'
        ' qop=" auth , auth-int ", x-ext=tok '
    )
    assert c == DigestChallenge(
        realm='a"b\\c',
        nonce="n",
        qop=("auth", "auth-int"),
        algorithm="AKAv1-MD5",
        stale=True,
        extra=(("x-ext", "tok"),),
    )
    assert parse_challenge(serialise_challenge(c)) == c


@pytest.mark.parametrize(
    ("header", "param"),
    [
        ('Digest username="u", realm="r", nonce="n", uri="/"', "response"),
        (
            'Digest username="u", realm="r", nonce="n", uri="/", response="' + "a" * 31 + '"',
            "response",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="/", response="' + "A" * 32 + '"',
            "response",
        ),
        ('Digest username="u", realm="r", nonce="n", uri="/", response=' + "a" * 32, "response"),
        (
            'Digest username="u", realm="r", nonce="n", uri="/", response="'
            + "a" * 32
            + '", qop=auth, nc=00000001',
            "cnonce",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="/", response="'
            + "a" * 32
            + '", qop=auth, nc=0000001, cnonce="c"',
            "nc",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="/", response="'
            + "a" * 32
            + '", auts="!!!!"',
            "auts",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="/", response="'
            + "a" * 32
            + '", auts="'
            + base64.b64encode(bytes(13)).decode()
            + '"',
            "auts",
        ),
        (
            'Digest username=u, realm="r", nonce="n", uri="/", response="' + "a" * 32 + '"',
            "username",
        ),
        ('Digest username="u", realm="r", nonce="n", uri=/, response="' + "a" * 32 + '"', None),
    ],
)
def test_authorization_parse_errors(header: str, param: str | None) -> None:
    with pytest.raises(DigestParseError) as info:
        parse_authorization(header)
    assert info.value.param == param


def test_size_caps() -> None:
    long_header = 'Digest realm="' + "a" * MAX_HEADER_CHARS + '", nonce="n"'
    with pytest.raises(DigestParseError) as info:
        parse_challenge(long_header)
    assert info.value.position == MAX_HEADER_CHARS
    many = "Digest " + ", ".join(f"p{i}=v" for i in range(MAX_PARAMS + 1))
    with pytest.raises(DigestParseError) as info:
        parse_challenge(many)
    assert "more than" in info.value.reason
    long_value = 'Digest realm="' + "a" * 1025 + '", nonce="n"'
    with pytest.raises(DigestParseError) as info:
        parse_challenge(long_value)
    assert info.value.position == 13
    with pytest.raises(DigestParseError):
        parse_challenge(b'Digest realm="a", nonce="n"')  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (DigestChallenge(realm="ré", nonce="n"), "realm"),
        (DigestChallenge(realm="r", nonce="n\n"), "nonce"),
        (DigestChallenge(realm="r", nonce="n", qop=("a b",)), "qop"),
        (DigestChallenge(realm="r", nonce="n", algorithm=""), "algorithm"),
        (DigestChallenge(realm="r", nonce="n", extra=(("realm", "x"),)), "extra"),
        (DigestChallenge(realm="r", nonce="n", extra=(("X", "x"),)), "extra"),
        (DigestChallenge(realm="r" * 5000, nonce="n"), "realm"),
        (
            DigestAuthorization(username="u", realm="r", nonce="n", uri="/", response="x"),
            "response",
        ),
        (
            DigestAuthorization(
                username="u", realm="r", nonce="n", uri="/", response="a" * 32, qop="auth"
            ),
            "qop",
        ),
        (
            DigestAuthorization(
                username="u", realm="r", nonce="n", uri="/", response="a" * 32, auts=bytes(3)
            ),
            "auts",
        ),
    ],
)
def test_serialise_rejects_unsendable_values(obj: Any, field: str) -> None:
    with pytest.raises(DigestValueError) as info:
        if isinstance(obj, DigestChallenge):
            serialise_challenge(obj)
        else:
            serialise_authorization(obj)
    assert info.value.field == field


def test_aka_nonce_codec() -> None:
    rand, autn = bytes(range(16)), bytes(range(16, 32))
    assert decode_aka_nonce(encode_aka_nonce(rand, autn)) == AkaNonce(rand, autn, b"")
    assert decode_aka_nonce(encode_aka_nonce(rand, autn, b"xyz")).server_data == b"xyz"
    with pytest.raises(DigestParseError):
        decode_aka_nonce(base64.b64encode(bytes(31)).decode())
    with pytest.raises(DigestParseError) as info:
        decode_aka_nonce("AAAA*AAA")
    assert info.value.position == 4
    with pytest.raises(DigestParseError):
        decode_aka_nonce("AAAAA")  # bad padding
    with pytest.raises(DigestParseError):
        decode_aka_nonce(base64.b64encode(bytes(32 + 65)).decode())
    with pytest.raises(DigestValueError):
        encode_aka_nonce(rand, autn[:15])
    with pytest.raises(DigestValueError):
        encode_aka_nonce(rand, autn, bytes(65))


# ------------------------------------------------------------ round-trip property

_TOKEN = st.text(alphabet="abcXYZ019!#$%&'*+-.^_`|~", min_size=1, max_size=12)
_QTEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\t"), max_size=40
)

challenges = st.builds(
    DigestChallenge,
    realm=_QTEXT,
    nonce=_QTEXT,
    qop=st.lists(_TOKEN, max_size=3).map(tuple),
    opaque=st.none() | _QTEXT,
    algorithm=st.none() | _TOKEN,
    stale=st.booleans(),
    domain=st.none() | _QTEXT,
    extra=st.dictionaries(_TOKEN.map(str.lower).map(lambda t: "x-" + t), _QTEXT, max_size=3).map(
        lambda d: tuple(d.items())
    ),
)


@st.composite
def authorizations(draw: st.DrawFn) -> DigestAuthorization:
    with_qop = draw(st.booleans())
    return DigestAuthorization(
        username=draw(_QTEXT),
        realm=draw(_QTEXT),
        nonce=draw(_QTEXT),
        uri=draw(_QTEXT),
        response=draw(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)),
        algorithm=draw(st.none() | _TOKEN),
        cnonce=draw(_QTEXT) if with_qop else None,
        opaque=draw(st.none() | _QTEXT),
        qop=draw(_TOKEN) if with_qop else None,
        nc=draw(st.integers(0, 0xFFFFFFFF)) if with_qop else None,
        auts=draw(st.none() | st.binary(min_size=14, max_size=14)),
        extra=tuple(
            draw(
                st.dictionaries(_TOKEN.map(lambda t: "x-" + t.lower()), _QTEXT, max_size=2)
            ).items()
        ),
    )


@settings(max_examples=300, deadline=None)
@given(challenges)
def test_challenge_round_trip(challenge: DigestChallenge) -> None:
    assert parse_challenge(serialise_challenge(challenge)) == challenge


@settings(max_examples=300, deadline=None)
@given(authorizations())
def test_authorization_round_trip(authorization: DigestAuthorization) -> None:
    assert parse_authorization(serialise_authorization(authorization)) == authorization

"""UMTS AKA (TS 33.102 6.3) over MILENAGE, and the KEK derivation.

Expected values are the published TS 35.208 outputs (AUTN and AUTS are assembled
here from the published f1/f5/f5* by the TS 33.102 formulas), AUTS values from an
independent implementation (hostap), and, for the KDF, Python's own hmac/hashlib.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbmssec.errors import MbmssecError
from mbmssec.impl.protocols.aka import (
    KEK_MODE_BY_OPTION,
    SQN_MAX,
    AkaError,
    AkaInputError,
    AkaResponse,
    AutsMacFailure,
    MacFailure,
    SyncFailure,
    UsimState,
    auc_resync,
    derive_kek,
    generate_vector,
    make_auts,
    usim_authenticate,
)
from mbmssec.impl.protocols.milenage import Milenage

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "ts35208.json").read_text(encoding="utf-8")
)
SETS: list[dict[str, Any]] = VECTORS["test_sets"] + VECTORS["supplementary_test_sets"]
IDS = [f"set-{s['set']}" for s in SETS]
SET_20 = next(s for s in VECTORS["supplementary_test_sets"] if s["set"] == 20)


def h(value: str) -> bytes:
    return bytes.fromhex(value)


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def fixed_rand(value: bytes) -> Callable[[int], bytes]:
    """A random source that must be asked for exactly len(value) octets."""

    def rand(n: int) -> bytes:
        assert n == len(value)
        return value

    return rand


def published_autn(s: dict[str, Any]) -> bytes:
    # TS 33.102 6.3.2: AUTN = SQN xor AK || AMF || MAC-A, AK = f5, MAC-A = f1.
    return xor(h(s["SQN"]), h(s["f5"])) + h(s["AMF"]) + h(s["f1"])


def mil_of(s: dict[str, Any]) -> Milenage:
    return Milenage.from_op(h(s["K"]), h(s["OP"]))


# ------------------------------------------------------------------ HSS / AuC role


@pytest.mark.parametrize("s", SETS, ids=IDS)
def test_generate_vector_matches_published_outputs(s: dict[str, Any]) -> None:
    av = generate_vector(
        mil_of(s), sqn=int(s["SQN"], 16), amf=h(s["AMF"]), rand=fixed_rand(h(s["RAND"]))
    )
    assert av.rand == h(s["RAND"])
    assert av.xres == h(s["f2"])
    assert av.ck == h(s["f3"])
    assert av.ik == h(s["f4"])
    assert av.autn == published_autn(s)


def test_vector_repr_hides_keys() -> None:
    s = SETS[0]
    av = generate_vector(mil_of(s), sqn=1, amf=b"\x80\x00", rand=fixed_rand(h(s["RAND"])))
    assert av.ck.hex() not in repr(av) and av.ik.hex() not in repr(av)


# ------------------------------------------------------------------------ USIM role


@pytest.mark.parametrize("s", SETS, ids=IDS)
def test_usim_accepts_published_challenge(s: dict[str, Any]) -> None:
    sqn = int(s["SQN"], 16)
    result, state = usim_authenticate(
        mil_of(s), UsimState(sqn_ms=sqn - 1), h(s["RAND"]), published_autn(s)
    )
    assert result == AkaResponse(
        res=h(s["f2"]), ck=h(s["f3"]), ik=h(s["f4"]), sqn=sqn, amf=h(s["AMF"])
    )
    assert state == UsimState(sqn_ms=sqn)


@pytest.mark.parametrize("s", SETS, ids=IDS)
def test_replay_gives_sync_failure_with_published_conc(s: dict[str, Any]) -> None:
    mil = mil_of(s)
    sqn = int(s["SQN"], 16)
    _, state = usim_authenticate(mil, UsimState(sqn_ms=0), h(s["RAND"]), published_autn(s))
    with pytest.raises(SyncFailure) as info:
        usim_authenticate(mil, state, h(s["RAND"]), published_autn(s))
    auts = info.value.auts
    assert len(auts) == 14
    # TS 33.102 6.3.3: Conc(SQN_MS) = SQN_MS xor f5*(RAND); here SQN_MS = SQN.
    assert auts[:6] == xor(h(s["SQN"]), h(s["f5*"]))
    assert auc_resync(mil, h(s["RAND"]), auts) == sqn


def test_auts_matches_independent_implementation() -> None:
    # hostap's AUTS for TS 35.208 set 20 with SQN_MS = 1 (its f5* ends in ...dc, so
    # the concealed SQN ends in ...dd); MAC-S = f1* with the all-zero AMF.
    oracle = VECTORS["resynchronisation_oracle"]["cases"][0]
    mil = mil_of(SET_20)
    assert make_auts(mil, h(oracle["RAND"]), 1).hex() == oracle["AUTS"]


@pytest.mark.parametrize(
    "case", VECTORS["resynchronisation_oracle"]["cases"], ids=["set20-rand", "test-usim"]
)
def test_auc_accepts_independent_auts(case: dict[str, str]) -> None:
    mil = mil_of(SET_20)
    sqn_ms = auc_resync(mil, h(case["RAND"]), h(case["AUTS"]))
    expected_sqn = int(xor(h(case["AUTS"])[:6], mil.f5star(h(case["RAND"]))).hex(), 16)
    assert sqn_ms == expected_sqn
    auts = bytearray(h(case["AUTS"]))
    for bit in range(8 * 8):  # every bit of MAC-S
        bad = bytearray(auts)
        bad[6 + bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(AutsMacFailure):
            auc_resync(mil, h(case["RAND"]), bytes(bad))


def test_first_oracle_auts_recovers_sqn_one() -> None:
    case = VECTORS["resynchronisation_oracle"]["cases"][0]
    assert auc_resync(mil_of(SET_20), h(case["RAND"]), h(case["AUTS"])) == 1


def test_stale_state_returns_sqn_ms_in_auts() -> None:
    s = SETS[3]
    mil = mil_of(s)
    sqn_ms = int(s["SQN"], 16) + 1000
    with pytest.raises(SyncFailure) as info:
        usim_authenticate(mil, UsimState(sqn_ms=sqn_ms), h(s["RAND"]), published_autn(s))
    assert info.value.auts[:6] == xor(sqn_ms.to_bytes(6, "big"), h(s["f5*"]))
    assert auc_resync(mil, h(s["RAND"]), info.value.auts) == sqn_ms


@pytest.mark.parametrize("s", SETS[:1] + SETS[2:], ids=IDS[:1] + IDS[2:])
def test_any_autn_bit_flip_is_mac_failure(s: dict[str, Any]) -> None:
    mil = mil_of(s)
    autn = published_autn(s)
    for bit in range(128):
        bad = bytearray(autn)
        bad[bit // 8] ^= 1 << (bit % 8)
        # A stale state too: the MAC is checked first, so no AUTS leaks.
        for state in (UsimState(0), UsimState(SQN_MAX)):
            with pytest.raises(MacFailure) as info:
                usim_authenticate(mil, state, h(s["RAND"]), bytes(bad))
            assert not isinstance(info.value, SyncFailure)


def test_mac_failure_is_opaque_and_typed() -> None:
    s = SETS[0]
    wrong = Milenage(bytes(16), h(s["OPc"]))
    with pytest.raises(MacFailure) as info:
        usim_authenticate(wrong, UsimState(), h(s["RAND"]), published_autn(s))
    assert isinstance(info.value, AkaError) and isinstance(info.value, MbmssecError)
    text = str(info.value).lower()
    assert s["f1"] not in text and "sqn" not in text


def test_window_accepts_increasing_and_rejects_older() -> None:
    s = SETS[2]
    mil = mil_of(s)
    amf = b"\x80\x00"
    counter = iter(range(1, 1000))

    def rand(n: int) -> bytes:
        return next(counter).to_bytes(n, "big")

    avs = {sqn: generate_vector(mil, sqn=sqn, amf=amf, rand=rand) for sqn in (5, 6, 40, 2**47)}
    state = UsimState()
    for sqn in (5, 6, 40):
        result, state = usim_authenticate(mil, state, avs[sqn].rand, avs[sqn].autn)
        assert (result.res, result.sqn) == (avs[sqn].xres, sqn)
    for older in (5, 6, 40):  # replays and out-of-order vectors
        with pytest.raises(SyncFailure):
            usim_authenticate(mil, state, avs[older].rand, avs[older].autn)
    # No upper bound on the jump in this scheme.
    result, state = usim_authenticate(mil, state, avs[2**47].rand, avs[2**47].autn)
    assert state.sqn_ms == 2**47


def test_full_resync_round_trip() -> None:
    s = SETS[4]
    mil = mil_of(s)
    amf = b"\x80\x00"
    usim = UsimState(sqn_ms=70_000)
    stale_av = generate_vector(mil, sqn=12, amf=amf, rand=fixed_rand(bytes(range(16))))
    with pytest.raises(SyncFailure) as info:
        usim_authenticate(mil, usim, stale_av.rand, stale_av.autn)
    sqn_ms = auc_resync(mil, stale_av.rand, info.value.auts)
    assert sqn_ms == 70_000
    fresh = generate_vector(mil, sqn=sqn_ms + 1, amf=amf, rand=fixed_rand(bytes(16)))
    result, usim = usim_authenticate(mil, usim, fresh.rand, fresh.autn)
    assert result.res == fresh.xres and usim.sqn_ms == 70_001


@settings(max_examples=150, deadline=None)
@given(
    k=st.binary(min_size=16, max_size=16),
    opc=st.binary(min_size=16, max_size=16),
    rand=st.binary(min_size=16, max_size=16),
    sqn=st.integers(min_value=1, max_value=SQN_MAX),
    amf=st.binary(min_size=2, max_size=2),
)
def test_vector_and_usim_agree(k: bytes, opc: bytes, rand: bytes, sqn: int, amf: bytes) -> None:
    mil = Milenage(k, opc)
    av = generate_vector(mil, sqn=sqn, amf=amf, rand=fixed_rand(rand))
    result, state = usim_authenticate(mil, UsimState(sqn_ms=sqn - 1), av.rand, av.autn)
    assert (result.res, result.ck, result.ik, result.amf) == (av.xres, av.ck, av.ik, amf)
    assert state.sqn_ms == sqn
    assert auc_resync(mil, rand, make_auts(mil, rand, sqn - 1)) == sqn - 1


# ------------------------------------------------------------------ input checking


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda m: generate_vector(m, sqn=-1, amf=b"\0\0", rand=fixed_rand(bytes(16))), "sqn"),
        (lambda m: generate_vector(m, sqn=2**48, amf=b"\0\0", rand=fixed_rand(bytes(16))), "sqn"),
        (lambda m: generate_vector(m, sqn=True, amf=b"\0\0", rand=fixed_rand(bytes(16))), "sqn"),
        (lambda m: generate_vector(m, sqn=1, amf=b"\0", rand=fixed_rand(bytes(16))), "amf"),
        (
            lambda m: generate_vector(m, sqn=1, amf=b"\0\0", rand=lambda n: bytes(n - 1)),
            "rand() output",
        ),
        (lambda m: usim_authenticate(m, UsimState(), bytes(15), bytes(16)), "rand"),
        (lambda m: usim_authenticate(m, UsimState(), bytes(16), bytes(17)), "autn"),
        (lambda m: usim_authenticate(m, 5, bytes(16), bytes(16)), "state"),  # type: ignore[arg-type]
        (lambda m: auc_resync(m, bytes(16), bytes(13)), "auts"),
        (lambda m: make_auts(m, bytes(16), SQN_MAX + 1), "sqn_ms"),
        (lambda m: UsimState(sqn_ms=-5), "sqn_ms"),
    ],
)
def test_bad_arguments_raise_aka_input_error(call: Any, field: str) -> None:
    with pytest.raises(AkaInputError) as info:
        call(Milenage(bytes(16), bytes(16)))
    assert info.value.field == field


# ---------------------------------------------------------------------------- KEK


CK = bytes(range(16))
IK = bytes(range(16, 32))


def oracle_kek(ck: bytes, ik: bytes, ue_id: str, service_id: str) -> bytes:
    # The documented construction, computed with the standard library.
    def lp(data: bytes) -> bytes:
        return len(data).to_bytes(2, "big") + data

    message = lp(b"mbmssec-kek") + lp(service_id.encode()) + lp(ue_id.encode())
    return hmac.new(ck + ik, message, hashlib.sha256).digest()[:16]


def test_kek_is_ck_mode() -> None:
    assert derive_kek("ck", CK, IK, "imsi-001010000000001", "svc-1") == CK


@pytest.mark.parametrize(
    ("ue_id", "service_id"),
    [("imsi-001010000000001", "urn:mbms:svc:1"), ("ü-user", "dienst-ä"), ("a", "b")],
)
def test_derived_kek_matches_independent_hmac(ue_id: str, service_id: str) -> None:
    kek = derive_kek("derived", CK, IK, ue_id, service_id)
    assert len(kek) == 16
    assert kek == oracle_kek(CK, IK, ue_id, service_id)


def test_derived_kek_binds_every_input() -> None:
    base = derive_kek("derived", CK, IK, "ue", "svc")
    assert derive_kek("derived", IK, CK, "ue", "svc") != base
    assert derive_kek("derived", CK, CK, "ue", "svc") != base
    assert derive_kek("derived", CK, IK, "ue2", "svc") != base
    assert derive_kek("derived", CK, IK, "ue", "svc2") != base
    assert derive_kek("derived", CK, IK, "svc", "ue") != base
    # The length prefixes keep ("ab", "c") and ("a", "bc") apart.
    assert derive_kek("derived", CK, IK, "c", "ab") != derive_kek("derived", CK, IK, "bc", "a")


def test_option_names_map_to_modes() -> None:
    assert derive_kek(KEK_MODE_BY_OPTION["kek_is_ck"], CK, IK, "u", "s") == CK
    assert derive_kek(KEK_MODE_BY_OPTION["kek_derived_from_ck"], CK, IK, "u", "s") == oracle_kek(
        CK, IK, "u", "s"
    )


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("kek_is_ck", CK, IK, "u", "s"), "mode"),
        (("other", CK, IK, "u", "s"), "mode"),
        (("derived", CK[:15], IK, "u", "s"), "ck"),
        (("ck", CK, IK + b"\0", "u", "s"), "ik"),
        (("derived", CK, IK, "", "s"), "ue_id"),
        (("derived", CK, IK, "u", ""), "service_id"),
        (("derived", CK, IK, "\udc80", "s"), "ue_id"),
        (("derived", CK, IK, "u", 7), "service_id"),
        (("derived", CK, IK, "u" * 70_000, "s"), "ue_id"),
    ],
)
def test_kek_bad_arguments(args: tuple[Any, ...], field: str) -> None:
    with pytest.raises(AkaInputError) as info:
        derive_kek(*args)
    assert info.value.field == field

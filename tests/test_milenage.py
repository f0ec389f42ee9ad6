"""MILENAGE (TS 35.206) against the published 3GPP TS 35.208 conformance data.

Expected values come only from tests/vectors/ts35208.json (published data, source
named in the file), never from the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mbmssec.errors import MbmssecError
from mbmssec.impl.protocols.milenage import Milenage, MilenageError, compute_opc

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "ts35208.json").read_text(encoding="utf-8")
)
TS35208_SETS: list[dict[str, Any]] = VECTORS["test_sets"]
SUPPLEMENTARY_SETS: list[dict[str, Any]] = VECTORS["supplementary_test_sets"]
ALL_SETS = TS35208_SETS + SUPPLEMENTARY_SETS
IDS = [f"set-{s['set']}" for s in ALL_SETS]


def h(value: str) -> bytes:
    return bytes.fromhex(value)


def outputs(mil: Milenage, s: dict[str, Any]) -> dict[str, bytes]:
    rand, sqn, amf = h(s["RAND"]), h(s["SQN"]), h(s["AMF"])
    res, ck, ik, ak = mil.f2345(rand)
    return {
        "f1": mil.f1(rand, sqn, amf),
        "f1*": mil.f1star(rand, sqn, amf),
        "f2": res,
        "f5": ak,
        "f3": ck,
        "f4": ik,
        "f5*": mil.f5star(rand),
    }


def test_vector_file_holds_test_sets_1_to_6() -> None:
    assert [s["set"] for s in TS35208_SETS] == [1, 2, 3, 4, 5, 6]
    assert "35.208" in VECTORS["source"]


@pytest.mark.parametrize("s", ALL_SETS, ids=IDS)
def test_opc_from_op(s: dict[str, Any]) -> None:
    assert compute_opc(h(s["K"]), h(s["OP"])) == h(s["OPc"])
    assert Milenage.from_op(h(s["K"]), h(s["OP"])).opc == h(s["OPc"])


@pytest.mark.parametrize("s", ALL_SETS, ids=IDS)
def test_all_outputs_with_op_given(s: dict[str, Any]) -> None:
    got = outputs(Milenage.from_op(h(s["K"]), h(s["OP"])), s)
    assert {name: value.hex() for name, value in got.items()} == {name: s[name] for name in got}


@pytest.mark.parametrize("s", ALL_SETS, ids=IDS)
def test_all_outputs_with_opc_given(s: dict[str, Any]) -> None:
    got = outputs(Milenage(h(s["K"]), h(s["OPc"])), s)
    assert {name: value.hex() for name, value in got.items()} == {name: s[name] for name in got}


@pytest.mark.parametrize("s", ALL_SETS, ids=IDS)
def test_single_function_entry_points(s: dict[str, Any]) -> None:
    mil = Milenage(h(s["K"]), h(s["OPc"]))
    rand = h(s["RAND"])
    assert mil.f2(rand) == h(s["f2"])
    assert mil.f3(rand) == h(s["f3"])
    assert mil.f4(rand) == h(s["f4"])
    assert mil.f5(rand) == h(s["f5"])


@pytest.mark.parametrize("s", ALL_SETS, ids=IDS)
def test_vector_entry_point(s: dict[str, Any]) -> None:
    """``vector`` (f1 and f2..f5 sharing TEMP) gives the published values, also when the
    object has computed other outputs before (its E_K keeps no state between blocks)."""
    mil = Milenage(h(s["K"]), h(s["OPc"]))
    args = h(s["RAND"]), h(s["SQN"]), h(s["AMF"])
    want = tuple(h(s[name]) for name in ("f1", "f2", "f3", "f4", "f5"))
    assert mil.vector(*args) == want
    mil.f5star(bytes(16))
    assert mil.vector(*args) == want


def test_published_set_2_repeats_set_1() -> None:
    # TS 35.208 as published gives identical data for 4.3.1 and 4.3.2; the file
    # keeps that, and the distinct TS 35.207 set 2 is tested as a supplement.
    one, two = TS35208_SETS[0], TS35208_SETS[1]
    assert {k: v for k, v in one.items() if k not in ("set", "clause")} == {
        k: v for k, v in two.items() if k not in ("set", "clause")
    }
    assert any(s["K"].startswith("0396eb31") for s in SUPPLEMENTARY_SETS)


def test_wrong_op_gives_wrong_outputs() -> None:
    s = TS35208_SETS[0]
    op = bytearray(h(s["OP"]))
    op[0] ^= 1
    got = outputs(Milenage.from_op(h(s["K"]), bytes(op)), s)
    assert all(got[name] != h(s[name]) for name in got)


@pytest.mark.parametrize(
    ("call", "field", "expected", "actual"),
    [
        (lambda: Milenage(bytes(15), bytes(16)), "K", 16, 15),
        (lambda: Milenage(bytes(16), bytes(17)), "OPc", 16, 17),
        (lambda: Milenage.from_op(bytes(16), bytes(8)), "OP", 16, 8),
        (lambda: compute_opc(bytes(16), "00" * 16), "OP", 16, -1),  # type: ignore[arg-type]
        (lambda: Milenage(bytes(16), bytes(16)).f2345(bytes(15)), "RAND", 16, 15),
        (lambda: Milenage(bytes(16), bytes(16)).f1(bytes(16), bytes(5), bytes(2)), "SQN", 6, 5),
        (lambda: Milenage(bytes(16), bytes(16)).f1star(bytes(16), bytes(6), b""), "AMF", 2, 0),
    ],
)
def test_bad_inputs_raise_typed_error(call: Any, field: str, expected: int, actual: int) -> None:
    with pytest.raises(MilenageError) as info:
        call()
    assert (info.value.field, info.value.expected, info.value.actual) == (field, expected, actual)
    assert isinstance(info.value, MbmssecError)


def test_repr_does_not_show_key_material() -> None:
    s = TS35208_SETS[0]
    mil = Milenage(h(s["K"]), h(s["OPc"]))
    text = repr(mil)
    assert s["K"] not in text and s["OPc"] not in text
    assert "465b" not in text.lower()

"""Traces with their states in the Informal Trace Format (model/itf.py, Trace.to_itf and
Trace.from_itf): every state of the file is the executable model's replay, read here by
a decoder of the format's own, the document reads back to the same trace, and a
malformed document is refused naming the field.

The counterexample is the baseline's, from the session-wide checker result
(tests/conftest.py); the lasso is written out here (the fair lasso ``mbmssec check``
finds against property 9 under ``membership_rekey=join``).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from mbmssec.commands.check import write_out
from mbmssec.model import itf
from mbmssec.model.concrete import State, Universe
from mbmssec.model.dsl import Sort
from mbmssec.model.itf import ItfError, load_itf, read_itf
from mbmssec.model.machine import Model
from mbmssec.model.trace import Trace, TraceStep
from mbmssec.proofs.check import Report
from mbmssec.spec.loader import load_spec

PREFIX = {Sort.UE: "UE", Sort.SVC: "S", Sort.TEK: "T", Sort.PKT: "P"}

LASSO = Trace(
    tuple(
        TraceStep(a, x)
        for a, x in [
            ("Generate", (0, 0)),
            ("Activate", (0,)),
            ("Send", (0, 0, True)),
            ("Receive", (0, 0)),
            ("Authenticate", (0,)),
            ("Subscribe", (0, 0)),
            ("Register", (0, 0, 1)),
            ("Tick", ()),
            ("Authenticate", (0,)),
            ("Register", (0, 0, 1)),
        ]
    ),
    Universe(ue=1, svc=1, tek=2, pkt=1),
    (9,),
    loop=7,
)
REKEY_ON_JOIN = {"membership_rekey": "join"}


def _element(text: Any, sort: Sort) -> int:
    assert isinstance(text, str), text
    match = re.fullmatch(rf"{PREFIX[sort]}([0-9]+)", text)
    assert match is not None, f"{text!r} is not the name of an element of {sort.value}"
    return int(match.group(1))


def _plain(value: Any, sort: Sort) -> Any:
    """An ITF value of ``sort`` as the executable model holds it."""
    if sort is Sort.BOOL:
        assert isinstance(value, bool), value
        return value
    if sort is Sort.INT:
        assert set(value) == {"#bigint"}, value
        return int(value["#bigint"])
    return _element(value, sort)


def _assert_states_are_the_replay(doc: dict[str, Any], trace: Trace, model: Model) -> None:
    states: list[State] = trace.replay(model)
    vocab = model.vocab
    assert doc["vars"] == [*vocab.names(), "mbt::actionTaken"]
    assert len(doc["states"]) == len(trace.steps) + 1 == len(states)
    for i, (entry, state) in enumerate(zip(doc["states"], states, strict=True)):
        assert entry["#meta"]["index"] == i
        assert entry["mbt::actionTaken"] == ("init" if i == 0 else trace.steps[i - 1].action)
        assert set(entry) == {"#meta", *doc["vars"]}
        for sym in vocab.symbols:
            value = entry[sym.name]
            if not sym.args:
                assert _plain(value, sym.result) == state.get(sym.name), (i, sym.name)
                continue
            table: dict[tuple[int, ...], Any] = {}
            for key, item in value["#map"]:
                names = [key] if len(sym.args) == 1 else key["#tup"]
                args = tuple(_element(n, s) for n, s in zip(names, sym.args, strict=True))
                table[args] = _plain(item, sym.result)
            expected = {
                args: state.get(sym.name, *args) for args in trace.universe.tuples(sym.args)
            }
            assert table == expected, (i, sym.name)


@pytest.mark.xdist_group("checker")
def test_every_state_of_the_written_file_is_the_replay(
    baseline_report: Report, tmp_path: Path
) -> None:
    """``check --out`` writes the baseline's counterexample as ``baseline-P7.itf.json``;
    each of its states is the state the executable model reaches by replaying the trace
    written beside it, entry by entry."""
    files = write_out(tmp_path, baseline_report, [], "ab" * 32)
    assert "baseline-P7.itf.json" in files
    doc = json.loads((tmp_path / "baseline-P7.itf.json").read_text())
    trace = Trace.from_json(json.loads((tmp_path / "baseline-P7.json").read_text()))
    model = Model(load_spec().baseline())
    _assert_states_are_the_replay(doc, trace, model)
    assert "loop" not in doc
    assert doc["#meta"]["violates"] == [7]
    # the step as the chart shows it, and its arguments by name
    last = doc["states"][-1]["#meta"]
    u, p = trace.steps[-1].args
    assert trace.steps[-1].action == "Receive"
    assert last["step"] == f"Receive(UE{u}, P{p})"
    assert last["args"] == [f"UE{u}", f"P{p}"]
    assert last["effect"].startswith("decrypts")


def test_a_lasso_has_every_state_and_its_loop() -> None:
    model = Model(load_spec().profile(REKEY_ON_JOIN))
    doc = json.loads(itf.dumps(LASSO.to_itf(model)))
    _assert_states_are_the_replay(doc, LASSO, model)
    assert doc["loop"] == 7
    assert doc["states"][8]["#meta"]["step"] == "Tick()"


def test_the_document_reads_back_to_the_same_trace(tmp_path: Path) -> None:
    model = Model(load_spec().profile(REKEY_ON_JOIN))
    doc = LASSO.to_itf(model)
    assert Trace.from_itf(doc) == LASSO
    path = tmp_path / "lasso.itf.json"
    path.write_text(itf.dumps(doc))
    run = load_itf(path)
    assert run.loop == 7 and run.universe == LASSO.universe and run.violates == (9,)
    assert [(s.action, s.args) for s in run.steps] == [(s.action, s.args) for s in LASSO.steps]
    states = LASSO.replay(model)
    for i, state in enumerate(states):
        for sym in model.vocab.symbols:
            for args in LASSO.universe.tuples(sym.args):
                assert run.value(i, sym.name, *args) == state.get(sym.name, *args)


@pytest.fixture
def doc() -> dict[str, Any]:
    model = Model(load_spec().profile(REKEY_ON_JOIN))
    data: dict[str, Any] = json.loads(json.dumps(LASSO.to_itf(model)))
    return data


def _set(data: dict[str, Any], path: list[Any], value: Any) -> None:
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "where", "problem"),
    [
        (["vars"], _DELETE, "vars", "missing"),
        (["vars", 0], "time", "vars[0]", "unknown variable 'time'"),
        (["states"], [], "states", "non-empty list"),
        (["states", 2, "clock"], 3.5, "states[2].clock", "expected an integer"),
        (["states", 2, "clock"], {"#bigint": "3x"}, "states[2].clock", "not a decimal"),
        (["states", 1, "holds"], [], "states[1].holds", '"#map"'),
        (["states", 1, "holds", "#map", 0, 0], "UE0", "states[1].holds.#map[0][0]", "#tup"),
        (
            ["states", 1, "holds", "#map", 0, 0],
            {"#tup": ["UE7", "T0"]},
            "states[1].holds.#map[0][0][0]",
            "outside the universe",
        ),
        (["states", 1, "holds", "#map", 0, 1], 1, "states[1].holds.#map[0][1]", "boolean"),
        (["states", 1, "active", "#map", 0, 1], "S0", "states[1].active.#map[0][1]", "TEK"),
        (["states", 1, "holds", "#map"], [], "states[1].holds", "no entry for (UE0, T0)"),
        (["states", 3, "#meta", "index"], 4, "states[3].#meta.index", "expected 3"),
        (["states", 3, "decrypted"], _DELETE, "states[3].decrypted", "missing"),
        (["states", 3, "mbt::actionTaken"], 7, "states[3].mbt::actionTaken", "action name"),
        (["states", 0, "mbt::actionTaken"], "Tick", "states[0].mbt::actionTaken", "'init'"),
        (["states", 3, "#meta", "args", 0], "Q0", "states[3].#meta.args[0]", "element name"),
        (["states", 3, "surplus"], 1, "states[3].surplus", "not a variable"),
        (["#meta", "universe", "TEK"], 0, "#meta.universe.TEK", "positive integer"),
        (["loop"], 10, "loop", "before the last"),
    ],
)
def test_a_malformed_document_is_refused_naming_the_field(
    doc: dict[str, Any], path: list[Any], value: Any, where: str, problem: str
) -> None:
    _set(doc, path, copy.deepcopy(value) if value is not _DELETE else value)
    with pytest.raises(ItfError) as err:
        read_itf(doc, source="t.itf.json")
    assert err.value.where == where
    assert problem in err.value.problem
    assert str(err.value).startswith(f"t.itf.json: {where}: ")


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.itf.json"
    with pytest.raises(ItfError, match=r"x\.itf\.json: cannot read"):
        load_itf(path)
    path.write_text("{")
    with pytest.raises(ItfError, match=r"x\.itf\.json: not an ITF file"):
        load_itf(path)
    path.write_text("[]")
    with pytest.raises(ItfError, match=r"x\.itf\.json: expected an object"):
        load_itf(path)

"""Traces: sequences of model actions, with replay, JSON and message-sequence rendering.

A trace is what every checker hands a user: Hypothesis's shrunk failure, Z3's
bounded counterexample, a trace-validation witness.  All of them are replayed on the
executable model (:meth:`Trace.replay`) before they are believed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mbmssec.model import itf
from mbmssec.model.concrete import State, Universe
from mbmssec.model.dsl import ModelError, Sort, Vocabulary
from mbmssec.model.machine import Model

#: Columns of a chart line after its step number and mark (five columns), so that a
#: chart indented by eight fits 100 columns.
_CHART_COLUMNS = 100 - 8 - 5


@dataclass(frozen=True)
class TraceStep:
    """One action with its arguments (in parameter order)."""

    action: str
    args: tuple[Any, ...]

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "args": list(self.args)}


@dataclass(frozen=True)
class Trace:
    """A run of the model from the initial state of a universe."""

    steps: tuple[TraceStep, ...]
    universe: Universe = field(default_factory=Universe)
    violates: tuple[int, ...] = ()
    #: for a lasso (a liveness counterexample): the index of the first step of the loop,
    #: ``steps[loop:]``, which repeats forever
    loop: int | None = None

    def replay(self, model: Model) -> list[State]:
        """The states the trace visits; raises :class:`ModelError` if a step is disabled."""
        states = [model.initial(self.universe)]
        for i, st in enumerate(self.steps, start=1):
            nxt = model.step(states[-1], st.action, st.args)
            if nxt is None:
                raise ModelError(f"trace step {i} ({self.describe(model, st)}) is not enabled")
            states.append(nxt)
        return states

    def violations(self, model: Model) -> list[int]:
        """Properties the final step of the trace violates (replayed on the model)."""
        if not self.steps:
            return model.violated(model.initial(self.universe))
        states = self.replay(model)
        pre = states[-2] if len(states) > 1 else None
        return model.violated(states[-1], pre)

    def minimise(self, model: Model, prop: int) -> Trace:
        """A sub-trace that still replays and still violates ``prop``, from which no
        single step and no pair of steps can be dropped (a pair such as losing and
        regaining coverage only goes away together)."""

        def still_fails(steps: list[TraceStep]) -> bool:
            try:
                return prop in Trace(tuple(steps), self.universe).violations(model)
            except ModelError:
                return False

        steps = list(self.steps)
        changed = True
        while changed:
            changed = False
            n = len(steps)
            drops: list[tuple[int, ...]] = [(i,) for i in range(n - 1, -1, -1)]
            drops += [(i, j) for j in range(n - 1, -1, -1) for i in range(j - 1, -1, -1)]
            for drop in drops:
                candidate = [s for k, s in enumerate(steps) if k not in drop]
                if still_fails(candidate):
                    steps, changed = candidate, True
                    break
        return Trace(tuple(steps), self.universe, self.violates)

    def to_json(self) -> dict[str, Any]:
        u = self.universe
        out: dict[str, Any] = {
            "universe": {"ue": u.ue, "svc": u.svc, "tek": u.tek, "pkt": u.pkt},
            "violates": list(self.violates),
            "steps": [s.to_json() for s in self.steps],
        }
        if self.loop is not None:
            out["loop"] = self.loop
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trace:
        try:
            uni = Universe(**data["universe"])
            steps = tuple(TraceStep(s["action"], tuple(s["args"])) for s in data["steps"])
            loop = data.get("loop")
            if loop is not None and not (isinstance(loop, int) and 0 <= loop < len(steps)):
                raise ModelError(f"malformed trace JSON: loop {loop!r} is not a step index")
            return cls(steps, uni, tuple(data.get("violates", ())), loop)
        except (KeyError, TypeError) as exc:
            raise ModelError(f"malformed trace JSON: {exc}") from None

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    # -- the Informal Trace Format -------------------------------------------------------

    def to_itf(self, model: Model, description: str = "") -> dict[str, Any]:
        """The trace with the full state at every step, in the Informal Trace Format (see
        :mod:`mbmssec.model.itf`): the initial state and the state after each step, as
        the executable model's replay gives them."""
        states = self.replay(model)
        u = self.universe
        meta: dict[str, Any] = {
            "format": "ITF",
            "format-description": itf.FORMAT_DESCRIPTION,
            "source": "mbmssec",
            "description": description or self._itf_description(),
            "profile": model.profile.title,
            "universe": itf.universe_meta(u),
            "violates": list(self.violates),
        }
        out: dict[str, Any] = {
            "#meta": meta,
            "vars": [*model.vocab.names(), itf.ACTION_VAR],
            "states": [],
        }
        for i, state in enumerate(states):
            smeta: dict[str, Any] = {"index": i}
            action = itf.INIT
            if i > 0:
                st = self.steps[i - 1]
                act = model.action(st.action)
                action = st.action
                smeta["step"] = self.describe(model, st)
                note = effect_note(model, states[i - 1], state, st)
                if note:
                    smeta["effect"] = note
                smeta["args"] = [
                    itf.encode_value(p.sort, v) for p, v in zip(act.params, st.args, strict=True)
                ]
            out["states"].append(
                {"#meta": smeta, itf.ACTION_VAR: action, **itf.encode_state(model.vocab, state)}
            )
        if self.loop is not None:
            out["loop"] = self.loop
        return out

    def _itf_description(self) -> str:
        props = ", ".join(map(str, self.violates))
        if self.loop is not None:
            return (
                f"fair lasso against property {props}: the steps from state {self.loop} "
                "on repeat forever"
            )
        if self.violates:
            return (
                f"counterexample to property {props}: the last state (for a step property, "
                "the last step) violates it"
            )
        return "a run of the model"

    @classmethod
    def from_itf(cls, data: Any, vocab: Vocabulary | None = None, source: str = "ITF") -> Trace:
        """The trace an ITF document written by :meth:`to_itf` records (its steps, universe,
        violated properties and loop); :class:`~mbmssec.model.itf.ItfError` names the
        field of a malformed document."""
        run = itf.read_itf(data, vocab, source)
        steps = tuple(TraceStep(s.action, s.args) for s in run.steps)
        return cls(steps, run.universe, run.violates, run.loop)

    # -- rendering ---------------------------------------------------------------------

    @staticmethod
    def describe(model: Model, st: TraceStep) -> str:
        act = model.action(st.action)
        parts = []
        for p, v in zip(act.params, st.args, strict=True):
            if p.sort.is_element:
                parts.append(itf.element_name(p.sort, v))
            elif p.sort is Sort.BOOL:
                parts.append(f"{p.name}={'yes' if v else 'no'}")
            else:
                parts.append(f"{p.name}={v}")
        return f"{st.action}({', '.join(parts)})"

    def render_text(self, model: Model) -> str:
        """A numbered message sequence, one column per actor that takes a step (BM-SC,
        UE / network, attacker; a lane with no step is left out), the last step of a
        counterexample marked; lanes as narrow as their cells allow (at most 34 columns,
        and narrower when the last lane's longest cell would not fit otherwise: each row
        holds one cell, so a cell may reach into the next lane), so that a chart fits 100
        columns when indented by eight."""
        lane_of = {"BM-SC": 0, "UE": 1, "net": 1, "attacker": 2}
        names = ("BM-SC", "UE / network", "attacker")
        states = self.replay(model)
        rows: list[tuple[int, str]] = []
        for i, st in enumerate(self.steps, start=1):
            act = model.action(st.action)
            text = self.describe(model, st)
            note = effect_note(model, states[i - 1], states[i], st)
            rows.append((lane_of[act.actor], text + (f"  {note}" if note else "")))
        used = sorted({lane for lane, _ in rows}) or [0]
        col = {lane: k for k, lane in enumerate(used)}
        inner = [len(c) for lane, c in rows if col[lane] < len(used) - 1]
        inner += [len(names[lane]) for lane in used[:-1]]
        width = min(34, max(inner, default=0) + 2)
        last_lane = [len(c) for lane, c in rows if col[lane] == len(used) - 1]
        if len(used) > 1 and last_lane:
            room = (_CHART_COLUMNS - max(last_lane)) // (len(used) - 1)
            width = max(min(width, room), max(len(names[lane]) for lane in used[:-1]) + 2)
        last = len(self.steps) if self.violates and self.loop is None else None
        header = "".join(names[lane].ljust(width) for lane in used).rstrip()
        lines = ["  #  " + header, "  " + "-" * (3 + len(header))]
        for i, (lane, cell) in enumerate(rows, start=1):
            mark = " " if self.loop is None or i <= self.loop else "|"
            if self.loop is not None and i == self.loop + 1:
                lines.append("     --- loop: the steps below repeat forever ---")
            if i == last:
                mark = ">"
            lines.append(f"{i:>3}{mark} " + " " * (width * col[lane]) + cell)
        if self.loop is not None:
            lines.append(f"     --- back to step {self.loop + 1} ---")
        if self.violates:
            verb = "never reaches the goal of" if self.loop is not None else "violates"
            where = f" at step {last} (marked >)" if last else ""
            lines.append(f"  => {verb} property {', '.join(map(str, self.violates))}{where}")
        return "\n".join(lines)


def effect_note(model: Model, pre: State, post: State, st: TraceStep) -> str:
    """A short note of what a step changed that a reader needs (keys, MKIs, decryption)."""
    del model
    if st.action == "Generate":
        s, t = st.args
        return f"-> T{t} MKI={post.get('mki', t)}"
    if st.action == "Activate":
        s = st.args[0]
        return f"-> T{post.get('active', s)} active"
    if st.action in ("Register", "Replay"):
        u = st.args[0]
        got = sorted(
            t
            for t in range(post.universe.tek)
            if post.get("holds", u, t) and not pre.get("holds", u, t)
        )
        return "installs " + ",".join(f"T{t}" for t in got) if got else "(nothing installed)"
    if st.action == "Receive":
        u, p = st.args
        tek = post.get("pkt_tek", p)
        if post.get("decrypted", u, p) and not pre.get("decrypted", u, p):
            return f"decrypts (T{tek})"
        return "unknown MKI" if post.get("saw_unknown", u, post.get("tek_svc", tek)) else "fails"
    if st.action == "Send":
        return f"under T{post.get('pkt_tek', st.args[1])}"
    return ""

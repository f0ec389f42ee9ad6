"""Counterexample charts: each refuted property's trace drawn as a message sequence chart
(SVG, inlined in the pages), with the sentence of why it violates the property, the trace
as JSON, with its states in the Informal Trace Format (ITF JSON), and as a pytest file
that replays it.

A chart is drawn by replaying the trace on the current model; a trace that no longer
replays means the results are stale, which is a :class:`Problem`.
"""

from __future__ import annotations

from pathlib import Path

from mbmssec.docgen.explorer import state_table
from mbmssec.docgen.fragments import fmt_universe
from mbmssec.docgen.inputs import Inputs, profile_title
from mbmssec.docgen.needs import proof_need_id, slug, trace_need_id
from mbmssec.docgen.problems import Problem
from mbmssec.docgen.rst import esc, need
from mbmssec.docgen.writer import PageWriter
from mbmssec.model import itf
from mbmssec.model.dsl import ModelError
from mbmssec.model.machine import Model
from mbmssec.model.trace import Trace
from mbmssec.proofs.msc import trace_svg
from mbmssec.proofs.pytest_export import pytest_source
from mbmssec.proofs.results import ProfileResult, VerdictResult
from mbmssec.spec.loader import SpecError


def chart_stem(proposal: str | None, number: int) -> str:
    """The file name (without suffix) of the chart of a property under a profile."""
    return f"{'baseline' if proposal is None else proposal}-P{number}"


class Charts:
    """Draws each counterexample once, into ``msc/`` of the generated folder."""

    def __init__(self, inp: Inputs, writer: PageWriter) -> None:
        self.inp = inp
        self.writer = writer
        self.drawn: dict[tuple[str | None, int], str | None] = {}

    def _behaviour(self, proposal: str | None) -> object | None:
        """The behaviour a shipped proposal states (None for option values only)."""
        found = [p for p in self.inp.proposals if p.name == proposal]
        return found[0].behaviour if found else None

    def _model(self, overrides: dict[str, str], proposal: str | None = None) -> Model:
        profile = self.inp.spec.profile(dict(overrides))
        behaviour = self._behaviour(proposal)
        if behaviour is not None:
            profile = profile.with_behaviour(behaviour)
        return Model(profile, all_actions=self.inp.actions, properties=self.inp.properties)

    def _svg(self, proposal: str | None, v: VerdictResult, trace: Trace, p: ProfileResult) -> str:
        """The chart, its arrow marker made unique so that several charts fit one page."""
        svg = trace_svg(
            trace,
            self._model(p.overrides, proposal),
            f"{p.title}: property {v.number} ({v.name})",
        )
        marker = f"arrow-{slug(chart_stem(proposal, v.number))}"
        return svg.replace('id="arrow"', f'id="{marker}"').replace("url(#arrow)", f"url(#{marker})")

    def draw(self, proposal: str | None, v: VerdictResult, profile: ProfileResult) -> str | None:
        """Draw the counterexample of ``v`` (once) and return the chart's path relative to
        the generated folder; ``None`` if there is no trace or it does not replay."""
        key = (proposal, v.number)
        if key not in self.drawn:
            self.drawn[key] = self._draw(proposal, v, profile)
        return self.drawn[key]

    def _draw(self, proposal: str | None, v: VerdictResult, profile: ProfileResult) -> str | None:
        if v.trace is None:
            return None
        try:
            svg = self._svg(proposal, v, v.trace, profile)
        except (ModelError, SpecError, KeyError, TypeError, ValueError) as exc:
            self.inp.problems.append(
                Problem(
                    f"{self.inp.results_path}: the counterexample to property {v.number} under "
                    f"{profile_title(proposal)} does not replay on the current model ({exc}); "
                    "the results are stale, re-run `mbmssec check`"
                )
            )
            return None
        stem = chart_stem(proposal, v.number)
        self.writer.write(f"msc/{stem}.svg", svg)
        self.writer.write(f"msc/{stem}.json", v.trace.dumps() + "\n")
        if v.itf is not None:
            self.writer.write(f"msc/{stem}.itf.json", itf.dumps(v.itf))
        self.writer.write(
            f"msc/test_{slug(stem)}.py",
            pytest_source(
                v.trace,
                profile.overrides,
                v.number,
                v.name,
                proposal if self._behaviour(proposal) is not None else None,
            ),
        )
        return f"msc/{stem}.svg"

    def block(
        self, page_depth: int, proposal: str | None, v: VerdictResult, profile: ProfileResult
    ) -> str:
        """The chart inlined in a page ``page_depth`` folders below the generated one, with
        links to the trace, the SVG and the replay test (empty if there is no chart)."""
        chart = self.draw(proposal, v, profile)
        if chart is None or v.trace is None:
            return ""
        up = "../" * page_depth
        stem = Path(chart).stem
        why = f"**Why:** {esc(v.explanation)}\n\n" if v.explanation else ""
        states = (
            f":download:`states (ITF JSON) <{up}msc/{stem}.itf.json>`, "
            if v.itf is not None
            else ""
        )
        explorer = f".. raw:: html\n\n   {state_table(v.itf)}\n\n" if v.itf is not None else ""
        return (
            f".. container:: mbmssec-msc\n\n"
            f"   .. raw:: html\n      :file: {up}{chart}\n\n"
            f"{why}"
            f"{explorer}"
            f"Counterexample to P{v.number} under {esc(profile_title(proposal))}"
            f" ({len(v.trace.steps)} steps; :need:`{trace_need_id(proposal, v.number)}`): "
            f":download:`trace JSON <{up}msc/{stem}.json>`, "
            f"{states}"
            f":download:`SVG <{up}{chart}>`, "
            f":download:`pytest replay <{up}msc/test_{slug(stem)}.py>`.\n\n"
        )


def trace_need(proposal: str | None, v: VerdictResult, profile: ProfileResult) -> str:
    """The sphinx-needs object of a counterexample (empty if there is no trace)."""
    if v.trace is None:
        return ""
    return need(
        "trace",
        f"Counterexample to P{v.number} under {profile_title(proposal)}",
        trace_need_id(proposal, v.number),
        fields={
            "steps": len(v.trace.steps),
            "universe": fmt_universe(profile.universe),
            "profile": profile_title(proposal),
        },
        links={"refutes": [proof_need_id(proposal, v.number)]},
    )

"""Write a model trace as a stand-alone pytest file that replays it.

The file needs only ``mbmssec`` installed: it rebuilds the option profile from its
overrides (or, for a proposal that changes behaviour, reads the proposal again), replays
the trace on the executable model (every step must be enabled) and
asserts that the last state violates the property the trace was found for, so a
counterexample can be kept as a regression test, or sent to someone to rerun.
"""

from __future__ import annotations

from pathlib import Path

from mbmssec.model.trace import Trace

_TEMPLATE = '''"""Counterexample to property {number} ({title}), written by mbmssec check.

Replays the trace on the executable model under the profile {overrides!r} and checks
that its last state violates the property.
"""

from mbmssec.model.machine import Model
from mbmssec.model.trace import Trace
from mbmssec.spec.loader import load_spec

OVERRIDES = {overrides!r}
PROPERTY = {number}
TRACE = {trace!r}


def test_trace_replays_and_violates_property_{number}() -> None:
    model = Model(load_spec().profile(OVERRIDES))
    trace = Trace.from_json(TRACE)
    states = trace.replay(model)
    pre = states[-2] if len(states) > 1 else None
    assert not model.holds(model.prop(PROPERTY), states[-1], pre)
'''


_PROPOSAL_TEMPLATE = '''"""Counterexample to property {number} ({title}), written by mbmssec check.

Replays the trace on the executable model under the proposal {proposal!r} (which
changes the model's behaviour, so it is read again) and checks that its last state
violates the property.
"""

from mbmssec.model.machine import Model
from mbmssec.model.trace import Trace
from mbmssec.proofs.check import resolve_proposal

PROPOSAL = {proposal!r}
PROPERTY = {number}
TRACE = {trace!r}


def test_trace_replays_and_violates_property_{number}() -> None:
    model = Model(resolve_proposal(PROPOSAL).profile)
    trace = Trace.from_json(TRACE)
    states = trace.replay(model)
    pre = states[-2] if len(states) > 1 else None
    assert not model.holds(model.prop(PROPERTY), states[-1], pre)
'''


def pytest_source(
    trace: Trace,
    overrides: dict[str, str],
    number: int,
    title: str = "",
    proposal: str | None = None,
) -> str:
    """The text of the pytest file for ``trace`` (violating property ``number``);
    ``proposal`` (a shipped proposal's name or a file) for a proposal that changes the
    model's behaviour, whose model option values alone do not give."""
    if proposal is not None:
        return _PROPOSAL_TEMPLATE.format(
            number=number,
            title=title or f"property {number}",
            proposal=proposal,
            trace=trace.to_json(),
        )
    return _TEMPLATE.format(
        number=number,
        title=title or f"property {number}",
        overrides=dict(sorted(overrides.items())),
        trace=trace.to_json(),
    )


def write_pytest(
    path: Path,
    trace: Trace,
    overrides: dict[str, str],
    number: int,
    title: str = "",
    proposal: str | None = None,
) -> Path:
    """Write the file and return its path."""
    path.write_text(pytest_source(trace, overrides, number, title, proposal), encoding="utf-8")
    return path

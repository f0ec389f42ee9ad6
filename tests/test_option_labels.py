"""The ``model`` label of every option in spec/options.toml, checked against the model's
code rather than taken on trust.

* An option labelled ``neutral`` is read by no action, guard, update or lemma of the
  model under any profile: the model is then literally the same transition system for
  every value of the option (its verdicts cannot change), which is what "neutral"
  claims.
* An option labelled ``modelled`` is read by the model under some profile.

The reads are recorded by running every action body through the Z3 reading (which runs
the whole body, guards and updates, without stopping at a failed guard) and every
lemma, with a profile that records which options are read.
"""

from __future__ import annotations

from typing import Any

import pytest
from model_profiles import PROFILES

from mbmssec.model.actions import ACTIONS
from mbmssec.model.symbolic import Sorts, SymbolicState, Z3Ops, transition
from mbmssec.model.vocabulary import VOCABULARY
from mbmssec.proofs.lemmas import LEMMAS
from mbmssec.spec.loader import Profile, SpecError, load_spec


class _Recording(Profile):
    """A profile that notes every option the model reads."""

    def __init__(self, inner: Profile) -> None:
        super().__init__(inner.spec, dict(inner.overrides), inner.title)
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return super().__getitem__(name)


def _reads(profile: Profile) -> set[str]:
    rec = _Recording(profile)
    sorts = Sorts.unbounded("_labels")
    pre = SymbolicState(VOCABULARY, sorts, "labels")
    for act in ACTIONS:
        act.applies(rec)
        transition(act, rec, pre, sorts, tag=f"labels.{act.name}")
    for lem in LEMMAS:
        lem.when(rec)
        lem.body(Z3Ops(sorts), pre, rec)
    return rec.read


def _every_profile() -> list[Profile]:
    spec = load_spec()
    out = [spec.baseline()]
    out += [spec.profile(o) for o in PROFILES.values()]
    # every value of every option, one at a time, so that reads nested under another
    # option's value are reached too
    for name, opt in spec.options.items():
        for value in opt.values:
            if value != opt.baseline:
                try:
                    out.append(spec.profile({name: value}))
                except SpecError:  # a value that needs another option (requires)
                    continue
    return out


@pytest.fixture(scope="module")
def reads() -> set[str]:
    out: set[str] = set()
    for prof in _every_profile():
        out |= _reads(prof)
    return out


def _labelled(kind: str) -> list[str]:
    return sorted(n for n, o in load_spec().options.items() if o.model.startswith(kind))


@pytest.mark.parametrize("name", _labelled("neutral"))
def test_a_neutral_option_is_read_nowhere_in_the_model(name: str, reads: set[str]) -> None:
    assert name not in reads, f"{name} is labelled neutral but the model reads it"


@pytest.mark.parametrize("name", _labelled("modelled"))
def test_a_modelled_option_is_read_by_the_model(name: str, reads: set[str]) -> None:
    assert name in reads, f"{name} is labelled modelled but no action or lemma reads it"


def test_the_recorder_sees_reads() -> None:
    """The recorder is not blind: the baseline's actions read the activation rule."""
    assert "activation" in _reads(load_spec().baseline())
    rec: Any = _Recording(load_spec().baseline())
    rec["kek_scope"]
    assert rec.read == {"kek_scope"}

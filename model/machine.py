"""A model instance: the vocabulary, the actions and properties under one profile.

This is the object every consumer uses (exploration, proofs, trace checking,
refinement, docs), so that all of them read the same definitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mbmssec.model.actions import ACTIONS
from mbmssec.model.concrete import ConcreteOps, State, Universe, step
from mbmssec.model.dsl import Action, ModelError, Vocabulary, check_modifies
from mbmssec.model.properties import PROPERTIES, Property
from mbmssec.model.vocabulary import VOCABULARY
from mbmssec.spec.loader import Profile, load_spec


@dataclass(frozen=True)
class Model:
    """The MBMS key-management model under one option profile."""

    profile: Profile
    vocab: Vocabulary = VOCABULARY
    all_actions: tuple[Action, ...] = ACTIONS
    properties: tuple[Property, ...] = PROPERTIES
    actions: tuple[Action, ...] = field(init=False)

    def __post_init__(self) -> None:
        behaviour = self.profile.behaviour
        if behaviour is not None:
            # a proposal's behaviour (mbmssec.model.behaviour): applied once, so a copy of
            # a model with its behaviour (dataclasses.replace) is the same model
            vocab, acts, props = behaviour.apply(self.vocab, self.all_actions, self.properties)
            object.__setattr__(self, "vocab", vocab)
            object.__setattr__(self, "all_actions", acts)
            object.__setattr__(self, "properties", props)
        names = [a.name for a in self.all_actions]
        if len(set(names)) != len(names):
            raise ModelError(
                f"two actions named {sorted(n for n in names if names.count(n) > 1)[0]}"
            )
        check_modifies(self.vocab, self.all_actions)
        object.__setattr__(
            self, "actions", tuple(a for a in self.all_actions if a.applies(self.profile))
        )

    @classmethod
    def baseline(cls) -> Model:
        return cls(load_spec().baseline())

    def action(self, name: str) -> Action:
        for act in self.all_actions:
            if act.name == name:
                if act not in self.actions:
                    raise ModelError(
                        f"action {name} does not exist under profile {self.profile.title!r}"
                    )
                return act
        raise ModelError(f"unknown action {name!r}")

    def prop(self, number: int) -> Property:
        for prop in self.properties:
            if prop.number == number:
                return prop
        raise ModelError(f"unknown property {number}")

    def initial(self, universe: Universe | None = None) -> State:
        return State.initial(self.vocab, universe or Universe())

    def step(self, state: State, name: str, args: tuple[Any, ...]) -> State | None:
        return step(self.action(name), self.profile, state, args)

    # -- concrete property evaluation -----------------------------------------------------

    def holds(self, prop: Property, state: State, pre: State | None = None) -> bool:
        """Does the property hold in ``state`` (for step properties: on ``pre -> state``)?"""
        ops = ConcreteOps(state.universe)
        if prop.kind == "invariant":
            assert prop.body is not None
            return bool(prop.body(ops, state))
        if prop.kind == "step":
            assert prop.body is not None
            return pre is None or bool(prop.body(ops, pre, state))
        if prop.kind == "liveness":
            # No finite run refutes "eventually": liveness is judged by the proof rule
            # and the lasso search of mbmssec.proofs.liveness; its bounded form (the
            # response property 12) is what a finite run can be judged against.
            return True
        return not self.response_failures(prop, state)

    def response_failures(self, prop: Property, state: State) -> list[tuple[int, int]]:
        """For a response property: the (UE, service) pairs whose plan fails from here."""
        assert prop.premise is not None and prop.goal is not None
        ops = ConcreteOps(state.universe)
        bad = []
        for u in state.universe.elements(self.vocab["holds"].args[0]):
            for s in state.universe.elements(self.vocab["subscribed"].args[1]):
                if not prop.premise(ops, state, u, s):
                    continue
                if not self._plan_reaches_goal(prop, state, u, s):
                    bad.append((u, s))
        return bad

    def plan_args(self, prop: Property, index: int, u: Any, s: Any) -> tuple[Any, ...]:
        """Arguments of the ``index``-th plan step for UE ``u`` and service ``s``."""
        name, roles = prop.plan[index]
        by_role = {"u": u, "s": s}
        values = dict(roles)
        act = self.action(name)
        return tuple(
            by_role[v] if isinstance(v, str) else v for v in (values[p.name] for p in act.params)
        )

    def _plan_reaches_goal(self, prop: Property, state: State, u: int, s: int) -> bool:
        assert prop.goal is not None
        cur: State | None = state
        for i, (name, _roles) in enumerate(prop.plan):
            assert cur is not None
            cur = self.step(cur, name, self.plan_args(prop, i, u, s))
            if cur is None:
                return False
        assert cur is not None
        return bool(prop.goal(ConcreteOps(cur.universe), cur, u, s))

    def violated(self, state: State, pre: State | None = None) -> list[int]:
        """Numbers of the properties that fail in ``state`` (after ``pre``)."""
        return [p.number for p in self.properties if not self.holds(p, state, pre)]

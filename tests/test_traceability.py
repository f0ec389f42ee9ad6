"""Every normative clause of 6.2.2-6.3 is encoded by some model element."""

from __future__ import annotations

from mbmssec.model.actions import ACTIONS
from mbmssec.model.properties import PROPERTIES
from mbmssec.spec.loader import load_spec

SECTIONS = ("6.2.2", "6.2.3.1", "6.2.3.2", "6.2.3.3", "6.3")


def tagged_clauses() -> set[str]:
    tags = {c for a in ACTIONS for c in a.clauses} | {c for p in PROPERTIES for c in p.clauses}
    return tags


def test_every_normative_clause_has_a_model_element() -> None:
    spec = load_spec()
    tags = tagged_clauses()
    missing = [
        c.id
        for c in spec.clauses.values()
        if c.clause in SECTIONS and c.kind == "normative" and c.modelled and c.id not in tags
    ]
    assert not missing, f"normative clauses with no model element: {missing}"


def test_model_tags_name_real_clauses() -> None:
    spec = load_spec()
    unknown = tagged_clauses() - set(spec.clauses)
    assert not unknown, f"model tags with no clause: {sorted(unknown)}"


def test_modelled_options_are_read_by_the_model() -> None:
    import inspect

    from mbmssec.model import actions

    source = inspect.getsource(actions)
    for opt in load_spec().options.values():
        read = f'prof["{opt.name}"]' in source
        assert read == (not opt.neutral), (opt.name, opt.model)

"""Formal statements of the properties and lemmas (model/show.py), as the docs show them:
the model's own formulas printed in the proposal language, which parse back."""

from __future__ import annotations

import pytest

from mbmssec.model import lang
from mbmssec.model.properties import PROPERTIES, Property
from mbmssec.model.show import show_invariant, show_property
from mbmssec.model.vocabulary import VOCABULARY
from mbmssec.proofs.lemmas import LEMMAS, Lemma
from mbmssec.spec.loader import load_spec


def test_p1_reads_as_written_by_hand() -> None:
    p1 = next(p for p in PROPERTIES if p.number == 1)
    assert show_property(p1, VOCABULARY) == [
        "always:",
        "  forall u: UE, p: PKT. decrypted(u, p) implies auth_dlv(u, pkt_tek(p))",
    ]


def test_a_step_property_reads_the_state_after_the_step_primed() -> None:
    p2 = next(p for p in PROPERTIES if p.number == 2)
    text = " ".join(show_property(p2, VOCABULARY))
    assert "delivered'(u, t) and not delivered(u, t)" in text


def test_a_response_property_names_its_plan() -> None:
    p13 = next(p for p in PROPERTIES if p.number == 13)
    lines = show_property(p13, VOCABULARY)
    assert lines[0] == "for every u: UE, s: SVC, whenever:"
    assert "then the plan Authenticate(u) then Register(u, s, 1) is enabled" in " ".join(lines)
    assert lines[-1].strip() == "fetch_time(u, s) > clock"


@pytest.mark.parametrize("prop", PROPERTIES, ids=lambda p: f"P{p.number}")
def test_every_property_statement_parses_back(prop: Property) -> None:
    lines = show_property(prop, VOCABULARY)
    body = [x for x in lines if x.startswith("  ")]
    text = " ".join(x.strip() for x in body)
    if prop.kind in ("invariant", "step"):
        lang.parse_expr(text)  # one formula
    else:
        head = lines.index(next(x for x in lines if x.startswith("then")))
        lang.parse_expr(" ".join(x.strip() for x in lines[1:head]))
        lang.parse_expr(" ".join(x.strip() for x in lines[head + 1 :]))


@pytest.mark.parametrize("lemma", LEMMAS, ids=lambda lem: lem.name)
def test_every_lemma_statement_parses_back(lemma: Lemma) -> None:
    lines = show_invariant(lemma.body, load_spec().baseline(), VOCABULARY)
    assert lines and lines[0]
    lang.parse_expr(" ".join(x.strip() for x in lines))

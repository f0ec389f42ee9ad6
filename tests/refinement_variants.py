"""Deliberately broken implementation variants the refinement tests must catch.

Each variant is a set of keyword arguments for :class:`mbmssec.refinement.abstraction.Lockstep`
(core factories substituting a broken subclass); none changes the shipped code.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mbmssec.impl.service.bmsc import BmscCore
from mbmssec.impl.service.store import Store
from mbmssec.impl.service.ue import PacketOutcome, UeCore


class NoAuthorisationCheck(BmscCore):
    """BM-SC skipping the authorisation check of step 4 (delivers to revoked UEs)."""

    def _check_subscribed(self, ue: str, service: str) -> None:
        return None


class EarlyActivation(BmscCore):
    """BM-SC activating at the planned time, before registered UEs fetched the TEK."""

    def _may_activate(self, service: str, tek: Any, now: float) -> bool:
        return True


class AcceptsReplays(UeCore):
    """UE accepting a replayed MIKEY message (its replay state is forgotten)."""

    def accept_delivery(
        self, service: str, body: bytes, now: float, trigger: str = "initial"
    ) -> Any:
        self.replay = dataclasses.replace(self.replay, last_counter=None, recent=frozenset())
        return super().accept_delivery(service, body, now, trigger)


class IgnoresMki(UeCore):
    """SRTP receiver ignoring the MKI: it tries its current key on every packet."""

    def on_packet(self, service: str, data: bytes, now: float) -> PacketOutcome:
        st = self.state(service)
        if st.current is not None and len(data) >= 26:
            data = data[:-14] + st.current.to_bytes(4, "big") + data[-10:]
        return super().on_packet(service, data, now)


def _restart_losing_mkis(ls: Any) -> tuple[Store, BmscCore, list[Any]]:
    """BM-SC restart that keeps subscribers but not the key schedule: MKIs start over."""
    old = ls.store
    store = Store(":memory:")
    core = BmscCore(store, ls.profile, ls.config, rand=ls.rng.randbytes)
    events = list(core.add_service(ls.service, ls.now))
    for sub in old.subscribers():
        core.add_subscriber(sub.ue, sub.k, sub.opc, sub.sqn)
    for s in old.subscriptions():
        if s.subscribed:
            events += core.subscribe(s.ue, s.service, ls.now)
    return store, core, events


VARIANTS: dict[str, dict[str, Any]] = {
    "bmsc_skips_authorisation": {"bmsc_factory": NoAuthorisationCheck},
    "ue_accepts_replayed_mikey": {"ue_factory": AcceptsReplays},
    "srtp_ignores_mki": {"ue_factory": IgnoresMki},
    "bmsc_activates_early": {"bmsc_factory": EarlyActivation},
    "mki_reused_after_restart": {"restart_factory": _restart_losing_mkis},
}

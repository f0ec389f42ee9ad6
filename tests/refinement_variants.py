"""Deliberately broken implementation variants (mutants) the refinement tests must catch.

Each variant is a set of keyword arguments for :class:`mbmssec.refinement.abstraction.Lockstep`
(core factories substituting a broken subclass), and :data:`MUTANTS` adds, per planted bug,
the profile it is searched under and any module attribute patched for the run; none
changes the shipped code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from mbmssec.impl.protocols.digest import DigestAuthError, verify_response
from mbmssec.impl.service import bmsc
from mbmssec.impl.service.bmsc import BmscCore
from mbmssec.impl.service.store import Service, Store, TekRow
from mbmssec.impl.service.ue import DeliveryOutcome, PacketOutcome, Source, UeCore


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

    def on_packet(
        self, service: str, data: bytes, now: float, source: Source | None = None
    ) -> PacketOutcome:
        st = self.state(service)
        if st.current is not None and len(data) >= 26:
            data = data[:-14] + st.current.to_bytes(4, "big") + data[-10:]
        return super().on_packet(service, data, now, source)


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


# -- the mutant catalogue -------------------------------------------------------------------


class ReusesWithdrawnKey(BmscCore):
    """BM-SC generating a replacement TEK with the key and salt of a withdrawn one."""

    def _generate(self, svc: Service, planned: float, now: float) -> Any:
        withdrawn = self.store.teks(svc.service, "withdrawn")
        if not withdrawn:
            return super()._generate(svc, planned, now)
        queue = [withdrawn[-1].key, withdrawn[-1].salt]
        rand = self.rand
        self.rand = lambda n: queue.pop(0) if queue else rand(n)
        try:
            return super()._generate(svc, planned, now)
        finally:
            self.rand = rand


class IgnoresFetchGrace(BmscCore):
    """BM-SC that stops waiting for a UE at its fetch time (no grace for the request's
    transit)."""

    def _may_activate(self, service: str, tek: TekRow, now: float) -> bool:
        if self._opt("activation") == "immediate":
            return True
        evidence = "delivered" if self._opt("activation") == "after_fetch_window" else "acked"
        return not self.store.blocking_ues(service, tek.id, now, evidence, limit=1)


class ActivationTimeout(BmscCore):
    """BM-SC giving up on late UEs once the fetch window after the planned time is over."""

    def _may_activate(self, service: str, tek: TekRow, now: float) -> bool:
        window = self.config.fetch_delay + self.config.fetch_window * self.config.period
        return now >= tek.planned + window or super()._may_activate(service, tek, now)


class RevokeKeepsNextTek(BmscCore):
    """BM-SC not re-keying on a leave: the leaver's next TEK stays scheduled."""

    def revoke(self, ue: str, service: str, now: float) -> Any:
        opt = self._opt

        def without_leave(name: str) -> str:
            return "never" if name == "membership_rekey" else opt(name)

        self._opt = without_leave  # type: ignore[method-assign]
        try:
            return super().revoke(ue, service, now)
        finally:
            del self._opt


class OneMkiPerDelivery(BmscCore):
    """BM-SC labelling every TEK of a delivery with the first TEK's MKI (MKI reuse)."""

    def _deliver(self, *args: Any, **kwargs: Any) -> Any:
        real = getattr(bmsc, "new_tek_delivery")  # noqa: B009 (not in the module's __all__)

        def same_mki(**kw: Any) -> Any:
            keys = kw["keys"]
            kw["keys"] = [k._replace(mki=keys[0].mki) for k in keys]
            return real(**kw)

        setattr(bmsc, "new_tek_delivery", same_mki)  # noqa: B010
        try:
            return super()._deliver(*args, **kwargs)
        finally:
            setattr(bmsc, "new_tek_delivery", real)  # noqa: B010


class IgnoresFetchTime(UeCore):
    """UE whose client treats every registered service as due (its fetch time unread)."""

    def due(self, now: float) -> list[str]:
        return [s.service for s in self.services.values() if s.registered]


class MisreadsFetchTime(UeCore):
    """UE that installs the fetch time half a period late."""

    def accept_delivery(
        self, service: str, body: bytes, now: float, trigger: str = "initial"
    ) -> DeliveryOutcome:
        out = super().accept_delivery(service, body, now, trigger)
        st = self.state(service)
        if st.fetch_time is not None:
            st.fetch_time += 0.5
        return out


class AcceptsOlderCounter(UeCore):
    """UE that keeps its highest MIKEY counter but accepts a delivery with a lower one."""

    def accept_delivery(
        self, service: str, body: bytes, now: float, trigger: str = "initial"
    ) -> DeliveryOutcome:
        last = self.replay.last_counter
        self.replay = dataclasses.replace(self.replay, last_counter=None, recent=frozenset())
        try:
            return super().accept_delivery(service, body, now, trigger)
        finally:
            got = self.replay.last_counter
            top = (
                max(c for c in (last, got) if c is not None)
                if (last, got) != (None, None)
                else None
            )
            self.replay = dataclasses.replace(self.replay, last_counter=top)


class KeepsOlderKeys(UeCore):
    """UE that does not drop older TEKs after switching to a newer one."""

    def on_packet(
        self, service: str, data: bytes, now: float, source: Source | None = None
    ) -> PacketOutcome:
        before = dict(self.state(service).keys)
        out = super().on_packet(service, data, now, source)
        self.state(service).keys.update(before)
        return out


class SharesOneSalt(UeCore):
    """UE installing every TEK of a delivery with the first TEK's salt."""

    def accept_delivery(
        self, service: str, body: bytes, now: float, trigger: str = "initial"
    ) -> DeliveryOutcome:
        out = super().accept_delivery(service, body, now, trigger)
        st = self.state(service)
        first = st.keys[out.mkis[0]]
        for mki in out.mkis[1:]:
            st.keys[mki] = dataclasses.replace(st.keys[mki], salt=first.salt)
        return out


def _accept_wrong_res(cred: Any, **kw: Any) -> int:
    """``verify_response`` that lets a wrong RES through (the digest is not compared)."""
    try:
        return verify_response(cred, **kw)
    except DigestAuthError:
        return int(cred.nc or 1)


_update_challenge = Store.update_challenge


def _keep_nonce_count(store: Store, nonce: str, state: str, max_nc: int) -> None:
    """``Store.update_challenge`` that never raises a nonce's recorded count: a request
    replayed with a nonce count the BM-SC already accepted passes the count check.

    (A ``verify_response`` reporting one constant count instead would not plant this
    bug: the BM-SC records that count at the nonce's first use and so refuses every
    later use, the UE's own included; the UE then answers a new challenge, a
    re-authentication the model allows, so that BM-SC, more cautious than the shipped
    one, does nothing the model forbids.)"""
    rec = store.get_challenge(nonce)
    _update_challenge(store, nonce, state, rec.max_nc if rec is not None else 0)


Patch = tuple[Any, str, Callable[..., Any]]


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One planted bug: the profile (a shipped proposal's name, or ``baseline``) it is
    searched under, the Lockstep keyword arguments (a broken core, and any configuration
    of the run) and the module attributes it patches."""

    profile: str
    variant: dict[str, Any] = dataclasses.field(default_factory=dict)
    patches: tuple[Patch, ...] = ()


MUTANTS: dict[str, Mutant] = {
    **{name: Mutant("baseline", variant) for name, variant in VARIANTS.items()},
    "replacement_tek_reuses_withdrawn_key": Mutant(
        "baseline", {"bmsc_factory": ReusesWithdrawnKey}
    ),
    "activation_ignores_fetch_grace": Mutant("baseline", {"bmsc_factory": IgnoresFetchGrace}),
    # the BM-SC gives up at the end of the fetch window, so only a UE drawn late in the
    # window and late within the grace exposes it: a grace of half a period makes more of
    # the window exposed (the unmutated cores pass this configuration too)
    "activation_timeout_after_fetch_window": Mutant(
        "baseline", {"bmsc_factory": ActivationTimeout, "fetch_grace": 0.5}
    ),
    "revocation_keeps_next_tek": Mutant("baseline", {"bmsc_factory": RevokeKeepsNextTek}),
    "mki_reused_within_delivery": Mutant("baseline", {"bmsc_factory": OneMkiPerDelivery}),
    "ue_ignores_fetch_time": Mutant("baseline", {"ue_factory": IgnoresFetchTime}),
    "ue_misreads_fetch_time": Mutant("baseline", {"ue_factory": MisreadsFetchTime}),
    # under reauthenticate a UE has no KEK left to open a replay with: searched where it keeps it
    "ue_accepts_older_counter": Mutant(
        "second_service_no_reauth", {"ue_factory": AcceptsOlderCounter}
    ),
    "ue_keeps_older_keys_on_switch": Mutant("baseline", {"ue_factory": KeepsOlderKeys}),
    "ue_installs_wrong_salt": Mutant("baseline", {"ue_factory": SharesOneSalt}),
    "bmsc_accepts_wrong_res": Mutant(
        "baseline", patches=((bmsc, "verify_response", _accept_wrong_res),)
    ),
    # a verified nonce is used again only where the authentication is reused
    "bmsc_accepts_replayed_nonce_count": Mutant(
        "second_service_no_reauth", patches=((Store, "update_challenge", _keep_nonce_count),)
    ),
}
"""The implementation-mutant catalogue searched by tests/test_refinement_mutants.py."""

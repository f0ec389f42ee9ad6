"""The abstraction function: concrete BM-SC and UE state -> a model state (refinement).

:func:`abstract` maps the BM-SC's :class:`~mbmssec.impl.service.store.Store`, the UEs'
:class:`~mbmssec.impl.service.ue.UeCore` objects and what a test recorded (packets sent, which
UE decrypted which, coverage, lost deliveries) to a :class:`~mbmssec.model.concrete.State`
of the model (TS 33.246 6.2.2-6.2.3.3 as modelled in :mod:`mbmssec.model`), over a
:class:`~mbmssec.model.concrete.Universe`.  Elements: UE ``i`` is the ``i``-th UE
given, service ``j`` the ``j``-th service, TEKs are numbered in generation order (the
``teks`` row id, which is MKI order within a service), packets in sending order.

Observable symbols (:data:`OBSERVED`, compared by the lockstep tests): the
authorisation database (``subscribed``, ``ever_sub``, ``revoked``), ``registered``,
``ctr``, ``acked``, the key schedule (``generated``, ``tek_svc``, ``mki`` and
``next_mki`` — the store numbers MKIs from 1, the model from 0, so ``mki - 1``;
``has_active``, ``active``, ``has_next``, ``next``, ``activated``, ``withdrawn``),
``delivered``, the UEs' ``holds``, ``saw_unknown``, ``authenticated`` (the UE has an
AKA context whose nonce the BM-SC still accepts), ``ue_ctr`` (with
``replay_protection=counter`` only: the other modes keep no counter at the UE),
``current``/``has_current`` (with ``mki_in_srtp=optional`` only: with MKIs the UE's
current key is not used and the implementation does not follow the model's rule),
the environment (``covered``, ``dropped``) and the data plane (``sent``, ``pkt_tek``,
``pkt_has_mki``, ``decrypted``, and ``dlv_ctr`` from the recorded deliveries).

Ghost stamps (``join_ev``, ``revoke_ev``, ``gen_ev``, ``act_ev``) are compared by order
(:func:`stamp_order`): the store's event counter does not count packets as the model's
``ev`` does, so only the order of two stamps is meaningful.

Not observed: ``acked`` (the implementation records a MIKEY response as confirming
every TEK of the delivery, the model only the next TEK; activation reads only the next
TEK's, so the difference cannot change a step), ``clock`` and ``fetch_time`` (model
units vs Unix seconds; chosen existentially by
:class:`~mbmssec.refinement.tracecheck.Tracker`), ``ev`` and ``pkt_ev``,
the attacker's symbols (``compromised``, ``att_kek``, ``att_tek``: no attacker runs
against the implementation here) and the history symbols ``auth_dlv``, ``heard``,
``auth_ev`` and ``dlv_auth`` (records the model keeps for its properties; the
implementation's own counterparts are the store's deliveries, the recorded receptions
and its AKA challenges).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from mbmssec.impl.service.store import Store
from mbmssec.impl.service.ue import UeCore
from mbmssec.model.concrete import State, Universe
from mbmssec.model.vocabulary import VOCABULARY

__all__ = [
    "OBSERVED",
    "ORDERED_STAMPS",
    "Divergence",
    "Lockstep",
    "Record",
    "abstract",
    "difference",
    "stamp_order",
]

OBSERVED: Final = (
    "subscribed",
    "ever_sub",
    "revoked",
    "registered",
    "ctr",
    "generated",
    "tek_svc",
    "mki",
    "next_mki",
    "has_active",
    "active",
    "has_next",
    "next",
    "activated",
    "withdrawn",
    "delivered",
    "dlv_ctr",
    "covered",
    "dropped",
    "holds",
    "saw_unknown",
    "authenticated",
    "sent",
    "pkt_tek",
    "pkt_has_mki",
    "decrypted",
)
"""Symbols compared in every profile (``ue_ctr``, ``current``, ``has_current`` are added
by :func:`observed_for` where the implementation keeps them)."""

ORDERED_STAMPS: Final = ("join_ev", "revoke_ev", "gen_ev", "act_ev")


def observed_for(profile: Mapping[str, str]) -> tuple[str, ...]:
    """The observed symbols under a profile."""
    extra: tuple[str, ...] = ()
    if profile["replay_protection"] == "counter":
        extra += ("ue_ctr",)
    if profile["mki_in_srtp"] == "optional":
        extra += ("current", "has_current")
    return OBSERVED + extra


@dataclass
class Record:
    """What a test recorded besides the stores: the environment and the data plane."""

    covered: dict[str, bool] = field(default_factory=dict)
    dropped: dict[tuple[str, str], bool] = field(default_factory=dict)
    packets: list[tuple[str, int, bool]] = field(default_factory=list)
    """(service, MKI, carries the MKI) per packet sent, in order."""
    decrypted: set[tuple[str, int]] = field(default_factory=set)
    """(UE, packet number) decrypted."""
    dlv_ctr: dict[tuple[str, str, int], int] = field(default_factory=dict)
    """(UE, service, MKI) -> counter of the latest delivery of it the UE accepted."""


def abstract(
    store: Store, ues: Sequence[UeCore], services: Sequence[str], record: Record, universe: Universe
) -> State:
    """The model state the concrete state stands for (see the module docstring)."""
    v: dict[str, dict[tuple[int, ...], Any]] = {s.name: {} for s in VOCABULARY.symbols}
    uidx = {u.ue: i for i, u in enumerate(ues)}
    sidx = {s: j for j, s in enumerate(services)}
    teks: dict[int, int] = {}  # row id -> element
    by_mki: dict[tuple[str, int], int] = {}
    rows = sorted((t for s in services for t in store.teks(s)), key=lambda t: t.id)
    for n, t in enumerate(rows):
        teks[t.id] = n
        by_mki[(t.service, t.mki)] = n
    for sub in store.subscriptions():
        if sub.ue not in uidx or sub.service not in sidx:
            continue
        k = (uidx[sub.ue], sidx[sub.service])
        v["subscribed"][k] = sub.subscribed
        v["ever_sub"][k] = True
        v["revoked"][k] = (not sub.subscribed) and sub.revoke_ev is not None
        v["join_ev"][k] = sub.join_ev
        if sub.revoke_ev is not None:
            v["revoke_ev"][k] = sub.revoke_ev
    for reg in store.registrations():
        if reg.ue in uidx and reg.service in sidx:
            v["registered"][(uidx[reg.ue], sidx[reg.service])] = reg.registered
    for sub2 in store.subscribers():
        if sub2.ue in uidx:
            v["ctr"][(uidx[sub2.ue],)] = sub2.ctr
    snap = store.snapshot("deliveries", "acks", "services")
    for row in snap["deliveries"]:
        if row["ue"] in uidx and row["tek"] in teks:
            v["delivered"][(uidx[row["ue"]], teks[row["tek"]])] = True
    for row in snap["acks"]:
        if row["ue"] in uidx and row["tek"] in teks:
            v["acked"][(uidx[row["ue"]], teks[row["tek"]])] = True
    for svc_row in snap["services"]:
        if svc_row["service"] in sidx:
            v["next_mki"][(sidx[svc_row["service"]],)] = svc_row["next_mki"] - 1
    for t in rows:
        n, s = teks[t.id], sidx[t.service]
        v["generated"][(n,)] = True
        v["tek_svc"][(n,)] = s
        v["mki"][(n,)] = t.mki - 1
        v["gen_ev"][(n,)] = t.gen_ev
        if t.state in ("active", "retired"):
            v["activated"][(n,)] = True
            v["act_ev"][(n,)] = t.act_ev or 0
        if t.state == "withdrawn":
            v["withdrawn"][(n,)] = True
        if t.state == "active":
            v["has_active"][(s,)] = True
            v["active"][(s,)] = n
    for s_name, s in sidx.items():
        pending = store.teks(s_name, "pending")
        if pending:
            v["has_next"][(s,)] = True
            v["next"][(s,)] = teks[pending[0].id]
    for ue in ues:
        i = uidx[ue.ue]
        v["covered"][(i,)] = record.covered.get(ue.ue, True)
        if ue.replay.last_counter is not None:
            v["ue_ctr"][(i,)] = ue.replay.last_counter
        if ue.auth is not None:
            ch = store.get_challenge(ue.auth.challenge.nonce)
            v["authenticated"][(i,)] = ch is not None and ch.state == "verified"
        for s_name, s in sidx.items():
            v["dropped"][(i, s)] = record.dropped.get((ue.ue, s_name), False)
            st = ue.services.get(s_name)
            if st is None:
                continue
            for mki in st.keys:
                if (s_name, mki) in by_mki:
                    v["holds"][(i, by_mki[(s_name, mki)])] = True
            v["saw_unknown"][(i, s)] = st.saw_unknown
            if st.current is not None and (s_name, st.current) in by_mki:
                v["has_current"][(i, s)] = True
                v["current"][(i, s)] = by_mki[(s_name, st.current)]
        for (u_name, s_name, mki), c in record.dlv_ctr.items():
            if u_name == ue.ue and (s_name, mki) in by_mki:
                v["dlv_ctr"][(i, by_mki[(s_name, mki)])] = c
    for p, (s_name, mki, with_mki) in enumerate(record.packets):
        v["sent"][(p,)] = True
        v["pkt_tek"][(p,)] = by_mki[(s_name, mki)]
        v["pkt_has_mki"][(p,)] = with_mki
    for u_name, p in record.decrypted:
        v["decrypted"][(uidx[u_name], p)] = True
    # Every element above is an index into one of these four sequences, so the state fits
    # the universe exactly when each sequence does (one check per sort, not per entry).
    _check_fits("UE", len(ues), universe.ue, universe)
    _check_fits("service", len(services), universe.svc, universe)
    _check_fits("TEK", len(rows), universe.tek, universe)
    _check_fits("packet", len(record.packets), universe.pkt, universe)
    return State(VOCABULARY, universe, v)


def _check_fits(what: str, count: int, size: int, universe: Universe) -> None:
    if count > size:
        raise ValueError(f"{count} {what} elements: beyond the universe ({universe})")


def difference(model: State, concrete: State, symbols: Sequence[str]) -> list[str]:
    """Entries of ``symbols`` on which two states differ, as ``name(args): model vs impl``."""
    out = []
    for name in symbols:
        if model.tables[name] == concrete.tables[name]:
            continue  # equal tables: no entry can differ (the common case, checked first)
        # Tables are sparse over one vocabulary's defaults: an entry absent from both
        # states holds the default in both, so only the keys present in either can differ.
        keys = sorted(model.tables[name].keys() | concrete.tables[name].keys())
        for args in keys:
            a, b = model.get(name, *args), concrete.get(name, *args)
            if a != b:
                out.append(f"{name}{args}: model={a} impl={b}")
    return out


def stamp_order(
    st: State,
) -> list[tuple[tuple[str, tuple[int, ...]], tuple[str, tuple[int, ...]], int]]:
    """The pairwise order (-1, 0, 1) of every ghost stamp that is set (see the module doc)."""
    items: list[tuple[tuple[str, tuple[int, ...]], int]] = []
    # Only entries present in a sparse table can be set (absent ones hold the default,
    # False or 0), so the tables' keys, in universe order, stand for the whole universe.
    for args in sorted(st.tables["ever_sub"].keys() | st.tables["revoke_ev"].keys()):
        if st.get("ever_sub", *args):
            items.append((("join_ev", args), st.get("join_ev", *args)))
        if st.get("revoke_ev", *args):
            items.append((("revoke_ev", args), st.get("revoke_ev", *args)))
    for (t,) in sorted(st.tables["generated"].keys() | st.tables["activated"].keys()):
        if st.get("generated", t):
            items.append((("gen_ev", (t,)), st.get("gen_ev", t)))
        if st.get("activated", t):
            items.append((("act_ev", (t,)), st.get("act_ev", t)))
    out = []
    for i, (ka, va) in enumerate(items):
        for kb, vb in items[i + 1 :]:
            out.append((ka, kb, (va > vb) - (va < vb)))
    return out


# -- the lockstep driver ---------------------------------------------------------------------

FETCH_TIME_TOLERANCE: Final = 1e-3
"""Seconds by which the UE's reading of a fetch time may differ from the BM-SC's (the UE
reads it from a 64-bit NTP timestamp)."""

IMPERSONATIONS: Final = ("wrong_res", "replayed_authorization", "foreign_authorization")
"""How :meth:`Lockstep.impersonate` tries to register as a UE without its key: answering
a fresh challenge with a wrong RES, replaying an Authorization header the UE sent
(its nonce and nonce count), or presenting another UE's header under the victim's name."""


class Divergence(AssertionError):
    """The implementation did something the model does not (step, states, difference)."""


@dataclass
class Lockstep:
    """Concrete BM-SC and UE cores driven step by step, each step's events replayed on
    the model (:class:`~mbmssec.refinement.tracecheck.EventMapper`) and ``abstract(...)``
    compared with the model state after every step.

    Besides the model's symbols, :meth:`check` compares what the model leaves abstract:

    * **key bytes.**  Each TEK of the model stands for one MKI, key and salt for the
      whole run (fixed when the BM-SC generates it): the BM-SC's row must keep them, a new
      TEK must not repeat an earlier TEK's MKI, key or salt (a replacement reusing a
      withdrawn key is a divergence), and every key a UE holds must be the BM-SC's bytes
      for that MKI.
    * **fetch times.**  A delivery's fetch time is after the delivery (the model's offset
      is at least one tick) and is the one the BM-SC recorded; the UE's reading of its
      latest installed delivery's fetch time (or SRTP index) is the BM-SC's; and the UE's
      own :meth:`~mbmssec.impl.service.ue.UeCore.due` says a service is due exactly when
      that fetch time has come (with ``fetch_time_unit=sequence_number`` the UE is due by
      SRTP index, which the few packets here never reach: the driver then re-fetches at
      the BM-SC's fetch time and compares only the index).

    Time follows the model: it never passes the fetch time of a synchronised UE (the
    model's ``Tick``; with ``fetch_time_unit=sequence_number``, of one that listens to
    the streams, see :meth:`listen`) except through :meth:`delay`, which makes a UE late
    on purpose:
    within the BM-SC's fetch grace the UE is still synchronised (its request is in
    transit, so no TEK it lacks may be activated), beyond it the UE is out of
    synchronisation (the model's ``LoseCoverage`` and ``RegainCoverage``, which the
    driver logs as what it did).

    ``bmsc_factory``/``ue_factory`` build the cores (broken variants substitute their
    own).  Every operation returns the events it produced; :meth:`check` raises
    :class:`Divergence`.  :attr:`reached` counts the operations and model steps taken,
    key switches (a UE decrypting under a TEK activated during the run) and revocation
    re-keys (a replacement for a TEK a revocation withdrew is activated).
    """

    profile: Any
    universe: Universe
    seed: int = 0
    bmsc_factory: Any = None
    ue_factory: Any = None
    restart_factory: Any = None
    service: str = "239.255.0.1"
    period: float = 1.0
    fetch_grace: float | None = None
    """The BM-SC's fetch grace (s); ``None``: :class:`BmscConfig`'s default."""
    steps: list[str] = field(default_factory=list)
    reached: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        import random

        from mbmssec.impl.service.bmsc import BmscConfig, BmscCore
        from mbmssec.impl.service.ue import UeCore as _Ue
        from mbmssec.model.machine import Model
        from mbmssec.refinement.tracecheck import EventMapper, Naming, Tracker

        self.rng = random.Random(self.seed)
        self.now = 1_800_000_000.0
        self.config = (
            BmscConfig(period=self.period)
            if self.fetch_grace is None
            else BmscConfig(period=self.period, fetch_grace=self.fetch_grace)
        )
        self.store = Store(":memory:")
        make = self.bmsc_factory or BmscCore
        self.core = make(self.store, self.profile, self.config, rand=self.rng.randbytes)
        self.names = [f"0010100000000{i:02d}" for i in range(self.universe.ue)]
        self.ues: list[UeCore] = []
        make_ue = self.ue_factory or _Ue
        self.model = Model(self.profile)
        self.tracker = Tracker(self.model, self.universe, width=4096)
        naming = Naming(ues={n: i for i, n in enumerate(self.names)}, services={self.service: 0})
        self.mapper = EventMapper(self.tracker, naming)
        self.record = Record()
        self.wire: list[bytes] = []
        self.captured: list[tuple[int, bytes, tuple[int, ...]]] = []  # (ue, body, MKIs)
        self.captured_kek: list[bytes | None] = []  # the KEK each capture was made under
        self.authorizations: list[tuple[int, str, str]] = []  # (ue, uri, header) sent
        self.answered: dict[str, str] = {}  # header -> the BM-SC's answer code to it
        self.key_of: dict[int, tuple[int, bytes, bytes]] = {}  # TEK -> (MKI, key, salt)
        self.fetch_sent: dict[int, tuple[float, int | None]] = {}
        """UE -> (fetch time, SRTP index) of the latest delivery it installed, as the
        BM-SC recorded them."""
        self.retry: set[int] = set()  # UEs whose latest request got no delivery to them
        # UEs that do not follow the streams (fetch_time_unit=sequence_number only: they
        # do not see the index reach their fetch time, so time does not wait for them)
        self.not_listening: set[int] = set()
        self.first_mki: int | None = None
        self.withdrawn_at: int | None = None  # highest MKI withdrawn by a revocation
        self._sender: Any = None
        self._sender_mki: int | None = None
        self.observed = observed_for(self.profile)
        self.n_events = 0
        self._feed(self.core.add_service(self.service, self.now))
        for name in self.names:
            k, opc = self.rng.randbytes(16), self.rng.randbytes(16)
            self.core.add_subscriber(name, k, opc)
            self.ues.append(make_ue(name, k, opc, self.profile, rand=self.rng.randbytes))
        self.check("setup")

    # -- plumbing
    def _feed(self, events: Sequence[Any]) -> None:
        objs = [e.to_json() if hasattr(e, "to_json") else dict(e) for e in events]
        from mbmssec.refinement.tracecheck import Unexplained

        taken = len(self.tracker.steps)
        try:
            self.mapper.feed(objs, self.n_events)
        except Unexplained as exc:
            raise Divergence(
                f"after steps {self.steps[-5:]}: {exc}\n  candidate model "
                f"state: {exc.candidates[:1]}"
            ) from None
        self.n_events += len(objs)
        for action, _args in self.tracker.steps[taken:]:
            self.reached[action] += 1
        for o in objs:
            if o["event"] == "Revoke" and o.get("withdrawn"):
                self.withdrawn_at = max(o["withdrawn"])
            elif (
                o["event"] == "Activate"
                and self.withdrawn_at is not None
                and o["mki"] > self.withdrawn_at
            ):
                self.reached["revocation re-key"] += 1
                self.withdrawn_at = None
            if o["event"] == "Activate" and self.first_mki is None:
                self.first_mki = o["mki"]

    def abstraction(self) -> State:
        return abstract(self.store, self.ues, [self.service], self.record, self.universe)

    def check(self, step: str) -> None:
        """Compare the abstraction with the model on the observed symbols and stamps, then
        the key bytes and fetch times (see the class docstring)."""
        conc = self.abstraction()
        mod = self.tracker.core
        diff = difference(mod, conc, self.observed)
        if not diff and stamp_order(mod) != stamp_order(conc):
            diff = [f"stamp order: model {stamp_order(mod)} impl {stamp_order(conc)}"]
        if not diff:
            diff = self._key_bytes() + self._fetch_times()
        if diff:
            raise Divergence(
                f"step {len(self.steps)} ({step}) diverges; steps so far: "
                f"{self.steps}\n  difference: {diff[:8]}\n  model: "
                f"{mod.as_dict()}\n  impl: {conc.as_dict()}"
            )

    def _key_bytes(self) -> list[str]:
        """Each model TEK is one (MKI, key, salt) for the whole run, fresh when generated;
        every key a UE holds is the BM-SC's for its MKI."""
        out = []
        rows = sorted(self.store.teks(self.service), key=lambda t: t.id)
        for n, t in enumerate(rows):
            got = (t.mki, t.key, t.salt)
            fixed = self.key_of.get(n)
            if fixed is not None:
                if fixed != got:
                    out.append(f"T{n}: the BM-SC's MKI, key or salt changed (MKI {fixed[0]})")
                continue
            for k, (mki, key, salt) in self.key_of.items():
                if mki == t.mki or key == t.key or salt == t.salt:
                    out.append(f"T{n} (MKI {t.mki}) repeats the MKI, key or salt of T{k}")
            self.key_of[n] = got
        by_mki = {mki: (key, salt) for mki, key, salt in self.key_of.values()}
        for i, ue in enumerate(self.ues):
            st = ue.services.get(self.service)
            if st is None:
                continue
            for mki, held in st.keys.items():
                want = by_mki.get(mki)
                if want is None:
                    out.append(f"UE{i} holds MKI {mki}, which the BM-SC never generated")
                elif (held.key, held.salt) != want:
                    out.append(f"UE{i} holds other key or salt bytes than the BM-SC's MKI {mki}")
        return out

    def _fetch_times(self) -> list[str]:
        out = []
        by_index = self.profile["fetch_time_unit"] == "sequence_number"
        for i, ue in enumerate(self.ues):
            st = ue.services.get(self.service)
            sent = self.fetch_sent.get(i)
            if st is None or sent is None:
                continue
            if by_index:
                if st.fetch_index != sent[1]:
                    out.append(f"UE{i} fetches at SRTP index {st.fetch_index}, sent {sent[1]}")
                continue
            if st.fetch_time is None or abs(st.fetch_time - sent[0]) > FETCH_TIME_TOLERANCE:
                out.append(f"UE{i} fetches at {st.fetch_time}, the BM-SC sent {sent[0]:.6f}")
                continue
            due = self.service in ue.due(self.now)
            if due != (st.fetch_time <= self.now):
                out.append(
                    f"UE{i} {'is' if due else 'is not'} due at {self.now:.6f}, its fetch time "
                    f"is {st.fetch_time:.6f}"
                )
        return out

    def _do(self, label: str, events: Sequence[Any]) -> None:
        self.steps.append(label)
        self._feed(events)
        self.check(label)

    # -- concrete state queries
    def teks_used(self) -> int:
        return len(self.store.teks(self.service))

    def synchronised(self, i: int) -> bool:
        """The model's synchronised pair: registered, subscribed, covered, not dropped."""
        name = self.names[i]
        reg = self.store.get_registration(name, self.service)
        sub = self.store.get_subscription(name, self.service)
        return bool(
            reg is not None
            and reg.registered
            and sub is not None
            and sub.subscribed
            and self.record.covered.get(name, True)
            and not self.record.dropped.get((name, self.service), False)
        )

    def fetch_limit(self, i: int) -> float:
        """When a synchronised UE fetches: the BM-SC's fetch time, or the UE's reading of
        it if later (time may reach both)."""
        reg = self.store.get_registration(self.names[i], self.service)
        assert reg is not None
        st = self.ues[i].services.get(self.service)
        mine = st.fetch_time if st is not None and st.fetch_time is not None else reg.fetch_time
        return max(reg.fetch_time, mine)

    def synchronised_fetch_times(self, but: int | None = None) -> list[float]:
        """The fetch times time may not pass: those of the synchronised UEs that know when
        they are due (with the fetch time as an SRTP index, only the listening ones)."""
        by_index = self.profile["fetch_time_unit"] == "sequence_number"
        return [
            self.fetch_limit(i)
            for i in range(len(self.ues))
            if i != but and self.synchronised(i) and not (by_index and i in self.not_listening)
        ]

    def next_tek(self) -> Any:
        """The service's next TEK (the first pending one), or None."""
        pending = self.store.teks(self.service, "pending")
        return pending[0] if pending else None

    def wants_register(self, i: int) -> str | None:
        """Why the UE's client would register now, or None: it has not registered, it saw
        an unknown MKI (``refetch``; the client's trigger for that comes first, as in
        :mod:`mbmssec.impl.net.client`), its own core says the service is due, or its
        latest request got no delivery and the BM-SC's fetch time has come (the model's
        guard); and it is in coverage."""
        name = self.names[i]
        if not self.record.covered.get(name, True):
            return None
        st = self.ues[i].services.get(self.service)
        if st is None or not st.registered:
            return "initial"
        if st.saw_unknown and self.profile["unknown_mki_resync"] == "refetch":
            return "unknown_mki"
        by_index = self.profile["fetch_time_unit"] == "sequence_number"
        reg = self.store.get_registration(name, self.service)
        bmsc_due = reg is not None and reg.fetch_time <= self.now
        if (bmsc_due and by_index) or self.service in self.ues[i].due(self.now):
            return "fetch_time"
        if i in self.retry and (reg is None or not reg.registered or bmsc_due):
            return "retry"
        return None

    def may_register(self, i: int) -> bool:
        return self.wants_register(i) is not None

    # -- operations
    def subscribe(self, i: int) -> None:
        self._do(f"subscribe(UE{i})", self.core.subscribe(self.names[i], self.service, self.now))

    def revoke(self, i: int) -> None:
        self._do(f"revoke(UE{i})", self.core.revoke(self.names[i], self.service, self.now))

    def register(self, i: int, lost: bool = False, trigger: str | None = None) -> None:
        from mbmssec.impl.net.client import register_uri
        from mbmssec.impl.service.bmsc import RegisterRequest, Result
        from mbmssec.impl.service.events import UE, Event
        from mbmssec.impl.service.ue import UeError

        ue, name = self.ues[i], self.names[i]
        trigger = trigger or self.wants_register(i) or "initial"
        uri = register_uri(name, self.service, 40000 + i, trigger)
        events: list[Any] = []
        auth = ue.preemptive_authorization(uri)
        if auth is not None:
            self.authorizations.append((i, uri, auth))
        reply = self.core.register(
            RegisterRequest(name, self.service, 40000 + i, trigger, auth, "GET", uri), self.now
        )
        if auth is not None:
            self.answered[auth] = reply.code
        events += reply.events
        rounds = 0
        while reply.challenge is not None and rounds < 3:
            rounds += 1
            answer = ue.answer_challenge(reply.challenge, uri)
            self.authorizations.append((i, uri, answer))
            reply = self.core.register(
                RegisterRequest(name, self.service, 40000 + i, trigger, answer, "GET", uri),
                self.now,
            )
            self.answered[answer] = reply.code
            events += reply.events
        self.retry.add(i)
        if reply.result is Result.DELIVERED:
            deliver = next(e for e in reply.events if e.event == "Deliver")
            counter = deliver.extra["counter"]
            reg = self.store.get_registration(name, self.service)
            assert reg is not None
            if (
                reg.fetch_time <= self.now
                or abs(reg.fetch_time - deliver.extra["fetch_time"]) > 1e-6
            ):
                self.steps.append(f"register(UE{i})")
                raise Divergence(
                    f"after steps {self.steps[-5:]}: fetch time {deliver.extra['fetch_time']} "
                    f"logged, {reg.fetch_time:.6f} recorded, at {self.now:.6f}: a fetch time "
                    "must be the recorded one and after the delivery"
                )
            if lost:
                self.record.dropped[(name, self.service)] = True
                events.append(
                    Event(
                        "DeliveryLost",
                        self.now,
                        ue=name,
                        service=self.service,
                        extra={"source": UE},
                    )
                )
            else:
                try:
                    out = ue.accept_delivery(self.service, reply.mikey, self.now, trigger)
                except UeError as exc:
                    self.record.dropped[(name, self.service)] = True
                    events.append(
                        Event(
                            "Rejected",
                            self.now,
                            ue=name,
                            service=self.service,
                            ok=False,
                            reason=exc.code,
                            extra={"source": UE},
                        )
                    )
                else:
                    events.append(out.event)
                    self.retry.discard(i)
                    self.record.dropped[(name, self.service)] = False
                    self.fetch_sent[i] = (reg.fetch_time, deliver.extra.get("fetch_index"))
                    for mki in out.mkis:
                        self.record.dlv_ctr[(name, self.service, mki)] = counter
                    self.captured.append((i, reply.mikey, out.mkis))
                    self.captured_kek.append(ue.services[self.service].kek)
                    if out.verification is not None:
                        r2 = self.core.mikey_response(
                            name, self.service, out.verification, self.now
                        )
                        events += r2.events
        self.reached[f"register:{trigger}"] += 1
        self._do(f"register(UE{i}, {trigger}{', lost' if lost else ''})", events)

    def _move_clock(self, label: str, target: float, but: int | None = None) -> None:
        """Time passes up to ``target`` but not beyond a synchronised UE's fetch time (UEs
        fetch on time; ``but`` is a UE made late), and the BM-SC's timer runs."""
        limit = min(self.synchronised_fetch_times(but), default=target)
        self.now = max(self.now, min(target, limit))
        self._do(label, self.core.tick(self.now))

    def advance(self, dt: float) -> None:
        """Time passes by up to ``dt`` (see :meth:`_move_clock`)."""
        self.reached["advance"] += 1
        self._move_clock(f"advance({dt:.2f})", self.now + dt)

    def next_activation(self) -> float | None:
        """The planned activation time of the service's next TEK."""
        pending = self.store.teks(self.service, "pending")
        return pending[0].planned if pending else None

    def advance_to_activation(self) -> None:
        """Time passes to the next TEK's planned activation (see :meth:`_move_clock`)."""
        target = self.next_activation()
        if target is None:
            return
        self.reached["advance to activation"] += 1
        self._move_clock(f"advance to activation ({target:.3f})", target)

    def delay(self, i: int, beyond: bool, share: float = 0.5) -> None:
        """UE ``i`` (synchronised) fetches late: time passes its fetch time by ``share``
        (less than one) of the BM-SC's fetch grace, or beyond the grace by ``share`` of
        it.  Beyond the grace the UE is out of synchronisation first (the model's
        ``LoseCoverage``, ``RegainCoverage``)."""
        from mbmssec.impl.service.events import UE, Event

        if not 0.0 < share < 1.0:
            raise ValueError(f"share must be in (0, 1), not {share}")
        name = self.names[i]
        late = self.fetch_limit(i) + ((1.0 if beyond else 0.0) + share) * self.config.fetch_grace
        events = []
        if beyond:
            self.record.dropped[(name, self.service)] = True
            events = [
                Event(kind, self.now, ue=name, extra={"source": UE, "late_fetch": True})
                for kind in ("LoseCoverage", "RegainCoverage")
            ]
        limit = min(self.synchronised_fetch_times(but=i), default=late)
        self.now = max(self.now, min(late, limit))
        self.reached["delay beyond grace" if beyond else "delay within grace"] += 1
        label = f"delay(UE{i}, {'beyond' if beyond else 'within'} grace)"
        self._do(label, events + list(self.core.tick(self.now)))

    def impersonate(self, i: int, kind: str, k: int = 0) -> None:
        """An attacker without UE ``i``'s key registers as it (see :data:`IMPERSONATIONS`;
        ``k`` picks a captured Authorization header).  The BM-SC must refuse: the model
        has no step for it, so a delivery or authentication in answer, or any change of
        the abstraction, is a divergence."""
        from mbmssec.impl.net.client import register_uri
        from mbmssec.impl.protocols.digest import parse_challenge, respond, serialise_authorization
        from mbmssec.impl.service.bmsc import RegisterRequest

        self._do("timer", self.core.tick(self.now))  # the BM-SC's own steps come first
        name, port = self.names[i], 40000 + i
        uri = register_uri(name, self.service, port, "initial")
        events: list[Any] = []
        if kind == "wrong_res":
            reply = self.core.register(
                RegisterRequest(name, self.service, port, "initial", None, "GET", uri), self.now
            )
            events += reply.events
            if reply.challenge is None:  # refused before any challenge (not subscribed)
                self._refused(f"impersonate(UE{i}, {kind})", reply, events)
                return
            cred = respond(
                parse_challenge(reply.challenge),
                username=name,
                res=self.rng.randbytes(8),
                method="GET",
                uri=uri,
                rand=self.rng.randbytes,
            )
            header = serialise_authorization(cred)
        else:
            j, uri, header = self.authorizations[k % len(self.authorizations)]
            if kind == "replayed_authorization":
                i, name, port = j, self.names[j], 40000 + j
            elif j == i:
                return
        reply = self.core.register(
            RegisterRequest(name, self.service, port, "initial", header, "GET", uri), self.now
        )
        events += reply.events
        before = self.answered.get(header)
        self._refused(
            f"impersonate(UE{i}, {kind})",
            reply,
            events,
            f" (a header the UE sent, answered {before!r} when the UE sent it)" if before else "",
        )
        self.reached[f"impersonate:{kind}"] += 1

    def _refused(self, label: str, reply: Any, events: list[Any], what: str = "") -> None:
        """The attacker's request must be refused with no model step (see
        :meth:`impersonate`; ``what`` describes the header replayed, if one was)."""
        from mbmssec.impl.service.bmsc import Result

        self.steps.append(label)
        taken = len(self.tracker.steps)
        accepted = [e.event for e in events if e.event in ("Deliver", "Authenticate")]
        if reply.result is not Result.REFUSED or accepted:
            raise Divergence(
                f"after steps {self.steps[-5:]}: the BM-SC answered {accepted} to an "
                f"attacker's request{what}"
            )
        self._feed(events)
        if len(self.tracker.steps) != taken:
            raise Divergence(f"after steps {self.steps[-5:]}: the impersonation moved the model")
        self.check(label)

    def send(self) -> None:
        import struct

        from mbmssec.impl.protocols.srtp import MasterKey, SrtpPolicy, SrtpSender
        from mbmssec.impl.service.bmsc import MKI_LENGTH
        from mbmssec.impl.service.events import BMSC, Event

        tek = self.core.active_tek(self.service)
        assert tek is not None
        with_mki = self.profile["mki_in_srtp"] == "mandatory"
        svc = self.store.get_service(self.service)
        assert svc is not None
        if self._sender is None:
            self._sender = SrtpSender(SrtpPolicy(mki_length=MKI_LENGTH if with_mki else 0))
            self._sender.set_roc(svc.ssrc, 0)
        if self._sender_mki != tek.mki:
            for old in self._sender.mkis:
                self._sender.remove_key(old)
            wire = tek.mki.to_bytes(MKI_LENGTH, "big") if with_mki else b""
            self._sender.add_key(MasterKey(wire, tek.key, tek.salt))
            if with_mki:
                self._sender.switch_to(wire)
            self._sender_mki = tek.mki
        index = len(self.wire)
        header = struct.pack("!BBHII", 0x80, 96, index, index * 160, svc.ssrc)
        self.wire.append(self._sender.protect(header + b"MBMS" + index.to_bytes(8, "big")))
        self.core.note_stream_index(self.service, index + 1, self.now)
        self.record.packets.append((self.service, tek.mki, with_mki))
        self._do(
            f"send(P{index}, MKI {tek.mki})",
            [
                Event(
                    "Send",
                    self.now,
                    service=self.service,
                    mki=tek.mki,
                    extra={"source": BMSC, "seq": index, "index": index, "mki_in_packet": with_mki},
                )
            ],
        )

    def receive(self, i: int, p: int) -> None:
        out = self.ues[i].on_packet(self.service, self.wire[p], self.now)
        if out.ok:
            self.record.decrypted.add((self.names[i], p))
            if self.record.packets[p][1] != self.first_mki:
                self.reached["key switch"] += 1
        self._do(f"receive(UE{i}, P{p}) -> {'ok' if out.ok else out.reason}", [out.event])

    def lose_coverage(self, i: int) -> None:
        from mbmssec.impl.service.events import UE, Event

        name = self.names[i]
        self.record.covered[name] = False
        self.record.dropped[(name, self.service)] = True
        self._do(
            f"lose_coverage(UE{i})",
            [Event("LoseCoverage", self.now, ue=name, extra={"source": UE})],
        )

    def listen(self, i: int, listening: bool) -> None:
        """UE ``i`` stops (or starts again) following the SRTP streams: the model's
        ``StopListening``/``StartListening`` (sequence-number fetch times only; under
        another profile the model has no such step and none is taken), applied as the
        driver's own step since no event records it."""
        name = "StartListening" if listening else "StopListening"
        if listening:
            self.not_listening.discard(i)
        else:
            self.not_listening.add(i)
        self.steps.append(f"{'start' if listening else 'stop'}_listening(UE{i})")
        exists = any(a.name == name for a in self.tracker.model.actions)
        if exists and not self.tracker.apply(name, [(i,)]):
            raise Divergence(f"model {name}(UE{i}) not enabled; steps {self.steps}")
        self.check(self.steps[-1])

    def lose_replay_cache(self, i: int) -> None:
        """UE ``i`` restarts and loses its MIKEY replay cache (``replay_protection=
        timestamp``); the model's ``LoseReplayCache``, which no event records, is
        applied as the driver's own step.  Under a profile without a replay cache the
        restart loses nothing and the model has no such step: none is taken."""
        self.ues[i].lose_replay_cache()
        self.steps.append(f"lose_replay_cache(UE{i})")
        exists = any(a.name == "LoseReplayCache" for a in self.tracker.model.actions)
        if exists and not self.tracker.apply("LoseReplayCache", [(i,)]):
            raise Divergence(f"model LoseReplayCache(UE{i}) not enabled; steps {self.steps}")
        self.check(self.steps[-1])

    def regain_coverage(self, i: int) -> None:
        from mbmssec.impl.service.events import UE, Event

        name = self.names[i]
        self.record.covered[name] = True
        self._do(
            f"regain_coverage(UE{i})",
            [Event("RegainCoverage", self.now, ue=name, extra={"source": UE})],
        )

    def replay(self, k: int) -> None:
        """The attacker replays captured MIKEY delivery ``k`` to its UE (model: Replay of
        each TEK it carried)."""
        from mbmssec.impl.service.ue import UeError

        i, body, mkis = self.captured[k]
        ue = self.ues[i]
        st_kek = None
        if ue.auth is not None:  # the KEK the UE would open a delivery with now
            from mbmssec.impl.protocols.aka import derive_kek

            derivation = self.profile["kek_derivation"]
            st_kek = derive_kek(derivation, ue.auth.ck, ue.auth.ik, ue.ue, self.service)
        try:
            out = ue.accept_delivery(self.service, body, self.now, "replay")
            result = f"accepted {list(out.mkis)}"
        except UeError as exc:
            result = f"rejected ({exc.code})"
        self.steps.append(f"replay(UE{i}, delivery {k}) -> {result}")
        core = self.tracker.core
        teks = [self.mapper.names.teks[(self.service, mki)] for mki in mkis]
        mode = self.profile["replay_protection"]
        if mode == "counter":
            model_accepts = any(core.get("dlv_ctr", i, t) > core.get("ue_ctr", i) for t in teks)
        elif mode == "timestamp":  # inside the window and not in the replay cache
            model_accepts = any(
                core.get("in_window", i, t) and not core.get("cached", i, t) for t in teks
            )
        else:
            model_accepts = True
        # The model's Replay does not represent the KEK: a UE that no longer has the KEK
        # the delivery was made under (under reauthenticate it drops it after each
        # registration) cannot open it, so only a UE still holding that KEK is judged.
        same_kek = st_kek is not None and st_kek == self.captured_kek[k]
        accepted = result.startswith("accepted")
        if same_kek and model_accepts != accepted:
            raise Divergence(
                f"after steps {self.steps[-5:]}: the UE {result}, the model's UE "
                f"{'accepts' if model_accepts else 'rejects'} it (its counter is "
                f"{core.get('ue_ctr', i)})"
            )
        held = ue.services[self.service].keys if self.service in ue.services else {}
        if model_accepts and not accepted and not same_kek and not set(mkis) <= set(held):
            # The UE could not open the message, so it took no step, while the model's
            # Replay would give it back a TEK it has dropped since: only no step explains
            # it (the abstraction must not change, as after an impersonation).  Where
            # the UE still holds every TEK of the delivery, the model's Replay changes
            # nothing either and is taken.
            self.reached["replay the UE cannot open"] += 1
            self.check(self.steps[-1])
            return
        for mki in mkis:
            t = self.mapper.names.teks[(self.service, mki)]
            if not self.tracker.apply("Replay", [(i, t)]):
                raise Divergence(f"model Replay(UE{i}, T{t}) not enabled; steps {self.steps}")
            self.reached["Replay"] += 1
        self.check(self.steps[-1])

    def restart(self) -> None:
        """The BM-SC process restarts over its database (a variant may lose state)."""
        if self.restart_factory is not None:
            self.store, self.core, events = self.restart_factory(self)
        else:
            self.core = type(self.core)(
                self.store, self.profile, self.config, rand=self.rng.randbytes
            )
            events = []
        self.reached["restart"] += 1
        self._do("restart", events)

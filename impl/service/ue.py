"""The UE core: Digest AKA answers, TEK installation, key switching by MKI (sans-I/O).

The UE side of the MBMS key management of the proposed TS 33.246 text (6.2.2 initial
keying, 6.2.3 re-keying and activation), without network or clock: every entry point
takes the bytes received and the time ``now``; randomness comes from an injected
``rand(n) -> bytes``.  :mod:`mbmssec.impl.net.client` drives it over HTTP and UDP.

* :meth:`UeCore.answer_challenge`: the USIM checks AUTN and computes RES
  (TS 33.102 6.3.3, :func:`~mbmssec.impl.protocols.aka.usim_authenticate`), and the Digest AKA
  credentials are built (RFC 3310 3.3); a stale SQN gives the AUTS resynchronisation
  request instead (RFC 3310 3.4); a bad MAC-A (a false network) is refused.
* :meth:`UeCore.preemptive_authorization`: with ``second_service_auth=authorise_only``
  a further registration reuses the last verified nonce with the next nonce count, so
  the BM-SC only authorises (6.2.2, editor's note on a second service).
* :meth:`UeCore.accept_delivery`: the MIKEY TEK delivery is verified with the KEK
  (:func:`~mbmssec.impl.protocols.aka.derive_kek`, per ``kek_derivation``) and the replay state
  (``replay_protection``), and its TEKs, MKIs, fetch time (as a time or an SRTP index)
  and lifetime are installed; the MIKEY response (step 4b) is built when the V flag asks.
  With ``kek_scope=common`` the answer first carries the service's common KEK under the
  UE's own KEK (the UE keeps it) and the TEKs come under the common KEK.  Keys sent
  unencrypted (MIKEY Encr alg NULL) are accepted only with ``tek_protection=tls``, where
  the HTTPS connection protects them.
* :meth:`UeCore.on_packet`: an SRTP packet is decrypted with the TEK its MKI names
  (6.2.2 step 7); after a packet under a newer TEK the UE switches to it and drops the
  older TEKs of the service (6.2.3.3); an unknown MKI is reported, and with
  ``unknown_mki_resync=refetch`` may ask for a re-registration (see below).  With
  ``mki_in_srtp=optional`` the packets carry no MKI and the UE can only use its current
  TEK, the first TEK of its latest delivery.

  Anyone on the bearer can send the UE datagrams, so before any key is looked up a
  packet is refused, and counted by its reason, if it does not come from the source the
  BM-SC announced for the service's stream (``foreign_source``, when the caller says
  where it came from), is too short for SRTP or not RTP (``malformed``), is not of the
  SSRC the delivery's CS map named (``foreign_ssrc``) or is refused by the SRTP replay
  list (``replay``, RFC 3711 3.3.2): a replayed or truncated packet is never taken for
  one under an unknown MKI.  An unknown MKI asks for a re-registration only when the
  packet is of the service's stream with a plausible sequence number (at most
  :attr:`RefetchPolicy.ahead` packets beyond the highest authenticated one), and at most
  as often as :class:`RefetchPolicy` allows: exponential back-off with jitter between
  such re-fetches and a cap per minute, which only an authenticated packet under the
  MKI that caused the last re-fetch resets (a re-fetch that did its job), so that
  injected packets, which never authenticate, cannot.
* :meth:`UeCore.due`: which services must be re-fetched (the fetch time has come, or
  the stream reached the fetch SRTP index).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from mbmssec.errors import MbmssecError
from mbmssec.impl.protocols.aka import (
    AkaResponse,
    MacFailure,
    Rand,
    SyncFailure,
    UsimState,
    derive_kek,
    usim_authenticate,
)
from mbmssec.impl.protocols.digest import (
    ALGORITHM_AKAV1_MD5,
    DigestChallenge,
    DigestError,
    decode_aka_nonce,
    parse_challenge,
    respond,
    respond_resync,
    serialise_authorization,
)
from mbmssec.impl.protocols.mikey import (
    EncrAlg,
    FetchAtSrtpIndex,
    FetchAtTime,
    IdType,
    MikeyError,
    MikeyParseError,
    TimestampPayload,
    split_messages,
)
from mbmssec.impl.protocols.mikey_messages import (
    ReplayMode,
    ReplayState,
    build_verification,
    parse_and_verify,
    unix_from_ntp,
)
from mbmssec.impl.protocols.milenage import Milenage
from mbmssec.impl.protocols.srtp import (
    MasterKey,
    SrtpAuthError,
    SrtpError,
    SrtpFields,
    SrtpPolicy,
    SrtpReceiver,
    SrtpReplayError,
    UnknownMkiError,
    parse_srtp,
)
from mbmssec.impl.service.bmsc import MKI_LENGTH, check_profile
from mbmssec.impl.service.events import RECEIVE_REFUSED_UNKEYED, UE, Event, tek_id

__all__ = [
    "AuthContext",
    "DeliveryOutcome",
    "HeldKey",
    "PacketOutcome",
    "RefetchPolicy",
    "ServiceState",
    "Source",
    "UeCore",
    "UeError",
]


_REPLAY_MODES: Final = {
    "counter": ReplayMode.COUNTER,
    "timestamp": ReplayMode.TIMESTAMP,
    "none": ReplayMode.NONE,
}


Source = tuple[str, int]
"""A datagram's source: (address, UDP port)."""


@dataclass(frozen=True)
class RefetchPolicy:
    """How often an unknown MKI may make the UE re-register (``unknown_mki_resync=refetch``).

    The first re-fetch comes at once; after each one that did not bring the MKI that
    caused it, the next waits ``first_gap`` seconds, doubled each time up to ``max_gap``,
    a random share of it taken off (between a half and none, so the UEs a common cause
    sends back to the BM-SC do not come together again); and at most ``per_minute`` of
    them fall in any 60 seconds.  Only a packet under that MKI that authenticates resets
    both.  ``ahead``: how far (in packets) an unknown-MKI packet's index may lie beyond
    the highest index the UE has authenticated and still be taken as the BM-SC's."""

    first_gap: float = 1.0
    max_gap: float = 60.0
    per_minute: int = 2
    ahead: int = 4096

    def __post_init__(self) -> None:
        if not (0 < self.first_gap <= self.max_gap and math.isfinite(self.max_gap)):
            raise UeError("bad_policy", "re-fetch gaps must satisfy 0 < first_gap <= max_gap")
        if not (1 <= self.per_minute <= 600 and 1 <= self.ahead < 1 << 15):
            raise UeError("bad_policy", "per_minute must be 1 .. 600, ahead 1 .. 32767")


class UeError(MbmssecError):
    """The UE refuses what it got: ``code`` is a short reason, the message says more."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, repr=False)
class HeldKey:
    """A TEK the UE holds: MKI, key and salt (secret), and the log's TEK id."""

    service: str
    mki: int
    key: bytes
    salt: bytes

    @property
    def tek(self) -> str:
        return tek_id(self.service, self.mki)

    def __repr__(self) -> str:
        return f"HeldKey({self.service!r}, mki={self.mki})"


@dataclass(repr=False)
class AuthContext:
    """The outcome of one AKA run: the challenge, RES, CK, IK and the nonce count used."""

    challenge: DigestChallenge
    res: bytes
    ck: bytes
    ik: bytes
    nc: int
    sqn: int


@dataclass
class ServiceState:
    """What the UE knows about one service."""

    service: str
    keys: dict[int, HeldKey] = field(default_factory=dict)
    current: int | None = None
    fetch_time: float | None = None
    fetch_index: int | None = None
    lifetime: int | None = None
    ssrc: int | None = None
    receiver: SrtpReceiver | None = None
    kek: bytes | None = field(default=None, repr=False)
    """The KEK the latest TEK delivery was protected with (the UE's own, or with
    ``kek_scope=common`` the service's common KEK, which the UE keeps)."""
    saw_unknown: bool = False
    registered: bool = False
    decrypted: int = 0
    failures: int = 0
    deliveries: int = 0
    source: Source | None = None
    """Where the BM-SC announced it sends the service's stream from."""
    refused: Counter[str] = field(default_factory=Counter)
    """Packets not decrypted, by reason (the ``Receive`` reasons)."""
    refetches: int = 0
    """Re-registrations asked for because of an unknown MKI."""
    refetch_mki: int | None = None
    """The unknown MKI that caused the last of them."""
    refetch_times: list[float] = field(default_factory=list)
    refetch_gap: float = 0.0
    refetch_after: float = -math.inf

    @property
    def mkis(self) -> list[int]:
        """The MKIs held, ascending."""
        return sorted(self.keys)


@dataclass(frozen=True)
class DeliveryOutcome:
    """An installed TEK delivery: the MKIs, the next fetch point, the MIKEY response to
    send (or ``None``) and the ``Register`` event."""

    service: str
    mkis: tuple[int, ...]
    fetch_time: float | None
    fetch_index: int | None
    verification: bytes | None
    event: Event


@dataclass(frozen=True)
class PacketOutcome:
    """One SRTP packet's fate: decrypted or why not; whether to re-fetch at once."""

    ok: bool
    mki: int | None
    reason: str | None
    refetch: bool
    seq: int | None
    payload: bytes | None
    switched: bool
    event: Event


@dataclass
class UeCore:
    """One UE: its USIM (K, OPc, SQN_MS), its MIKEY replay state and its TEKs."""

    ue: str
    k: bytes
    opc: bytes
    profile: Mapping[str, str]
    sqn_ms: int = 0
    rand: Rand = os.urandom
    timestamp_skew: float = 30.0
    refetch_policy: RefetchPolicy = field(default_factory=RefetchPolicy)
    services: dict[str, ServiceState] = field(default_factory=dict, init=False)
    auth: AuthContext | None = field(default=None, init=False)
    resyncs: int = field(default=0, init=False)
    _answered: tuple[str, AkaResponse] | None = field(default=None, init=False, repr=False)
    """The last challenge the USIM accepted (its nonce) and the USIM's answer."""

    def __post_init__(self) -> None:
        check_profile(self.profile)
        self._mil = Milenage(self.k, self.opc)
        self.usim = UsimState(self.sqn_ms)
        self.replay = ReplayState(
            _REPLAY_MODES[self.profile["replay_protection"]], max_skew=self.timestamp_skew
        )
        self._with_mki = self.profile["mki_in_srtp"] == "mandatory"
        self._policy = SrtpPolicy(mki_length=MKI_LENGTH if self._with_mki else 0)

    def __repr__(self) -> str:
        return f"UeCore({self.ue!r}, sqn_ms={self.usim.sqn_ms})"

    def state(self, service: str) -> ServiceState:
        """The state of one service (created empty on first use)."""
        st = self.services.get(service)
        if st is None:
            st = self.services[service] = ServiceState(service)
        return st

    # -- Digest AKA -------------------------------------------------------------------------

    def preemptive_authorization(self, uri: str, method: str = "GET") -> str | None:
        """Credentials for a request without a new challenge, or ``None``.

        Only with ``second_service_auth=authorise_only`` and a previous AKA run: the
        last verified nonce with the next nonce count (RFC 2617 3.2.2).
        """
        if self.profile["second_service_auth"] != "authorise_only" or self.auth is None:
            return None
        self.auth.nc += 1
        cred = respond(
            self.auth.challenge,
            username=self.ue,
            res=self.auth.res,
            method=method,
            uri=uri,
            rand=self.rand,
            nc=self.auth.nc,
        )
        return serialise_authorization(cred)

    def answer_challenge(self, www_authenticate: str, uri: str, method: str = "GET") -> str:
        """The Authorization header answering a Digest AKA challenge (RFC 3310).

        The USIM verifies AUTN (TS 33.102 6.3.3): if it holds, the answer uses RES and
        CK/IK are kept for the KEK; if the SQN is not fresh, the answer is a
        resynchronisation request with AUTS.  A MAC failure raises :class:`UeError`.
        """
        try:
            challenge = parse_challenge(www_authenticate)
        except DigestError as exc:
            raise UeError("bad_challenge", f"unusable challenge: {exc}") from None
        if (challenge.algorithm or "").lower() != ALGORITHM_AKAV1_MD5.lower():
            raise UeError(
                "bad_challenge",
                f"challenge algorithm is {challenge.algorithm}, not {ALGORITHM_AKAV1_MD5}",
            )
        try:
            nonce = decode_aka_nonce(challenge.nonce)
        except DigestError as exc:
            raise UeError("bad_challenge", f"nonce is not an AKA nonce: {exc}") from None
        self.auth = None
        answered = self._answered
        try:
            if answered is not None and answered[0] == challenge.nonce:
                # The same challenge served again (the BM-SC answers a request without
                # credentials with the UE's outstanding challenge): the USIM accepted its
                # AUTN already and would now see the SQN as replayed; answer it again.
                answer = answered[1]
            else:
                answer, self.usim = usim_authenticate(self._mil, self.usim, nonce.rand, nonce.autn)
                self._answered = (challenge.nonce, answer)
        except SyncFailure as sync:
            self.resyncs += 1
            try:
                cred = respond_resync(
                    challenge,
                    username=self.ue,
                    auts=sync.auts,
                    method=method,
                    uri=uri,
                    rand=self.rand,
                )
            except DigestError as exc:
                raise UeError("bad_challenge", f"cannot answer the challenge: {exc}") from None
            return serialise_authorization(cred)
        except MacFailure:
            raise UeError(
                "network_auth_failed",
                "the network failed authentication (MAC-A of AUTN does not verify)",
            ) from None
        try:
            cred = respond(
                challenge,
                username=self.ue,
                res=answer.res,
                method=method,
                uri=uri,
                rand=self.rand,
                nc=1,
            )
        except DigestError as exc:
            raise UeError("bad_challenge", f"cannot answer the challenge: {exc}") from None
        self.auth = AuthContext(challenge, answer.res, answer.ck, answer.ik, 1, answer.sqn)
        return serialise_authorization(cred)

    # -- TEK delivery (step 4, 6.2.3.2) -------------------------------------------------------

    def accept_delivery(
        self, service: str, body: bytes, now: float, trigger: str = "initial"
    ) -> DeliveryOutcome:
        """Verify and install a MIKEY TEK delivery for ``service``.

        Raises :class:`UeError` (nothing installed, replay state unchanged) if there is
        no authentication to take the KEK from, or the message fails verification.
        """
        if self.auth is None:
            raise UeError(
                "no_kek", "a TEK delivery arrived without a completed authentication (no KEK)"
            )
        kek = derive_kek(
            self.profile["kek_derivation"], self.auth.ck, self.auth.ik, self.ue, service
        )
        delivery_kek, tek_message = kek, body
        carrier_ts: TimestampPayload | None = None
        try:
            if self.profile["kek_scope"] == "common":
                delivery_kek, tek_message, carrier_ts = self._open_group_kek(body, kek, now)
            verified = parse_and_verify(tek_message, delivery_kek, self.replay, now)
        except MikeyError as exc:
            raise UeError("bad_delivery", f"MIKEY TEK delivery rejected: {exc}") from None
        d = verified.delivery
        if carrier_ts is not None and d.timestamp != carrier_ts:
            raise UeError(
                "bad_delivery",
                "the common KEK and the TEK delivery carry different T payloads (not one answer)",
            )
        self._check_encryption(d.encr_alg)
        if d.id_r is not None and (
            d.id_r.id_type is not IdType.NAI or d.id_r.data != self.ue.encode()
        ):
            raise UeError("bad_delivery", "MIKEY TEK delivery is addressed to another UE")
        keys: list[HeldKey] = []
        for sent in d.keys:
            if sent.salt is None or len(sent.tek) != 16 or len(sent.salt) != 14:
                raise UeError("bad_delivery", "a TEK must be 16 octets with a 14-octet salt")
            if sent.mki is None or len(sent.mki) != MKI_LENGTH:
                raise UeError("bad_delivery", f"every TEK needs a {MKI_LENGTH}-octet MKI")
            keys.append(HeldKey(service, int.from_bytes(sent.mki, "big"), sent.tek, sent.salt))
        if not d.cs_map:
            raise UeError("bad_delivery", "MIKEY TEK delivery names no SRTP stream (CS map)")
        self.replay = verified.replay_state
        if self.profile["second_service_auth"] == "reauthenticate":
            self.auth = None  # one authentication, one registration
        st = self.state(service)
        st.kek = delivery_kek
        stream = d.cs_map[0]
        new_stream = st.ssrc != stream.ssrc
        st.ssrc = stream.ssrc
        for held in keys:
            st.keys.setdefault(held.mki, held)
        if self._with_mki:
            if st.receiver is None or new_stream:
                st.receiver = SrtpReceiver(self._policy)
                st.receiver.set_roc(stream.ssrc, stream.roc)
            for held in keys:
                mki = held.mki.to_bytes(MKI_LENGTH, "big")
                if mki not in st.receiver.mkis:
                    st.receiver.add_key(MasterKey(mki, held.key, held.salt))
            if st.current is None:
                st.current = keys[0].mki
        else:
            # Without MKIs the only usable key is the current one: the first delivered.
            # A delivery of the key the receiver already uses keeps the receiver, and
            # with it the replay list (RFC 3711 section 3.3.2): a fresh receiver would
            # accept again every packet it has already decrypted.
            held_now = st.keys.get(keys[0].mki)
            same_key = (
                st.receiver is not None
                and not new_stream
                and st.current == keys[0].mki
                and held_now is not None
                and (held_now.key, held_now.salt) == (keys[0].key, keys[0].salt)
            )
            st.current = keys[0].mki
            if not same_key:
                st.receiver = SrtpReceiver(
                    self._policy, [MasterKey(b"", keys[0].key, keys[0].salt)]
                )
                st.receiver.set_roc(stream.ssrc, stream.roc)
        st.fetch_time = st.fetch_index = None
        if isinstance(d.fetch, FetchAtTime):
            st.fetch_time = unix_from_ntp(d.fetch.ntp)
        elif isinstance(d.fetch, FetchAtSrtpIndex):
            st.fetch_index = d.fetch.index
        st.lifetime = d.lifetime
        st.saw_unknown = False
        st.registered = True
        st.deliveries += 1
        verification = (
            build_verification(d, kek)
            if d.v_flag and self.profile["mikey_response"] != "none"
            else None
        )
        extra: dict[str, object] = {
            "source": UE,
            "mkis": [k.mki for k in keys],
            "trigger": trigger,
            "counter": d.timestamp.value,
        }
        if st.fetch_time is not None:
            extra["fetch_time"] = round(st.fetch_time, 6)
        if st.fetch_index is not None:
            extra["fetch_index"] = st.fetch_index
        event = Event("Register", now, ue=self.ue, service=service, mki=keys[-1].mki, extra=extra)
        return DeliveryOutcome(
            service, tuple(k.mki for k in keys), st.fetch_time, st.fetch_index, verification, event
        )

    def lose_replay_cache(self) -> None:
        """The UE restarts and loses what it kept only in memory: the replay cache of
        ``replay_protection=timestamp`` (the timestamps of the messages it accepted).
        Its keys, fetch times and the counter of ``counter`` mode are stored state and
        are kept.  A delivery replayed inside the timestamp window is then accepted
        again (the model's ``LoseReplayCache``)."""
        self.replay = replace(self.replay, recent=frozenset())

    def _open_group_kek(
        self, body: bytes, kek: bytes, now: float
    ) -> tuple[bytes, bytes, TimestampPayload]:
        """``kek_scope=common``: the answer is the service's common KEK under the UE's
        own KEK, then the TEK delivery under the common KEK.  Returns the common KEK,
        the TEK delivery message (verified by the caller, with the replay state) and
        the first message's T, which the TEK delivery must repeat."""
        parts = split_messages(body)
        if len(parts) != 2:
            raise MikeyParseError(
                f"{len(parts)} MIKEY message(s); kek_scope=common sends the common KEK "
                "and the TEK delivery",
                offset=0,
                payload="HDR",
            )
        carrier = parse_and_verify(parts[0], kek, ReplayState(ReplayMode.NONE), now, group_key=True)
        self._check_encryption(carrier.delivery.encr_alg)
        group = carrier.keys[0]
        if len(group.tek) != 16 or group.salt is not None:
            raise MikeyParseError(
                "the common KEK must be 16 octets without salt", offset=0, payload="KEY DATA"
            )
        return group.tek, parts[1], carrier.delivery.timestamp

    def _check_encryption(self, encr: EncrAlg) -> None:
        """Under ``tek_protection=mikey_kek`` keys must come encrypted under the KEK; a
        NULL-encrypted delivery (keys in the clear) is refused.  Under ``tls`` the
        HTTPS connection protects them and MIKEY encryption may be NULL."""
        if encr is EncrAlg.NULL and self.profile["tek_protection"] == "mikey_kek":
            raise UeError(
                "bad_delivery",
                "MIKEY delivery carries its keys unencrypted (Encr alg NULL), but "
                "tek_protection=mikey_kek",
            )

    # -- SRTP (step 7, 6.2.3.3) ---------------------------------------------------------------

    def announce_source(self, service: str, source: Source) -> None:
        """Record where the BM-SC sends the service's stream from (it says so with each
        delivery); :meth:`on_packet` refuses datagrams from anywhere else."""
        self.state(service).source = (str(source[0]), int(source[1]))

    def on_packet(
        self, service: str, data: bytes, now: float, source: Source | None = None
    ) -> PacketOutcome:
        """Decrypt one SRTP packet of ``service``; switch key on a newer MKI.

        ``source`` is where the datagram came from; ``None`` when the caller hands over
        packets without one (the check of the announced source is then the caller's).
        A packet refused before any key is looked up, and one under an unknown MKI, is
        classified as the module docstring says."""
        st = self.state(service)
        seq = int.from_bytes(data[2:4], "big") if len(data) >= 12 else None
        payload: bytes | None = None
        switched = refetch = False
        reason, fields, index = self._unkeyed_refusal(st, data, source)
        mki = fields.mki_value if fields is not None else None
        if reason is None and st.receiver is None:
            reason = "unknown_mki" if self._with_mki else "auth_failed"
        elif reason is None and st.receiver is not None:
            try:
                payload = st.receiver.unprotect(data)
            except UnknownMkiError:
                reason = "unknown_mki"
            except SrtpAuthError:
                reason = "auth_failed"
            except SrtpReplayError:
                reason = "replay"
            except SrtpError:
                reason = "malformed"
        if reason == "unknown_mki":
            st.saw_unknown = True
            if self.profile["unknown_mki_resync"] == "refetch":
                refetch = self._may_refetch(st, mki, index, now)
        if payload is not None and self._with_mki and mki is not None:
            if st.current is None or mki != st.current:
                switched = mki != st.current
                st.current = mki
            older = [m for m in st.keys if m < mki]
            for old in older:
                del st.keys[old]
                if st.receiver is not None:
                    st.receiver.remove_key(old.to_bytes(MKI_LENGTH, "big"))
            if mki == st.refetch_mki:  # the re-fetch did its job: the back-off starts over
                st.refetch_mki, st.refetch_gap, st.refetch_after = None, 0.0, -math.inf
                st.refetch_times.clear()
        if payload is not None:
            st.decrypted += 1
        else:
            st.failures += 1
            st.refused[reason or "auth_failed"] += 1
        if not self._with_mki:
            mki = st.current if payload is not None else None
        elif reason in RECEIVE_REFUSED_UNKEYED:
            mki = None  # nothing was read under a key: the field is the sender's word
        extra: dict[str, object] = {"source": UE}
        if seq is not None:
            extra["seq"] = seq
        event = Event(
            "Receive",
            now,
            ue=self.ue,
            service=service,
            mki=mki,
            ok=payload is not None,
            reason=reason,
            extra=extra,
        )
        return PacketOutcome(
            payload is not None, mki, reason, refetch, seq, payload, switched, event
        )

    def _unkeyed_refusal(
        self, st: ServiceState, data: bytes, source: Source | None
    ) -> tuple[str | None, SrtpFields | None, int | None]:
        """Why a datagram is refused before any key is looked up (or ``None``), its clear
        SRTP fields if it has them, and its index if the replay list was consulted."""
        if source is not None and source != st.source:
            return "foreign_source", None, None
        try:
            fields = parse_srtp(data, self._policy)
        except SrtpError:
            return "malformed", None, None
        if st.ssrc is not None and fields.ssrc != st.ssrc:
            return "foreign_ssrc", fields, None
        if st.receiver is None:
            return None, fields, None
        try:
            return None, fields, st.receiver.replay_check(fields.ssrc, fields.seq)
        except SrtpReplayError:
            return "replay", fields, None
        except SrtpError:  # the 48-bit index space exhausted
            return "malformed", fields, None

    def _may_refetch(
        self, st: ServiceState, mki: int | None, index: int | None, now: float
    ) -> bool:
        """Whether an unknown MKI asks for a re-registration now (:class:`RefetchPolicy`):
        the packet must be of the stream a delivery named, with a plausible index, and the
        back-off and the cap per minute must allow it; a re-fetch allowed is recorded."""
        pol = self.refetch_policy
        if not st.registered or st.receiver is None or st.ssrc is None or mki is None:
            return False
        highest = st.receiver.highest_index(st.ssrc)
        if highest is not None and index is not None and index > highest + pol.ahead:
            return False
        st.refetch_times = [t for t in st.refetch_times if now - t < 60.0]
        if now < st.refetch_after or len(st.refetch_times) >= pol.per_minute:
            return False
        st.refetch_times.append(now)
        st.refetch_gap = (
            pol.first_gap if st.refetch_gap <= 0 else min(pol.max_gap, 2 * st.refetch_gap)
        )
        share = int.from_bytes(self.rand(4), "big") / 2**32
        st.refetch_after = now + st.refetch_gap * (1.0 - share / 2)
        st.refetch_mki = mki
        st.refetches += 1
        return True

    # -- re-fetching (6.2.3.2) --------------------------------------------------------------

    def due(self, now: float) -> list[str]:
        """Services whose next TEK is due to be fetched now."""
        out = []
        for st in self.services.values():
            if not st.registered:
                continue
            if st.fetch_time is not None and st.fetch_time <= now:
                out.append(st.service)
            elif st.fetch_index is not None and st.receiver is not None and st.ssrc is not None:
                highest = st.receiver.highest_index(st.ssrc)
                if highest is not None and highest >= st.fetch_index:
                    out.append(st.service)
        return out

    def next_fetch_time(self) -> float | None:
        """The earliest fetch time of any registered service (``None`` if index-based)."""
        times = [
            st.fetch_time
            for st in self.services.values()
            if st.registered and st.fetch_time is not None
        ]
        return min(times) if times else None

    def fetch_started(self, service: str) -> None:
        """Forget the due fetch point while a re-registration runs (it brings a new one)."""
        st = self.state(service)
        st.fetch_time = None
        st.fetch_index = None

"""The BM-SC core: registration, HSS/AuC, TEK schedule and MIKEY delivery (sans-I/O).

This is the Broadcast-Multicast Service Centre of the MBMS key management in the
proposed TS 33.246 text, clauses 6.2.2 (initial keying) and 6.2.3 (re-keying and
activation), without any network or clock of its own: every entry point takes the
request's data, the time ``now`` (Unix seconds) and uses an injected random source
``rand(n) -> bytes``; :mod:`mbmssec.impl.net.server` puts it behind HTTP and UDP.

Roles
-----
* **HSS/AuC** (TS 33.102 6.3): subscribers' K, OPc and SQN live in the
  :class:`~mbmssec.impl.service.store.Store`; every challenge takes the next SQN in its own
  committed transaction and builds a vector with
  :func:`~mbmssec.impl.protocols.aka.generate_vector`.
  AUTS resynchronisation (TS 33.102 6.3.5) raises the SQN to the USIM's SQN_MS.
* **Registration** (6.2.2 steps 2-4, 6.2.3.2): ``GET /mbms/register?ue=..&service=..&port=..``
  is answered with an HTTP Digest AKA challenge (RFC 3310; a
  :attr:`Refusal.UNAUTHENTICATED` outcome carrying it, which
  :mod:`mbmssec.impl.net.api` turns into ``401`` + ``WWW-Authenticate``); the answer is
  verified, the authorisation database is checked, and the outcome carries the MIKEY TEK
  delivery.  No work before authentication: a request without credentials gets the
  UE's outstanding challenge again if it has one (no SQN taken, nothing written), an
  unknown UE a decoy of the same shape (nothing stored), and whether the service exists
  or the UE may use it is answered only once the UE has authenticated; a wrong answer
  is counted against its nonce, which only ``nonce_failures`` of them invalidate.
  Per UE, the BM-SC creates at most ``max_challenges`` new vectors and makes at most
  ``max_deliveries`` TEK deliveries within any ``rate_window`` seconds; beyond either, a
  request of that UE is refused :attr:`Refusal.RATE_LIMITED` (``429``) with the seconds
  after which it may come back (``Retry-After``), before any work.  The counts live in
  memory (a restart forgets them) and only a subscriber's own authenticated deliveries
  and its challenges count, so no one can hold a UE back by asking in its name more
  than by burning its challenges.  The
  delivery is an RFC 3830 pre-shared-key I_MESSAGE under
  the UE's KEK: the active TEK and the next one(s), each with its MKI, the time (or
  SRTP index) to fetch the next TEK and, if configured, a TEK lifetime.
* **MIKEY response** (step 4b): ``POST /mbms/mikey-response?ue=..&service=..`` with the
  verification message; recorded as an acknowledgement of the delivered TEKs.
* **TEK schedule** (6.2.3.1-6.2.3.3): per service one active TEK and the next one(s)
  generated ahead with fresh MKIs; a next TEK is activated at its planned time when the
  activation rule allows; a revocation may withdraw a next TEK the leaver already got.
* **Authorisation database**: subscribe and revoke.

Options
-------
The BM-SC is configured by a :class:`~mbmssec.spec.loader.Profile` and honours:
``kek_derivation`` (KEK = CK, or derived per UE and service with
:func:`~mbmssec.impl.protocols.aka.derive_kek`); ``second_service_auth`` (``reauthenticate``: a
nonce is good for one registration; ``authorise_only``: a verified nonce stays good,
with a growing nonce count, for further registrations, also for other services, until
it is ``nonce_lifetime`` old); ``fetch_time_unit`` (fetch time as NTP time or as an SRTP
packet index); ``tek_lifetime``; ``mikey_response`` (V flag set unless ``none``);
``activation`` (``after_fetch_window``: a next TEK activates at its planned time once
every registered UE got it or is past its fetch time; ``after_acks``: likewise with
MIKEY responses; ``immediate``: at its planned time unconditionally);
``membership_rekey`` (``leave``: a revocation withdraws the next TEK(s) the leaver got
and generates replacements; ``join``: a UE is sent the active TEK only if it was
activated after the UE's first subscription; ``both``; ``never``);
``replay_protection`` (MIKEY T payload: a per-UE COUNTER, or an NTP time stamp);
``mki_in_srtp`` (read by the data plane: MKI in every packet, or none);
``fetch_spreading`` (``none``: every UE at the window start; ``random_interval``:
uniform in the window; ``scheduled_slots``: evenly by join order; ``multi_key``:
``multi_key_depth`` next TEKs per delivery, fetched once per that many periods, at a
random point of the window); ``kek_scope`` (``per_ue``: each delivery is protected
with the UE's own KEK; ``common``: the service has one KEK, created with it and kept in
the store, under which every UE's TEK deliveries are protected; each registration's
answer is two MIKEY messages, the common KEK under the UE's own KEK, then the TEK
delivery under the common KEK, see :meth:`BmscCore._deliver`); ``tek_protection``
(``mikey_kek``: the Key data is encrypted under the KEK; ``tls``: MIKEY encryption is
NULL and the confidentiality of the TEKs rests on the HTTPS connection the server
answers on, :mod:`mbmssec.impl.net.tls`; the MIKEY MAC under the KEK still binds the
delivery to the UE's authentication and carries the replay protection).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final

from mbmssec.errors import MbmssecError
from mbmssec.impl.protocols.aka import (
    SQN_MAX,
    AutsMacFailure,
    Rand,
    auc_resync,
    derive_kek,
    generate_vector,
)
from mbmssec.impl.protocols.digest import (
    ALGORITHM_AKAV1_MD5,
    QOP_AUTH,
    DigestAuthError,
    DigestBindingError,
    DigestChallenge,
    DigestParseError,
    DigestStaleError,
    encode_aka_nonce,
    make_aka_challenge,
    parse_authorization,
    serialise_challenge,
    verify_response,
    verify_resync,
)
from mbmssec.impl.protocols.mikey import (
    EncrAlg,
    FetchAtSrtpIndex,
    FetchAtTime,
    IdPayload,
    IdType,
    MikeyAuthError,
    MikeyError,
    SrtpCs,
    TimestampPayload,
    TsType,
)
from mbmssec.impl.protocols.mikey_messages import (
    TekDelivery,
    TekKey,
    build_tek_delivery,
    new_tek_delivery,
    ntp_from_unix,
    verify_verification,
)
from mbmssec.impl.protocols.milenage import Milenage
from mbmssec.impl.service import spreading
from mbmssec.impl.service.events import BMSC, Event, tek_id
from mbmssec.impl.service.spreading import FetchSpreading
from mbmssec.impl.service.store import (
    Challenge,
    Registration,
    Service,
    Store,
    StoreError,
    Subscriber,
    Subscription,
    TekRow,
)
from mbmssec.spec.loader import Profile, load_spec

__all__ = [
    "MAX_BODY",
    "MKI_LENGTH",
    "REGISTER_PATH",
    "RESPONSE_PATH",
    "TRIGGERS",
    "BmscConfig",
    "BmscCore",
    "BmscError",
    "Outcome",
    "Refusal",
    "RegisterRequest",
    "Result",
    "check_profile",
    "parse_register_query",
    "validate_service",
    "validate_ue",
]


REGISTER_PATH: Final = "/mbms/register"
"""HTTP path of registration and re-registration (6.2.2 step 2, 6.2.3.2)."""

_WRONG_RES: Final = "authentication failed: the response does not match (wrong RES)"

RESPONSE_PATH: Final = "/mbms/mikey-response"
"""HTTP path of the MIKEY response (6.2.2 step 4b)."""

MKI_LENGTH: Final = 4
"""Octets of MKI in MIKEY key validity data and in every SRTP packet."""

MAX_BODY: Final = 4096
"""Largest MIKEY response body accepted (a verification message is under 100 octets)."""

TRIGGERS: Final = ("initial", "fetch_time", "unknown_mki", "retry")
"""Why a UE registers (the ``reason`` query parameter)."""


_UE_RE = re.compile(r"[0-9A-Za-z._@+-]{1,64}")
_SERVICE_RE = re.compile(r"[0-9A-Za-z.:_-]{1,64}")
_SRTP_BLOCK = 1000  # SRTP indices reserved per committed step


class Refusal(StrEnum):
    """Why the core refused a request or an operation, independent of any transport.

    :mod:`mbmssec.impl.net.api` maps each kind to an HTTP status; the core never sees
    one."""

    MALFORMED = "malformed"
    """The input is not well formed or out of range."""
    UNAUTHENTICATED = "unauthenticated"
    """Authentication is needed or failed in a way the UE can retry: a challenge is
    attached."""
    FORBIDDEN = "forbidden"
    """Authenticated but not allowed: wrong identity, failed digest, not subscribed."""
    UNKNOWN = "unknown"
    """No such subscriber, service or feature."""
    CONFLICT = "conflict"
    """The request contradicts the stored state (exists already, nothing pending)."""
    TOO_LARGE = "too_large"
    """The input exceeds a size limit."""
    UNAVAILABLE = "unavailable"
    """The BM-SC cannot serve it now (no TEK yet, SQN space exhausted)."""
    RATE_LIMITED = "rate_limited"
    """Too many requests of this UE for now: ``retry_after`` says when to come back."""


class BmscError(MbmssecError):
    """A refused request or operation: its ``refusal`` kind, ``code`` (short reason) and
    a message for the user.  ``challenge`` is the serialised Digest AKA challenge (RFC
    3310) that a :attr:`Refusal.UNAUTHENTICATED` refusal carries; ``retry_after`` the
    seconds after which a :attr:`Refusal.RATE_LIMITED` request may come back."""

    def __init__(
        self,
        refusal: Refusal,
        code: str,
        message: str,
        challenge: str | None = None,
        events: tuple[Event, ...] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.code = code
        self.message = message
        self.challenge = challenge
        self.events = events
        self.retry_after = retry_after


def check_profile(profile: Mapping[str, str]) -> None:
    """Reject a profile that does not give every option of spec/options.toml one of its
    declared values (the BM-SC and the UE implement every declared value), naming each
    offending option and its values."""
    spec = profile.spec if isinstance(profile, Profile) else load_spec()
    bad = []
    for name, opt in spec.options.items():
        value = profile.get(name)
        if value not in opt.values:
            bad.append(f"{name}={value} (declared: {', '.join(opt.values)})")
    if bad:
        raise BmscError(
            Refusal.MALFORMED,
            "bad_profile",
            "the profile gives options undeclared values: " + "; ".join(bad),
        )


def validate_ue(ue: object) -> str:
    """A UE identity (IMSI or NAI-like): 1-64 characters of ``[0-9A-Za-z._@+-]``."""
    if not isinstance(ue, str) or not _UE_RE.fullmatch(ue):
        raise BmscError(
            Refusal.MALFORMED,
            "bad_ue",
            "parameter 'ue' must be 1-64 characters of [0-9A-Za-z._@+-]",
        )
    return ue


def validate_service(service: object) -> str:
    """A service name (its multicast address as text): 1-64 of ``[0-9A-Za-z.:_-]``."""
    if not isinstance(service, str) or not _SERVICE_RE.fullmatch(service):
        raise BmscError(
            Refusal.MALFORMED,
            "bad_service",
            "parameter 'service' must be 1-64 characters of [0-9A-Za-z.:_-]",
        )
    return service


@dataclass(frozen=True)
class BmscConfig:
    """Timing and naming of one BM-SC (the options are in the profile).

    ``period``: default TEK period of a new service (seconds).  ``fetch_window``: the
    share of the period in which UEs fetch the next TEK, starting ``fetch_delay``
    seconds after the previous TEK's activation.  ``multi_key_depth``: next TEKs kept
    and delivered at once under ``fetch_spreading=multi_key`` (1 otherwise).
    ``nonce_lifetime``: seconds a Digest nonce is accepted.  ``fetch_grace``: how long
    after its fetch time a registered UE that has not fetched the next TEK still holds up
    its activation; it covers the request's transit, so that a UE fetching on time is
    never overtaken by the activation (the model's assumption that synchronised UEs
    fetch at their fetch time, 6.2.3.3).  ``packet_rate``: SRTP
    packets per second, to turn a fetch time into an SRTP index.  ``amf``: the AMF of
    vectors.  ``bmsc_uri``: the BM-SC's MIKEY identity (IDi).  ``nonce_failures``: wrong
    answers a pending challenge survives before it is invalidated (so one wrong answer
    from an observer does not cancel the UE's authentication).  ``rate_window``,
    ``max_deliveries``, ``max_challenges``: per UE, at most that many TEK deliveries and
    new challenges within any ``rate_window`` seconds (a UE fetching once a period asks
    for a few each period: the defaults leave room for a period of 0.5 s and several
    services).
    """

    realm: str = "bmsc.mbms.example"
    bmsc_uri: str = "http://bmsc.mbms.example/"
    period: float = 1.0
    fetch_window: float = 0.6
    fetch_delay: float = 0.05
    multi_key_depth: int = 3
    nonce_lifetime: float = 300.0
    packet_rate: float = 50.0
    amf: bytes = b"\x00\x00"
    timestamp_skew: float = 30.0
    fetch_grace: float = 0.2
    nonce_failures: int = 3
    rate_window: float = 10.0
    max_deliveries: int = 40
    max_challenges: int = 40

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fetch_grace) and 0.0 <= self.fetch_grace <= self.period):
            raise BmscError(
                Refusal.MALFORMED, "bad_config", "fetch_grace must be 0 .. period seconds"
            )
        if not (math.isfinite(self.period) and 0.05 <= self.period <= 86_400):
            raise BmscError(Refusal.MALFORMED, "bad_config", "period must be 0.05 .. 86400 seconds")
        if not (0.0 < self.fetch_window < 1.0):
            raise BmscError(
                Refusal.MALFORMED, "bad_config", "fetch_window must be a share in (0, 1)"
            )
        if not (0.0 <= self.fetch_delay < self.period * (1 - self.fetch_window)):
            raise BmscError(
                Refusal.MALFORMED,
                "bad_config",
                "fetch_delay must leave the fetch window inside the period",
            )
        if not 1 <= self.multi_key_depth <= 16:
            raise BmscError(Refusal.MALFORMED, "bad_config", "multi_key_depth must be 1 .. 16")
        if not (self.nonce_lifetime > 0 and self.packet_rate > 0):
            raise BmscError(
                Refusal.MALFORMED, "bad_config", "nonce_lifetime and packet_rate must be > 0"
            )
        if len(self.amf) != 2:
            raise BmscError(Refusal.MALFORMED, "bad_config", "amf must be 2 octets")
        if not 1 <= self.nonce_failures <= 100:
            raise BmscError(Refusal.MALFORMED, "bad_config", "nonce_failures must be 1 .. 100")
        if not (
            math.isfinite(self.rate_window)
            and 0 < self.rate_window <= 3600
            and 1 <= self.max_deliveries <= 100_000
            and 1 <= self.max_challenges <= 100_000
        ):
            raise BmscError(
                Refusal.MALFORMED,
                "bad_config",
                "rate_window must be 0 .. 3600 seconds, max_deliveries and max_challenges "
                "1 .. 100000",
            )


@dataclass(frozen=True)
class RegisterRequest:
    """A parsed registration request: identity, service, stream port, trigger, and the
    request's method, target (for the Digest ``uri``) and Authorization header."""

    ue: str
    service: str
    port: int
    trigger: str = "initial"
    authorization: str | None = None
    method: str = "GET"
    uri: str = REGISTER_PATH


def parse_register_query(query: Mapping[str, str]) -> tuple[str, str, int, str]:
    """Check the registration query (``ue``, ``service``, ``port``, optional ``reason``)."""
    unknown = sorted(set(query) - {"ue", "service", "port", "reason"})
    if unknown:
        raise BmscError(
            Refusal.MALFORMED, "bad_parameter", f"unknown query parameter(s): {', '.join(unknown)}"
        )
    for name in ("ue", "service", "port"):
        if name not in query:
            raise BmscError(
                Refusal.MALFORMED, "missing_parameter", f"query parameter {name!r} is required"
            )
    ue = validate_ue(query["ue"])
    service = validate_service(query["service"])
    port_text = query["port"]
    if not (
        port_text.isascii()
        and port_text.isdigit()
        and len(port_text) <= 5
        and 1 <= int(port_text) <= 65535
    ):
        raise BmscError(
            Refusal.MALFORMED, "bad_port", "parameter 'port' must be a UDP port 1-65535"
        )
    trigger = query.get("reason", "initial")
    if trigger not in TRIGGERS:
        raise BmscError(
            Refusal.MALFORMED,
            "bad_reason",
            f"parameter 'reason' must be one of {', '.join(TRIGGERS)}",
        )
    return ue, service, int(port_text), trigger


class Result(StrEnum):
    """What a request to the core came to."""

    DELIVERED = "delivered"
    """A MIKEY TEK delivery (RFC 3830 I_MESSAGE) for the UE is in ``mikey``."""
    ACKNOWLEDGED = "acknowledged"
    """A MIKEY verification message was accepted."""
    REFUSED = "refused"
    """The request was refused: see ``refusal``, ``code`` and ``message``."""


@dataclass(frozen=True)
class Outcome:
    """The typed outcome of a request: what happened, the MIKEY bytes to send (if any),
    the refusal and challenge (if refused), and the events to log."""

    result: Result
    code: str
    message: str
    mikey: bytes = b""
    refusal: Refusal | None = None
    challenge: str | None = None
    events: tuple[Event, ...] = ()
    retry_after: float | None = None

    @staticmethod
    def refused(exc: BmscError, events: tuple[Event, ...] = ()) -> Outcome:
        """The outcome of a refusal."""
        return Outcome(
            Result.REFUSED,
            exc.code,
            exc.message,
            b"",
            exc.refusal,
            exc.challenge,
            events,
            exc.retry_after,
        )


@dataclass
class _StreamPosition:
    index: int
    t: float


@dataclass
class _RateLimit:
    """At most ``limit`` events per key within any ``window`` seconds (in memory)."""

    what: str
    window: float
    limit: int
    times: dict[str, deque[float]] = field(default_factory=dict)

    def check(self, key: str, now: float) -> None:
        """Refuse :attr:`Refusal.RATE_LIMITED` if ``key`` is at its limit now."""
        times = self.times.get(key)
        if times is None:
            return
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            wait = max(0.0, times[0] + self.window - now)
            raise BmscError(
                Refusal.RATE_LIMITED,
                "rate_limited",
                f"{self.limit} {self.what} for {key} within {self.window:g} s; come back "
                f"in {math.ceil(wait)} s",
                retry_after=wait,
            )

    def record(self, key: str, now: float) -> None:
        self.times.setdefault(key, deque()).append(now)


@dataclass
class BmscCore:
    """The BM-SC's logic over a :class:`Store`; every method takes ``now``.

    Construct with the store, the profile (checked with :func:`check_profile` and
    recorded in the database: reopening a database with another profile is refused) and
    a :class:`BmscConfig`.  ``rand`` is the random source for vectors, keys, MIKEY RAND.
    """

    store: Store
    profile: Profile
    config: BmscConfig = field(default_factory=BmscConfig)
    rand: Rand = os.urandom
    _positions: dict[str, _StreamPosition] = field(default_factory=dict, init=False)
    _purged: float = field(default=0.0, init=False)
    _idle_stamp: tuple[int, int] | None = field(default=None, init=False)
    """The schedule's stamp (:meth:`Store.schedule_stamp`) when :meth:`tick` last found
    nothing due; with ``_idle_until``, the time before which nothing can be."""
    _idle_until: float = field(default=-math.inf, init=False)
    _decoy_key: bytes | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        check_profile(self.profile)
        cfg = self.config
        self._delivery_limit = _RateLimit("TEK deliveries", cfg.rate_window, cfg.max_deliveries)
        self._challenge_limit = _RateLimit("new challenges", cfg.rate_window, cfg.max_challenges)
        wanted = json.dumps(dict(self.profile), sort_keys=True)
        with self.store.transaction():
            recorded = self.store.get_meta("profile")
            if recorded is None:
                self.store.set_meta("profile", wanted)
            elif recorded != wanted:
                old = json.loads(recorded)
                diff = ", ".join(
                    f"{k}={old.get(k)}" for k in sorted(old) if old.get(k) != self.profile[k]
                )
                raise BmscError(
                    Refusal.MALFORMED,
                    "profile_mismatch",
                    f"{self.store.path} was created with a different profile "
                    f"({diff}); start the BM-SC with the same options",
                )

    # -- profile shorthands -------------------------------------------------------------

    def _opt(self, name: str) -> str:
        return self.profile[name]

    def _rekey_on(self, change: str) -> bool:
        return self._opt("membership_rekey") in (change, "both")

    @property
    def depth(self) -> int:
        """How many next TEKs the schedule keeps ahead of the active one."""
        return spreading.fetch_period(self._opt(spreading.OPTION), self.config.multi_key_depth)

    # -- administration -----------------------------------------------------------------

    def add_subscriber(
        self, ue: str, k: bytes, opc: bytes, sqn: int = 0, now: float = 0.0
    ) -> list[Event]:
        """Provision a subscriber in the HSS/AuC (K, OPc: 16 octets; initial SQN); the
        ``Provision`` event names the UE and SQN, never a key."""
        validate_ue(ue)
        if not (
            isinstance(k, bytes) and len(k) == 16 and isinstance(opc, bytes) and len(opc) == 16
        ):
            raise BmscError(Refusal.MALFORMED, "bad_key", "K and OPc must be 16 octets each")
        if isinstance(sqn, bool) or not isinstance(sqn, int) or not 0 <= sqn < SQN_MAX:
            raise BmscError(Refusal.MALFORMED, "bad_sqn", "SQN must be an integer in 0 .. 2^48-2")
        with self.store.transaction():
            if self.store.get_subscriber(ue) is not None:
                raise BmscError(Refusal.CONFLICT, "exists", f"subscriber {ue} already exists")
            self.store.add_subscriber(ue, k, opc, sqn)
        return [Event("Provision", now, ue=ue, extra={"source": BMSC, "sqn": sqn})]

    def add_service(self, service: str, now: float, period: float | None = None) -> list[Event]:
        """Create a service with its first (active) TEK and the next one(s)."""
        validate_service(service)
        period = self.config.period if period is None else period
        if not (
            isinstance(period, int | float) and math.isfinite(period) and 0.05 <= period <= 86_400
        ):
            raise BmscError(Refusal.MALFORMED, "bad_period", "period must be 0.05 .. 86400 seconds")
        if self.config.fetch_delay >= period * (1 - self.config.fetch_window):
            raise BmscError(
                Refusal.MALFORMED, "bad_period", "period too short for the fetch window"
            )
        with self.store.transaction():
            if self.store.get_service(service) is not None:
                raise BmscError(Refusal.CONFLICT, "exists", f"service {service} already exists")
            ids = self.rand(8)
            self.store.add_service(
                service,
                ssrc=int.from_bytes(ids[:4], "big"),
                csb_id=int.from_bytes(ids[4:], "big"),
                period=float(period),
                now=now,
            )
            if self._opt("kek_scope") == "common":
                self.store.put_group_kek(service, self.rand(16))
            return self._advance(service, now)

    def subscribe(self, ue: str, service: str, now: float) -> list[Event]:
        """Authorise the UE for the service (a join); a no-op if already authorised."""
        self._known(ue, service)
        with self.store.transaction():
            sub = self.store.get_subscription(ue, service)
            if sub is not None and sub.subscribed:
                return []
            ev = self.store.next_ev()
            self.store.put_subscription(
                Subscription(
                    ue,
                    service,
                    True,
                    sub.join_ev if sub is not None else ev,
                    sub.revoke_ev if sub is not None else None,
                )
            )
        return [Event("Subscribe", now, ue=ue, service=service, extra={"source": BMSC})]

    def revoke(self, ue: str, service: str, now: float) -> list[Event]:
        """Withdraw the UE's authorisation (a leave); a no-op if not authorised.

        With re-keying on leave, the next TEK(s) already delivered to the leaver are
        withdrawn (with every later next TEK, so activation keeps MKI order) and new
        ones generated, so the leaver never sees a TEK it holds activated.
        """
        self._known(ue, service)
        events: list[Event] = []
        with self.store.transaction():
            sub = self.store.get_subscription(ue, service)
            if sub is None or not sub.subscribed:
                return []
            self.store.lock_service(service)  # the schedule changes with the leave
            ev = self.store.next_ev()
            self.store.put_subscription(Subscription(ue, service, False, sub.join_ev, ev))
            self.store.set_registered(ue, service, False)
            withdrawn: list[TekRow] = []
            if self._rekey_on("leave"):
                pending = self.store.teks(service, "pending")
                first = next(
                    (i for i, t in enumerate(pending) if self.store.was_delivered(ue, t.id)), None
                )
                if first is not None:
                    withdrawn = pending[first:]
                    for tek in withdrawn:
                        self.store.set_tek_state(tek.id, "withdrawn", end_t=now)
            events.append(
                Event(
                    "Revoke",
                    now,
                    ue=ue,
                    service=service,
                    extra={"source": BMSC, "withdrawn": [t.mki for t in withdrawn]},
                )
            )
            events += [
                Event(
                    "Withdraw",
                    now,
                    service=service,
                    mki=t.mki,
                    reason="membership_rekey_leave",
                    extra={"source": BMSC},
                )
                for t in withdrawn
            ]
            events += self._advance(service, now)
        return events

    def _known(self, ue: str, service: str) -> None:
        validate_ue(ue)
        validate_service(service)
        if self.store.get_subscriber(ue) is None:
            raise BmscError(Refusal.UNKNOWN, "unknown_ue", f"unknown subscriber {ue}")
        self._known_service(service)

    def _known_service(self, service: str) -> None:
        if self.store.get_service(service) is None:
            raise BmscError(Refusal.UNKNOWN, "unknown_service", f"unknown service {service}")

    # -- TEK schedule ---------------------------------------------------------------------

    def tick(self, now: float) -> list[Event]:
        """Generate and activate TEKs that are due (6.2.3.1-6.2.3.3); purge old nonces.
        Only in the process that runs the schedule (:meth:`Store.leads`)."""
        events: list[Event] = []
        if not self.store.leads():
            return events
        stamp = self.store.schedule_stamp()
        if stamp is None or stamp != self._idle_stamp or now >= self._idle_until:
            # Read the schedule; if nothing is due, nothing can be before the first
            # planned activation unless the schedule changes (which changes the stamp).
            self._idle_stamp = None
            until = math.inf
            for svc, teks in self.store.schedules():
                if self._due(svc, teks, now):
                    with self.store.transaction():
                        events += self._advance(svc.service, now)
                    until = -math.inf
                else:
                    pending = [t for t in teks if t.state == "pending"]
                    planned = pending[0].planned if pending else -math.inf
                    until = min(until, planned if now < planned else -math.inf)
            if stamp is not None and until > now:
                self._idle_stamp, self._idle_until = stamp, until
        if now - self._purged > 60.0:
            self._purged = now
            with self.store.transaction():
                self.store.purge_challenges(now - 2 * self.config.nonce_lifetime)
        return events

    def _due(self, svc: Service, teks: list[TekRow], now: float) -> bool:
        """Whether the schedule of ``svc`` (its active and pending ``teks``, by MKI) has
        something to do at ``now``."""
        active = [t for t in teks if t.state == "active"]
        pending = [t for t in teks if t.state == "pending"]
        if not active or len(pending) < self.depth:
            return True
        return now >= pending[0].planned and self._may_activate(svc.service, pending[0], now)

    def _may_activate(self, service: str, tek: TekRow, now: float) -> bool:
        rule = self._opt("activation")
        if rule == "immediate":
            return True
        evidence = "delivered" if rule == "after_fetch_window" else "acked"
        since = now - self.config.fetch_grace
        return not self.store.blocking_ues(service, tek.id, since, evidence, limit=1)

    def _generate(self, svc: Service, planned: float, now: float) -> tuple[TekRow, Event]:
        mki = self.store.take_mki(svc.service)
        if mki >= 1 << (8 * MKI_LENGTH):
            raise StoreError(f"service {svc.service}: the {MKI_LENGTH}-octet MKI space is used up")
        key, salt = self.rand(16), self.rand(14)
        tek = self.store.insert_tek(
            service=svc.service,
            mki=mki,
            key=key,
            salt=salt,
            state="pending",
            gen_ev=self.store.next_ev(),
            gen_t=now,
            planned=planned,
        )
        return tek, Event(
            "Generate",
            now,
            service=svc.service,
            mki=mki,
            extra={"source": BMSC, "planned": round(planned, 6)},
        )

    def _advance(self, service: str, now: float) -> list[Event]:
        """Inside a transaction: bring one service's schedule up to ``now``."""
        svc = self.store.lock_service(service)
        assert svc is not None
        events: list[Event] = []
        active = self.store.teks(service, "active")
        pending = self.store.teks(service, "pending")
        if not active:  # a new service: its first TEK is active at once
            if not pending:
                tek, event = self._generate(svc, now, now)
                events.append(event)
                pending = [tek]
            events.append(self._activate(pending[0], None, now))
            pending = pending[1:]
            active = self.store.teks(service, "active")
        elif pending and now >= pending[0].planned and self._may_activate(service, pending[0], now):
            events.append(self._activate(pending[0], active[0], now))
            active = [pending[0]]
            pending = pending[1:]
            for i, tek in enumerate(pending, start=1):
                self.store.set_planned(tek.id, now + i * svc.period)
            pending = self.store.teks(service, "pending")
        act = self.store.teks(service, "active")[0]
        while len(pending) < self.depth:
            base = pending[-1].planned if pending else (act.act_t or now)
            tek, event = self._generate(svc, base + svc.period, now)
            events.append(event)
            pending.append(tek)
        return events

    def _activate(self, tek: TekRow, old: TekRow | None, now: float) -> Event:
        if old is not None:
            self.store.set_tek_state(old.id, "retired", end_t=now)
        self.store.set_tek_state(tek.id, "active", act_ev=self.store.next_ev(), act_t=now)
        return Event(
            "Activate",
            now,
            service=tek.service,
            mki=tek.mki,
            extra={
                "source": BMSC,
                "activation": self._opt("activation"),
                "late": round(max(0.0, now - tek.planned), 6),
            },
        )

    # -- HSS/AuC and Digest AKA -----------------------------------------------------------

    def _challenge(
        self, sub: Subscriber, now: float, *, stale: bool = False
    ) -> tuple[DigestChallenge, Event]:
        """Take the subscriber's next SQN, build a vector and a challenge, and store it
        (one commit, not fsynced: it is the unauthenticated path, see :class:`Store`).
        ``sub`` gives K and OPc (never changed once provisioned); the SQN is taken, and
        checked, inside the transaction."""
        ue = sub.ue
        with self.store.transaction(sync=False):
            try:
                sqn = self.store.take_sqn(ue)
            except StoreError:
                raise BmscError(Refusal.UNKNOWN, "unknown_ue", f"unknown subscriber {ue}") from None
            if sqn > SQN_MAX:  # raised inside the transaction: the SQN is not taken
                raise BmscError(
                    Refusal.UNAVAILABLE, "sqn_exhausted", f"subscriber {ue} has no SQN left"
                )
            vector = generate_vector(
                Milenage(sub.k, sub.opc), sqn=sqn, amf=self.config.amf, rand=self.rand
            )
            challenge = make_aka_challenge(
                vector, realm=self.config.realm, now=now, rand=self.rand, stale=stale
            )
            self.store.put_challenge(
                Challenge(
                    nonce=challenge.nonce,
                    ue=ue,
                    rand=vector.rand,
                    xres=vector.xres,
                    ck=vector.ck,
                    ik=vector.ik,
                    opaque=challenge.opaque or "",
                    sqn=sqn,
                    issued=now,
                    state="pending",
                    max_nc=0,
                )
            )
        return challenge, Event("Challenge", now, ue=ue, extra={"source": BMSC, "sqn": sqn})

    def _challenge_error(
        self, ue: str, now: float, code: str, message: str, *, stale: bool = False
    ) -> BmscError:
        """The challenge a request without (usable) credentials is answered with.

        No work before authentication: the UE's outstanding challenge (pending, issued
        less than half a nonce lifetime ago, and the newest vector, so that its SQN is
        still fresh for the USIM) is answered again, with no new SQN and nothing
        written; only without one is a new vector taken (:meth:`_challenge`).  An
        unknown UE gets a decoy of the same shape (:meth:`_decoy`) and nothing is
        stored, so the answer tells nothing about who is a subscriber."""
        sub = self.store.get_subscriber(ue)
        if sub is None:
            note = Event(
                "Rejected",
                now,
                ue=ue,
                ok=False,
                reason="unknown_ue",
                extra={
                    "source": BMSC,
                    "refusal": Refusal.UNKNOWN.value,
                    "message": f"unknown subscriber {ue}: answered with a decoy challenge",
                },
            )
            decoy = serialise_challenge(self._decoy(ue, now, stale))
            return BmscError(Refusal.UNAUTHENTICATED, code, message, decoy, (note,))
        rec = self.store.outstanding_challenge(ue, now - self._reuse_window)
        if rec is not None and rec.sqn == sub.sqn:
            again = replace(self._stored_challenge(rec), stale=stale)
            return BmscError(Refusal.UNAUTHENTICATED, code, message, serialise_challenge(again))
        try:
            self._challenge_limit.check(ue, now)
        except BmscError as limited:
            return limited
        challenge, event = self._challenge(sub, now, stale=stale)
        self._challenge_limit.record(ue, now)
        return BmscError(
            Refusal.UNAUTHENTICATED, code, message, serialise_challenge(challenge), (event,)
        )

    @property
    def _reuse_window(self) -> float:
        """How long an outstanding challenge is answered again (half its lifetime, so a
        UE always has time to answer it)."""
        return self.config.nonce_lifetime / 2

    def _stored_challenge(self, rec: Challenge) -> DigestChallenge:
        return DigestChallenge(
            realm=self.config.realm,
            nonce=rec.nonce,
            qop=(QOP_AUTH,),
            opaque=rec.opaque,
            algorithm=ALGORITHM_AKAV1_MD5,
        )

    def _decoy_octets(self, ue: str, epoch: int) -> bytes:
        """48 octets that stand for RAND, AUTN and opaque of an unknown UE's decoy in one
        reuse window: an HMAC under a key of this core, so the same UE asking again in
        the window gets the same decoy (as a subscriber gets the same challenge)."""
        if self._decoy_key is None:
            self._decoy_key = self.rand(32)
        data = f"{ue}\x00{epoch}".encode()
        first = hmac.new(self._decoy_key, b"1" + data, hashlib.sha256).digest()
        second = hmac.new(self._decoy_key, b"2" + data, hashlib.sha256).digest()
        return first + second[:16]

    def _decoy(self, ue: str, now: float, stale: bool) -> DigestChallenge:
        """A challenge for an unknown UE, shaped as a real one (a nonce of RAND, AUTN and
        an issue time within the reuse window, an opaque of 16 octets); nothing stored."""
        epoch = int(now // self._reuse_window)
        octets = self._decoy_octets(ue, epoch)
        issued = int(epoch * self._reuse_window).to_bytes(8, "big")
        return DigestChallenge(
            realm=self.config.realm,
            nonce=encode_aka_nonce(octets[:16], octets[16:32], issued),
            qop=(QOP_AUTH,),
            opaque=octets[32:].hex(),
            algorithm=ALGORITHM_AKAV1_MD5,
            stale=stale,
        )

    def _is_decoy(self, ue: str, nonce: str, now: float) -> bool:
        """Whether ``nonce`` is a decoy this core gave the unknown UE within a nonce
        lifetime (answered as a real challenge answered wrongly would be)."""
        epoch = int(now // self._reuse_window)
        for back in range(3):
            octets = self._decoy_octets(ue, epoch - back)
            issued = int((epoch - back) * self._reuse_window).to_bytes(8, "big")
            if nonce == encode_aka_nonce(octets[:16], octets[16:32], issued):
                return True
        return False

    # -- registration (6.2.2 steps 2-4, 6.2.3.2) --------------------------------------------

    def register(self, req: RegisterRequest, now: float) -> Outcome:
        """Handle one registration request; never raises for bad input (see the Outcome)."""
        events: list[Event] = []
        try:
            events += self.tick(now)
            return self._register(req, now, events)
        except BmscError as exc:
            events += exc.events
            if exc.code not in ("challenge", "resync"):
                events.append(
                    Event(
                        "Rejected",
                        now,
                        ue=req.ue,
                        service=req.service,
                        ok=False,
                        reason=exc.code,
                        extra={
                            "source": BMSC,
                            "refusal": exc.refusal.value,
                            "message": exc.message,
                            "trigger": req.trigger,
                            **(
                                {"retry_after": round(exc.retry_after, 3)}
                                if exc.retry_after is not None
                                else {}
                            ),
                        },
                    )
                )
            return Outcome.refused(exc, tuple(events))

    def _register(self, req: RegisterRequest, now: float, events: list[Event]) -> Outcome:
        # No work before authentication: whether the UE is a subscriber, the service
        # exists or the UE may use it is told only to the authenticated UE; before that
        # every well-formed request is answered with a challenge (see _challenge_error).
        ue, service = validate_ue(req.ue), validate_service(req.service)
        self._delivery_limit.check(ue, now)
        if req.authorization is None:
            raise self._challenge_error(
                ue, now, "challenge", "authentication required (HTTP Digest AKA, RFC 3310)"
            )
        try:
            cred = parse_authorization(req.authorization)
        except DigestParseError as exc:
            raise BmscError(
                Refusal.MALFORMED, "bad_authorization", f"malformed Authorization: {exc}"
            ) from None
        if cred.username != ue:
            raise BmscError(
                Refusal.FORBIDDEN,
                "identity_mismatch",
                "the Digest username does not match the 'ue' parameter",
            )
        rec = self.store.get_challenge(cred.nonce)
        if (
            rec is None
            and self.store.get_subscriber(ue) is None
            and self._is_decoy(ue, cred.nonce, now)
        ):
            raise BmscError(Refusal.FORBIDDEN, "auth_failed", _WRONG_RES)
        if rec is None or rec.ue != ue:
            raise self._challenge_error(
                ue,
                now,
                "unknown_nonce",
                "the nonce was not issued to this UE by this BM-SC; answer the new challenge",
                stale=False,
            )
        challenge = self._stored_challenge(rec)
        if cred.auts is not None:
            return self._resync(ue, rec, challenge, req, cred, now, events)
        if rec.state in ("used", "failed"):
            raise self._challenge_error(
                ue,
                now,
                "nonce_used",
                f"the nonce was already {rec.state}; answer the new challenge",
            )
        try:
            nc = verify_response(
                cred,
                challenge=challenge,
                xres=rec.xres,
                method=req.method,
                uri=req.uri,
                now=now,
                max_age=self.config.nonce_lifetime,
                username=ue,
            )
        except DigestBindingError as exc:
            raise BmscError(
                Refusal.FORBIDDEN,
                "digest_mismatch",
                f"credentials do not match the challenge or request: {exc}",
            ) from None
        except DigestAuthError:
            # Counted, not fatal at once: a wrong answer from anyone who saw the nonce
            # must not cancel the UE's own authentication; nonce_failures of them do.
            if rec.state == "pending":
                with self.store.transaction(sync=False):  # before authentication
                    self.store.record_failure(rec.nonce, self.config.nonce_failures)
            raise BmscError(Refusal.FORBIDDEN, "auth_failed", _WRONG_RES) from None
        except DigestStaleError as exc:
            raise self._challenge_error(
                ue,
                now,
                "stale_nonce",
                f"the nonce is stale ({exc.age:.0f} s old); answer the new challenge",
                stale=True,
            ) from None
        fresh = rec.state == "pending"
        if not fresh:  # a verified nonce re-used (second_service_auth=authorise_only)
            if self._opt("second_service_auth") != "authorise_only":
                raise self._challenge_error(ue, now, "nonce_used", "the nonce was already used")
            if nc <= rec.max_nc:
                raise self._challenge_error(
                    ue,
                    now,
                    "nonce_count_replayed",
                    f"nonce count {nc} not above {rec.max_nc}: a replayed request",
                )
        # Authenticated: now the authorisation, in the transaction that delivers.  A
        # refusal still spends the nonce (or this nonce count), so the request cannot be
        # replayed once the UE is authorised.
        reuse = self._opt("second_service_auth") == "authorise_only"
        spent = "verified" if reuse else "used"
        refusal: BmscError | None = None
        won = False
        with self.store.transaction():
            # the schedule stays as read until the delivery built from it commits
            svc = self.store.lock_service(service, shared=True)
            try:
                if svc is None:
                    raise BmscError(
                        Refusal.UNKNOWN, "unknown_service", f"unknown service {service}"
                    )
                self._check_subscribed(ue, service)
            except BmscError as exc:
                refusal = exc
                self.store.update_challenge(rec.nonce, spent, nc)
            else:
                assert svc is not None
                # The nonce (count) is spent atomically: of two requests carrying the
                # same answer, perhaps at two BM-SC processes at once, only one is served.
                won = self.store.claim_challenge(rec.nonce, spent, nc)
                if won:
                    if fresh:
                        events.append(self._authenticated(ue, service, nc, rec.sqn, now))
                    kek = derive_kek(self._opt("kek_derivation"), rec.ck, rec.ik, ue, service)
                    body, event = self._deliver(ue, svc, req.port, kek, req.trigger, now)
                    events.append(event)
        if refusal is not None:
            if fresh and reuse:  # the UE did authenticate, and its authentication stays good
                events.append(self._authenticated(ue, service, nc, rec.sqn, now))
            raise refusal
        if not won:
            raise self._challenge_error(
                ue, now, "nonce_used", "the nonce was used meanwhile; answer the new challenge"
            )
        self._delivery_limit.record(ue, now)
        return Outcome(Result.DELIVERED, "ok", "TEK delivered", body, events=tuple(events))

    @staticmethod
    def _authenticated(ue: str, service: str, nc: int, sqn: int, now: float) -> Event:
        return Event(
            "Authenticate",
            now,
            ue=ue,
            service=service,
            extra={"source": BMSC, "nc": nc, "sqn": sqn},
        )

    def _check_subscribed(self, ue: str, service: str) -> None:
        sub = self.store.get_subscription(ue, service)
        if sub is None or not sub.subscribed:
            raise BmscError(
                Refusal.FORBIDDEN,
                "not_subscribed",
                f"UE {ue} is not authorised for service {service}",
            )

    def _resync(
        self,
        ue: str,
        rec: Challenge,
        challenge: DigestChallenge,
        req: RegisterRequest,
        cred: Any,
        now: float,
        events: list[Event],
    ) -> Outcome:
        """AUTS resynchronisation (RFC 3310 3.4, TS 33.102 6.3.5), then a new challenge."""
        if rec.state != "pending":
            raise self._challenge_error(ue, now, "nonce_used", "the nonce was already used")
        try:
            auts = verify_resync(
                cred, challenge=challenge, method=req.method, uri=req.uri, username=ue
            )
        except DigestBindingError as exc:
            raise BmscError(
                Refusal.FORBIDDEN,
                "digest_mismatch",
                f"credentials do not match the challenge or request: {exc}",
            ) from None
        except DigestAuthError:
            raise BmscError(
                Refusal.FORBIDDEN, "auth_failed", "resynchronisation request: wrong digest"
            ) from None
        sub = self.store.get_subscriber(ue)
        assert sub is not None
        try:
            sqn_ms = auc_resync(Milenage(sub.k, sub.opc), rec.rand, auts)
        except AutsMacFailure:
            raise BmscError(
                Refusal.FORBIDDEN,
                "auts_failed",
                "resynchronisation refused: MAC-S of AUTS does not verify",
            ) from None
        with self.store.transaction():
            self.store.update_challenge(rec.nonce, "used", cred.nc or 0)
            self.store.raise_sqn(ue, sqn_ms)
        events.append(
            Event(
                "Resync", now, ue=ue, service=req.service, extra={"source": BMSC, "sqn_ms": sqn_ms}
            )
        )
        raise self._challenge_error(
            ue, now, "resync", "SQN resynchronised; answer the new challenge"
        )

    def _deliver(
        self, ue: str, svc: Service, port: int, kek: bytes, trigger: str, now: float
    ) -> tuple[bytes, Event]:
        """Inside a transaction that holds the service's schedule (:meth:`Store.lock_service`)
        and read ``svc`` after taking it: build the MIKEY TEK delivery and record it
        (step 4)."""
        service = svc.service
        teks = self.store.teks(service, "active", "pending")
        active = [t for t in teks if t.state == "active"]
        pending = [t for t in teks if t.state == "pending"]
        keys: list[TekRow] = []
        if active:
            act = active[0]
            if not self._rekey_on("join") or (act.act_ev or 0) > self._join_ev(ue, service):
                keys.append(act)
        keys += pending
        if not keys:
            raise BmscError(
                Refusal.UNAVAILABLE, "no_tek", f"service {service} has no TEK to deliver yet"
            )
        ctr = self.store.take_counter(ue)
        fetch_time = self.fetch_time(svc, ue, pending, now)
        fetch: FetchAtTime | FetchAtSrtpIndex
        fetch_index: int | None = None
        if self._opt("fetch_time_unit") == "sequence_number":
            fetch_index = self._index_at(svc, fetch_time, now)
            fetch = FetchAtSrtpIndex(fetch_index)
        else:
            fetch = FetchAtTime(ntp_from_unix(fetch_time))
        lifetime = (
            max(1, math.ceil(svc.period * (len(pending) + 1)))
            if self._opt("tek_lifetime") == "present"
            else None
        )
        v_flag = self._opt("mikey_response") != "none"
        id_i = IdPayload(IdType.URI, self.config.bmsc_uri.encode())
        id_r = IdPayload(IdType.NAI, ue.encode())
        roc = self._stream_index(svc) >> 16
        counter = ctr if self._opt("replay_protection") == "counter" else None
        encr = EncrAlg.NULL if self._opt("tek_protection") == "tls" else EncrAlg.AES_CM_128
        delivery = new_tek_delivery(
            csb_id=svc.csb_id,
            keys=[TekKey(t.key, t.salt, t.mki.to_bytes(MKI_LENGTH, "big")) for t in keys],
            now=now,
            rand=self.rand,
            counter=counter,
            cs_map=(SrtpCs(0, svc.ssrc, roc & 0xFFFFFFFF),),
            id_i=id_i,
            id_r=id_r,
            fetch=fetch,
            lifetime=lifetime,
            encr_alg=encr,
            request_verification=v_flag,
        )
        if self._opt("kek_scope") == "common":
            # The common KEK, under the UE's own KEK, then the TEKs under the common KEK;
            # both messages carry the same T, which ties them together.
            group_kek = self._group_kek(service)
            carrier = new_tek_delivery(
                csb_id=svc.csb_id,
                keys=[TekKey(group_kek, group_key=True)],
                now=now,
                rand=self.rand,
                counter=counter,
                cs_map=delivery.cs_map,
                id_i=id_i,
                id_r=id_r,
                encr_alg=encr,
            )
            body = build_tek_delivery(carrier, kek) + build_tek_delivery(delivery, group_kek)
        else:
            body = build_tek_delivery(delivery, kek)
        self.store.put_registration(
            Registration(
                ue=ue,
                service=service,
                registered=True,
                port=port,
                fetch_time=fetch_time,
                kek=kek,
                csb_id=svc.csb_id,
                mikey_rand=delivery.rand,
                ts_type=int(delivery.timestamp.ts_type),
                ts_value=delivery.timestamp.value,
                id_i=id_i.data,
                id_r=id_r.data,
                awaiting_ack=v_flag,
                delivered=tuple(t.id for t in keys),
                t=now,
            )
        )
        self.store.record_deliveries(ue, [tek.id for tek in keys], ctr, now)
        extra: dict[str, Any] = {
            "source": BMSC,
            "mkis": [t.mki for t in keys],
            "fetch_time": round(fetch_time, 6),
            "counter": ctr,
            "trigger": trigger,
            "port": port,
        }
        if fetch_index is not None:
            extra["fetch_index"] = fetch_index
        return body, Event("Deliver", now, ue=ue, service=service, mki=keys[-1].mki, extra=extra)

    def _join_ev(self, ue: str, service: str) -> int:
        """The event number of the UE's first subscription to the service."""
        sub = self.store.get_subscription(ue, service)
        assert sub is not None
        return sub.join_ev

    def _group_kek(self, service: str) -> bytes:
        """Inside a transaction: the service's common KEK (created if a service made
        before has none)."""
        kek = self.store.get_group_kek(service)
        if kek is None:
            kek = self.rand(16)
            self.store.put_group_kek(service, kek)
        return kek

    def fetch_time(self, svc: Service, ue: str, pending: list[TekRow], now: float) -> float:
        """When the UE is to fetch again: in the window after the last next TEK it now
        holds is activated, placed by the fetch-spreading strategy (6.2.3.2)."""
        base = max(pending[-1].planned, now) if pending else now
        window = self.config.fetch_window * svc.period
        strategy = FetchSpreading(self._opt(spreading.OPTION))
        rank, count = 0, 1
        if strategy is FetchSpreading.SCHEDULED_SLOTS:
            rank, count = self.store.slot_of(ue, svc.service)
        u = 0.0
        if spreading.draws_at_random(strategy):
            u = spreading.uniform_from_bits(self.rand(4))
        offset = spreading.fetch_offset(strategy, window, u, float(rank), float(count))
        return base + self.config.fetch_delay + offset

    # -- MIKEY response (step 4b) ----------------------------------------------------------

    def mikey_response(self, ue: str, service: str, body: bytes, now: float) -> Outcome:
        """Check a MIKEY verification message against the UE's latest delivery."""
        events: list[Event] = []
        try:
            return self._mikey_response(ue, service, body, now, events)
        except BmscError as exc:
            events.append(
                Event(
                    "Rejected",
                    now,
                    ue=ue if isinstance(ue, str) else None,
                    service=service if isinstance(service, str) else None,
                    ok=False,
                    reason=exc.code,
                    extra={"source": BMSC, "refusal": exc.refusal.value, "message": exc.message},
                )
            )
            return Outcome.refused(exc, tuple(events))

    def _mikey_response(
        self, ue: str, service: str, body: bytes, now: float, events: list[Event]
    ) -> Outcome:
        if self._opt("mikey_response") == "none":
            raise BmscError(
                Refusal.UNKNOWN,
                "not_used",
                "this BM-SC does not use MIKEY responses (mikey_response=none)",
            )
        validate_ue(ue)
        validate_service(service)
        if len(body) > MAX_BODY:
            raise BmscError(
                Refusal.TOO_LARGE, "too_large", f"a MIKEY response is at most {MAX_BODY} octets"
            )
        # Only the MIKEY MAC authenticates this request: before it verifies, an unknown
        # UE or service is answered as a known one with no delivery awaiting a response.
        reg = self.store.get_registration(ue, service)
        if reg is None or not reg.awaiting_ack:
            raise BmscError(
                Refusal.CONFLICT,
                "no_delivery_pending",
                f"no TEK delivery to {ue} for {service} awaits a response",
            )
        delivery = TekDelivery(
            csb_id=reg.csb_id,
            keys=(),
            timestamp=TimestampPayload(TsType(reg.ts_type), reg.ts_value),
            rand=reg.mikey_rand,
            id_i=IdPayload(IdType.URI, reg.id_i) if reg.id_i is not None else None,
            id_r=IdPayload(IdType.NAI, reg.id_r) if reg.id_r is not None else None,
        )
        try:
            verify_verification(body, delivery, reg.kek)
        except MikeyAuthError:
            raise BmscError(
                Refusal.FORBIDDEN,
                "mikey_auth_failed",
                "MIKEY response: verification MAC does not match",
            ) from None
        except MikeyError as exc:
            raise BmscError(
                Refusal.MALFORMED, "bad_mikey", f"MIKEY response malformed: {exc}"
            ) from None
        self._check_subscribed(ue, service)
        with self.store.transaction():
            mkis = []
            for tek_ref in reg.delivered:
                tek = self.store.get_tek(tek_ref)
                if tek is not None:
                    self.store.record_ack(ue, tek.id, now)
                    mkis.append(tek.mki)
            self.store.set_awaiting_ack(ue, service, False)
        events.append(
            Event(
                "Acknowledge",
                now,
                ue=ue,
                service=service,
                mki=mkis[-1] if mkis else None,
                extra={"source": BMSC, "mkis": mkis},
            )
        )
        return Outcome(Result.ACKNOWLEDGED, "ok", "MIKEY response accepted", events=tuple(events))

    # -- data plane support -------------------------------------------------------------------

    def active_tek(self, service: str) -> TekRow | None:
        """The service's active TEK (the one SRTP packets carry the MKI of)."""
        active = self.store.teks(service, "active")
        return active[0] if active else None

    def stream_targets(self, service: str) -> list[tuple[str, int]]:
        """(ue, loopback port) of every UE that registered for the service's stream."""
        return self.store.stream_targets(service)

    def stream_start(self, service: str) -> tuple[int, int]:
        """(ssrc, first SRTP index) for a (re)started sender: above every index that may
        have been used before, with a block reserved ahead (committed)."""
        with self.store.transaction():
            svc = self.store.get_service(service)
            if svc is None:
                raise BmscError(Refusal.UNKNOWN, "unknown_service", f"unknown service {service}")
            start = svc.srtp_reserved
            self.store.reserve_srtp(service, start + _SRTP_BLOCK)
        return svc.ssrc, start

    def stream_reserve(self, service: str, index: int) -> int:
        """Make sure ``index`` is reserved; returns the reserved limit (commits if needed)."""
        svc = self.store.get_service(service)
        if svc is None:
            raise BmscError(Refusal.UNKNOWN, "unknown_service", f"unknown service {service}")
        if index < svc.srtp_reserved:
            return svc.srtp_reserved
        with self.store.transaction():
            self.store.reserve_srtp(service, index + _SRTP_BLOCK)
        return index + _SRTP_BLOCK

    def note_stream_index(self, service: str, index: int, now: float) -> None:
        """Tell the core where the stream is, for SRTP-index fetch hints and the ROC."""
        self._positions[service] = _StreamPosition(index, now)

    def _stream_index(self, svc: Service) -> int:
        pos = self._positions.get(svc.service)
        return pos.index if pos is not None else svc.srtp_reserved

    def _index_at(self, svc: Service, t: float, now: float) -> int:
        pos = self._positions.get(svc.service)
        index, since = (pos.index, pos.t) if pos is not None else (svc.srtp_reserved, now)
        return max(0, min((1 << 48) - 1, index + math.ceil((t - since) * self.config.packet_rate)))

    # -- inspection ---------------------------------------------------------------------

    def state_view(self) -> dict[str, Any]:
        """A secret-free view of the state, for the admin endpoint and the CLI."""
        store = self.store
        services = []
        for svc in store.services():
            teks = store.teks(svc.service)
            services.append(
                {
                    "service": svc.service,
                    "period": svc.period,
                    "ssrc": svc.ssrc,
                    "next_mki": svc.next_mki,
                    "teks": [
                        {
                            "tek": tek_id(t.service, t.mki),
                            "mki": t.mki,
                            "state": t.state,
                            "planned": t.planned,
                            "activated": t.act_t,
                        }
                        for t in teks[-8:]
                    ],
                }
            )
        return {
            "profile": dict(self.profile),
            "services": services,
            "subscribers": [
                {"ue": s.ue, "sqn": s.sqn, "mikey_counter": s.ctr} for s in store.subscribers()
            ],
            "subscriptions": [
                {"ue": s.ue, "service": s.service, "subscribed": s.subscribed}
                for s in store.subscriptions()
            ],
            "registrations": [
                {
                    "ue": r.ue,
                    "service": r.service,
                    "registered": r.registered,
                    "port": r.port,
                    "fetch_time": r.fetch_time,
                }
                for r in store.registrations()
            ],
        }

"""UMTS AKA: authentication vectors, the USIM check, resynchronisation and the KEK.

This is the Authentication and Key Agreement procedure of 3GPP TS 33.102 clause 6.3
over the MILENAGE functions of :mod:`mbmssec.impl.protocols.milenage`, in the three roles the
MBMS key management needs:

* the HSS/AuC builds an authentication vector (:func:`generate_vector`,
  TS 33.102 6.3.2): RAND from an injected random source, XRES = f2, CK = f3,
  IK = f4 and AUTN = (SQN xor AK) || AMF || MAC-A, with SQN and AMF supplied by the
  caller (the AuC owns SQN management);
* the UE (USIM) checks AUTN and answers (:func:`usim_authenticate`, TS 33.102 6.3.3):
  MAC-A must verify, then SQN must be fresh; it yields RES/CK/IK, or raises
  :class:`SyncFailure` carrying AUTS = (SQN_MS xor AK*) || MAC-S;
* the AuC recovers SQN_MS from AUTS and checks MAC-S (:func:`auc_resync`,
  TS 33.102 6.3.5).

SQN freshness (the project's "simple window" scheme, a strict form of TS 33.102
Annex C): the USIM keeps SQN_MS, the highest SQN it has accepted, in a
:class:`UsimState`.  A challenge is fresh only if its SQN is strictly greater than
SQN_MS; an accepted challenge moves SQN_MS up to its SQN.  There is no array of
recently used values, so a vector that arrives out of order after a newer one was
accepted is rejected with a resynchronisation request, and a replay is always
rejected.  There is no upper limit on how far SQN may jump ahead.  The state is an
immutable value: the new state is returned, never updated in place, so a failed
check cannot corrupt it.

The KEK for MIKEY delivery in the MBMS key management is derived from CK/IK by
:func:`derive_kek`, with the two options the proposed change to TS 33.246 offers.

Everything here is sans-I/O: randomness comes in as a ``rand(n) -> bytes``
callable; no clock is involved.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from mbmssec.errors import MbmssecError
from mbmssec.impl.protocols.milenage import Milenage

__all__ = [
    "AMF_RESYNC",
    "KEK_LABEL",
    "KEK_MODES",
    "KEK_MODE_BY_OPTION",
    "SQN_MAX",
    "AkaError",
    "AkaInputError",
    "AkaResponse",
    "AuthVector",
    "AutsMacFailure",
    "MacFailure",
    "Rand",
    "SyncFailure",
    "UsimState",
    "auc_resync",
    "derive_kek",
    "generate_vector",
    "make_auts",
    "usim_authenticate",
]

Rand = Callable[[int], bytes]
"""An injected random source: ``rand(n)`` returns ``n`` random octets."""

SQN_MAX: Final = (1 << 48) - 1
"""The largest sequence number: SQN is 48 bits (TS 33.102 6.3.7)."""

AMF_RESYNC: Final = b"\x00\x00"
"""The dummy AMF used for MAC-S in AUTS: all zeros (TS 33.102 6.3.3)."""

KEK_LABEL: Final = b"mbmssec-kek"
"""The label of the project's KEK derivation function (see :func:`derive_kek`)."""

KEK_MODES: Final = ("ck", "derived")
"""The ``mode`` values :func:`derive_kek` accepts."""

KEK_MODE_BY_OPTION: Final = {"kek_is_ck": "ck", "kek_derived_from_ck": "derived"}
"""The specification's option names mapped to :func:`derive_kek` modes."""

_RAND_LEN = 16
_AUTN_LEN = 16
_AUTS_LEN = 14
_KEY_LEN = 16


class AkaError(MbmssecError):
    """Base of the AKA error family."""


class AkaInputError(AkaError):
    """An argument is malformed (wrong length, out-of-range SQN, unknown KEK mode).

    ``field`` names the offending argument.  This is a caller error, not an
    authentication outcome.
    """

    def __init__(self, field_name: str, reason: str) -> None:
        self.field = field_name
        self.reason = reason
        super().__init__(f"AKA {field_name}: {reason}")


class MacFailure(AkaError):
    """MAC-A in AUTN did not verify: the network is not authenticated.

    Deliberately opaque: it says nothing about which octets differed, and it is
    raised before the SQN is looked at, so a forger learns nothing about SQN_MS.
    """

    def __init__(self) -> None:
        super().__init__("AKA authentication failed: MAC check")


class AutsMacFailure(MacFailure):
    """MAC-S in AUTS did not verify at the AuC (TS 33.102 6.3.5); equally opaque."""


class SyncFailure(AkaError):
    """AUTN verified but its SQN is not fresh; the USIM asks for resynchronisation.

    ``auts`` is the 14-octet AUTS = (SQN_MS xor f5*(RAND)) || MAC-S to return to the
    network (TS 33.102 6.3.3).  It conceals SQN_MS, so it is safe to send.
    """

    def __init__(self, auts: bytes) -> None:
        self.auts = auts
        super().__init__("AKA synchronisation failure: SQN not fresh")


@dataclass(frozen=True)
class AuthVector:
    """An authentication vector (TS 33.102 6.3.2): RAND, XRES, CK, IK, AUTN.

    CK and IK are secret and kept out of ``repr``.
    """

    rand: bytes
    xres: bytes
    ck: bytes = field(repr=False)
    ik: bytes = field(repr=False)
    autn: bytes


@dataclass(frozen=True)
class AkaResponse:
    """The USIM's answer to a verified, fresh challenge: RES, CK, IK.

    ``sqn`` and ``amf`` are the values recovered from AUTN.  CK and IK are secret
    and kept out of ``repr``.
    """

    res: bytes
    ck: bytes = field(repr=False)
    ik: bytes = field(repr=False)
    sqn: int
    amf: bytes


@dataclass(frozen=True)
class UsimState:
    """The USIM's sequence-number memory: SQN_MS, the highest SQN accepted so far.

    A new USIM starts at 0, so any SQN >= 1 is fresh for it.
    """

    sqn_ms: int = 0

    def __post_init__(self) -> None:
        _check_sqn("sqn_ms", self.sqn_ms)


def _check_bytes(name: str, value: object, length: int) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise AkaInputError(name, "must be bytes")
    data = bytes(value)
    if len(data) != length:
        raise AkaInputError(name, f"must be {length} octets, got {len(data)}")
    return data


def _check_sqn(name: str, value: object) -> int:
    # bool is an int subclass; a True SQN is a caller bug, not SQN 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise AkaInputError(name, "must be an int")
    if not 0 <= value <= SQN_MAX:
        raise AkaInputError(name, f"must be in 0..2^48-1, got {value}")
    return value


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _sqn_bytes(sqn: int) -> bytes:
    return sqn.to_bytes(6, "big")


def generate_vector(mil: Milenage, *, sqn: int, amf: bytes, rand: Rand) -> AuthVector:
    """Build an authentication vector in the HSS/AuC role (TS 33.102 6.3.2).

    ``sqn`` is the sequence number to embed (the caller's SQN management decides
    it), ``amf`` the 2-octet authentication management field, and ``rand`` the
    injected random source from which RAND (16 octets) is drawn.
    AUTN = (SQN xor AK) || AMF || MAC-A.
    """
    sqn_b = _sqn_bytes(_check_sqn("sqn", sqn))
    amf = _check_bytes("amf", amf, 2)
    rand_value = rand(_RAND_LEN)
    rand_b = _check_bytes("rand() output", rand_value, _RAND_LEN)
    mac_a, xres, ck, ik, ak = mil.vector(rand_b, sqn_b, amf)
    autn = _xor(sqn_b, ak) + amf + mac_a
    return AuthVector(rand=rand_b, xres=xres, ck=ck, ik=ik, autn=autn)


def make_auts(mil: Milenage, rand: bytes, sqn_ms: int) -> bytes:
    """AUTS = (SQN_MS xor f5*(RAND)) || f1*(SQN_MS, RAND, AMF=0000) (TS 33.102 6.3.3).

    This is what the USIM sends back in a synchronisation failure; exposed for the
    UE code and for tests of the AuC side.
    """
    rand = _check_bytes("rand", rand, _RAND_LEN)
    sqn_b = _sqn_bytes(_check_sqn("sqn_ms", sqn_ms))
    conc = _xor(sqn_b, mil.f5star(rand))
    return conc + mil.f1star(rand, sqn_b, AMF_RESYNC)


def usim_authenticate(
    mil: Milenage, state: UsimState, rand: bytes, autn: bytes
) -> tuple[AkaResponse, UsimState]:
    """Run the USIM side of AKA on a challenge (RAND, AUTN) (TS 33.102 6.3.3).

    Order of checks, as the TS prescribes: recover SQN = (SQN xor AK) xor f5(RAND),
    verify MAC-A = f1(SQN, RAND, AMF) (else :class:`MacFailure`), then check
    freshness: SQN must exceed ``state.sqn_ms`` (else :class:`SyncFailure` with
    AUTS).  On success returns RES/CK/IK and the new state with SQN_MS = SQN.
    """
    if not isinstance(state, UsimState):
        raise AkaInputError("state", "must be a UsimState")
    rand = _check_bytes("rand", rand, _RAND_LEN)
    autn = _check_bytes("autn", autn, _AUTN_LEN)
    res, ck, ik, ak = mil.f2345(rand)
    sqn_b = _xor(autn[:6], ak)
    amf = autn[6:8]
    xmac = mil.f1(rand, sqn_b, amf)
    if not hmac.compare_digest(xmac, autn[8:]):
        raise MacFailure()
    sqn = int.from_bytes(sqn_b, "big")
    if sqn <= state.sqn_ms:
        raise SyncFailure(make_auts(mil, rand, state.sqn_ms))
    return AkaResponse(res=res, ck=ck, ik=ik, sqn=sqn, amf=amf), UsimState(sqn_ms=sqn)


def auc_resync(mil: Milenage, rand: bytes, auts: bytes) -> int:
    """The AuC side of resynchronisation (TS 33.102 6.3.5): recover and verify SQN_MS.

    ``rand`` is the RAND of the challenge the USIM rejected.  Returns SQN_MS (the
    USIM's highest accepted SQN); the AuC should continue from a value above it.
    Raises :class:`AutsMacFailure` if MAC-S does not verify.
    """
    rand = _check_bytes("rand", rand, _RAND_LEN)
    auts = _check_bytes("auts", auts, _AUTS_LEN)
    sqn_b = _xor(auts[:6], mil.f5star(rand))
    xmac_s = mil.f1star(rand, sqn_b, AMF_RESYNC)
    if not hmac.compare_digest(xmac_s, auts[6:]):
        raise AutsMacFailure()
    return int.from_bytes(sqn_b, "big")


def _kdf_field(name: str, value: str) -> bytes:
    if not isinstance(value, str):
        raise AkaInputError(name, "must be a str")
    if not value:
        raise AkaInputError(name, "must not be empty")
    data = _utf8(name, value)
    if len(data) > 0xFFFF:
        raise AkaInputError(name, "longer than 65535 octets in UTF-8")
    return len(data).to_bytes(2, "big") + data


def _utf8(name: str, value: str) -> bytes:
    try:
        return value.encode("utf-8", errors="strict")
    except UnicodeEncodeError as exc:  # lone surrogates cannot be encoded
        raise AkaInputError(name, "is not encodable as UTF-8") from exc


def derive_kek(mode: str, ck: bytes, ik: bytes, ue_id: str, service_id: str) -> bytes:
    """Derive the 16-octet KEK that protects MIKEY TEK delivery, from CK and IK.

    ``mode`` selects one of the two options of the proposed change to TS 33.246:

    * ``"ck"`` (option "kek_is_ck"): KEK = CK.
    * ``"derived"`` (option "kek_derived_from_ck"): KEK is derived from CK (and IK).
      The proposal leaves this KDF open; this project chooses

          KEK = first 16 octets of HMAC-SHA-256(key = CK || IK,
                                                 L("mbmssec-kek") || L(service_id) || L(ue_id))

      where L(x) is x (UTF-8 for the two identities) preceded by its length as a
      2-octet big-endian integer.  The length prefixes keep the concatenation
      unambiguous (service "ab" + UE "c" differs from service "a" + UE "bc").
      Binding the service and UE identities makes each (UE, service) KEK distinct
      even when one AKA run serves several services.

    The specification's option names map to these modes via
    :data:`KEK_MODE_BY_OPTION`.  All arguments are validated in both modes.
    """
    if mode not in KEK_MODES:
        raise AkaInputError("mode", f"must be one of {', '.join(KEK_MODES)}, got {mode!r}")
    ck = _check_bytes("ck", ck, _KEY_LEN)
    ik = _check_bytes("ik", ik, _KEY_LEN)
    message = (
        _kdf_field("label", KEK_LABEL.decode("ascii"))
        + _kdf_field("service_id", service_id)
        + _kdf_field("ue_id", ue_id)
    )
    if mode == "ck":
        return ck
    mac = crypto_hmac.HMAC(ck + ik, hashes.SHA256())
    mac.update(message)
    return mac.finalize()[:_KEY_LEN]

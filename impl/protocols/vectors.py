"""Test vectors of the MBMS key management profile, for implementers of other stacks.

``mbmssec vectors --out DIR`` writes what this module builds (format: docs/vectors.md):

* ``mikey_tek_delivery.json`` - MIKEY (RFC 3830) pre-shared-key TEK delivery messages
  protected with a UE's KEK (KEMAC encryption NULL, AES-CM-128 and AES-KW-128, MAC
  HMAC-SHA-1-160; one and several keys; the TEK fetch hint as a time and as an SRTP
  index; with and without a TEK lifetime), each with its inputs, the keys derived from
  the KEK (RFC 3830 4.1.4), the expected message bytes and the UE's verification
  message (RFC 3830 5.2);
* ``srtp_mki.json`` - SRTP and SRTCP packets (RFC 3711, AES-CM-128 with HMAC-SHA1-80
  or -32) carrying a 4-byte MKI, across a switch of master key by MKI and across a
  rollover of the sequence number (ROC n -> n+1);
* ``digest_aka.json`` - MILENAGE (TS 35.206) input/output sets, HTTP Digest AKA
  (RFC 3310, AKAv1-MD5) exchanges with their WWW-Authenticate and Authorization
  header values, RES/CK/IK, the KEK in both derivation modes, and a
  resynchronisation with AUTS (TS 33.102 6.3.3, 6.3.5);
* ``mikey.pcap`` - every MIKEY message of ``mikey_tek_delivery.json`` framed as UDP
  on port 2269 between loopback addresses, in the pcapng format so that the capture
  itself can name the generator version, the seed and each frame's case;
* ``README.txt`` - what the files are, the seed and the generator version.

Everything is a pure function of the seed: values come from labelled deterministic
streams (:class:`SeededRandom`), times from a seed-derived base time, so one seed
always yields byte-identical files and a change to one file's cases leaves the other
files unchanged. The MIKEY case ``aes-cm-2keys-time-lifetime`` ties the files
together: its KEK is the derived KEK of the Digest AKA exchange ``seeded``, and the two
TEKs it delivers are the SRTP master keys of ``srtp_mki.json``.

Only :func:`generate` and the ``*_vectors`` functions are the generator; writing the
files is the command's business (:mod:`mbmssec.commands.vectors`).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives import hashes, hmac

from mbmssec import __version__
from mbmssec.errors import MbmssecError
from mbmssec.impl.protocols.aka import (
    AkaResponse,
    AuthVector,
    SyncFailure,
    UsimState,
    auc_resync,
    derive_kek,
    generate_vector,
    usim_authenticate,
)
from mbmssec.impl.protocols.digest import (
    DigestAuthorization,
    DigestChallenge,
    decode_aka_nonce,
    make_aka_challenge,
    respond,
    respond_resync,
    serialise_authorization,
    serialise_challenge,
)
from mbmssec.impl.protocols.mikey import (
    EncrAlg,
    FetchAtSrtpIndex,
    FetchAtTime,
    FetchHint,
    IdPayload,
    IdType,
    KemacPayload,
    MacAlg,
    SrtpAuthAlg,
    SrtpCs,
    SrtpEncrAlg,
    SrtpFecOrder,
    SrtpPrf,
    TekFetchExtension,
    TsType,
    parse_message,
    serialise_key_data_chain,
)
from mbmssec.impl.protocols.mikey import SrtpPolicy as MikeySrtpPolicy
from mbmssec.impl.protocols.mikey_crypto import aes_cm_iv, derive_message_keys
from mbmssec.impl.protocols.mikey_messages import (
    NTP_UNIX_OFFSET,
    TekDelivery,
    TekKey,
    build_tek_delivery,
    build_verification,
    new_tek_delivery,
    ntp_from_unix,
)
from mbmssec.impl.protocols.milenage import Milenage
from mbmssec.impl.protocols.pcap import Packet, pcap_bytes
from mbmssec.impl.protocols.srtp import (
    AuthTag,
    KeyLabel,
    MasterKey,
    SrtpPolicy,
    SrtpSender,
    derive_session_key,
)

__all__ = [
    "DIGEST_FILE",
    "DOCUMENTATION",
    "FORMAT",
    "GENERATOR_VERSION",
    "MAX_SEED",
    "MIKEY_FILE",
    "MIKEY_PORT",
    "PCAP_FILE",
    "README_FILE",
    "SRTP_FILE",
    "SeededRandom",
    "VectorFile",
    "VectorsError",
    "check_seed",
    "digest_aka_vectors",
    "generate",
    "mikey_pcap",
    "mikey_vectors",
    "parse_seed",
    "readme_text",
    "srtp_vectors",
]

GENERATOR_VERSION: Final = "1.0"
"""Version of the generator and of the file format; bumped whenever any output changes."""

FORMAT: Final = "mbmssec-test-vectors"
"""The ``format`` member of every JSON file."""

MAX_SEED: Final = (1 << 64) - 1
"""Seeds are integers 0..2^64-1."""

MIKEY_FILE: Final = "mikey_tek_delivery.json"
SRTP_FILE: Final = "srtp_mki.json"
DIGEST_FILE: Final = "digest_aka.json"
PCAP_FILE: Final = "mikey.pcap"
README_FILE: Final = "README.txt"
DOCUMENTATION: Final = "docs/vectors.md"

MIKEY_PORT: Final = 2269
"""UDP port of MIKEY (IANA "mikey"), the port Wireshark's dissector listens on."""

_BASE_TIME: Final = 1_767_225_600  # 2026-01-01T00:00:00Z; seeds add up to ~194 days
_MIKEY_MKI_LEN: Final = 4
_KW_MKI_LEN: Final = 3  # see _MIKEY_CASES: AES-KW needs a chain of a multiple of 8 bytes
_TEK_PERIOD: Final = 3600  # seconds between TEK changes in the generated scenarios

JsonDict = dict[str, Any]


class VectorsError(MbmssecError):
    """Bad generator input (a seed out of range, an unusable output directory)."""


# --------------------------------------------------------------------------- randomness


def _hmac_sha256(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def parse_seed(text: str) -> int:
    """A seed from its decimal (or 0x-prefixed hex) text; :class:`VectorsError` if invalid."""
    stripped = text.strip()
    try:
        seed = int(stripped[2:], 16) if stripped[:2].lower() == "0x" else int(stripped, 10)
    except ValueError:
        raise VectorsError(f"seed must be an integer 0..2^64-1, got {text!r}") from None
    return check_seed(seed)


def check_seed(seed: object) -> int:
    """``seed`` itself if it is an int in 0..2^64-1, else :class:`VectorsError`."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise VectorsError(f"seed must be an integer 0..2^64-1, got {seed!r}")
    return seed


class SeededRandom:
    """A deterministic ``rand(n) -> bytes`` source for one labelled use of a seed.

    Output block ``i`` is HMAC-SHA-256(key, label || 0x00 || i as 8 bytes) with
    key = HMAC-SHA-256("mbmssec-vectors", seed as 8 bytes). Each case draws from its
    own label, so cases do not shift one another's values. Not for real keys.
    """

    def __init__(self, seed: int, label: str) -> None:
        self._key = _hmac_sha256(b"mbmssec-vectors", check_seed(seed).to_bytes(8, "big"))
        self._label = label.encode("utf-8") + b"\x00"
        self._counter = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buffer) < n:
            block = self._counter.to_bytes(8, "big")
            self._buffer += _hmac_sha256(self._key, self._label + block)
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def below(self, bound: int) -> int:
        """An integer in ``0..bound-1`` (bias below 2^-64)."""
        return int.from_bytes(self(8 + (bound.bit_length() + 7) // 8), "big") % bound

    def between(self, low: int, high: int) -> int:
        """An integer in ``low..high`` inclusive."""
        return low + self.below(high - low + 1)


def _base_time(seed: int) -> int:
    """Unix time (whole seconds) at which the generated scenario takes place."""
    return _BASE_TIME + SeededRandom(seed, "base-time").below(1 << 24)


# --------------------------------------------------------------------------- JSON helpers


def _header(seed: int, name: str, description: str) -> JsonDict:
    return {
        "format": FORMAT,
        "file": name,
        "generator": {
            "program": "mbmssec vectors",
            "version": GENERATOR_VERSION,
            "mbmssec_version": __version__,
        },
        "seed": seed,
        "documentation": DOCUMENTATION,
        "description": description,
    }


def _json_bytes(obj: JsonDict) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def _ntp_hex(ntp: int) -> str:
    return ntp.to_bytes(8, "big").hex()


# --------------------------------------------------------------------------- identities


@dataclass(frozen=True)
class _Identities:
    """The UE and BM-SC names used by every file of one seed."""

    ue: str  # IMPI-like NAI: Digest username, MIKEY IDr, KEK ue_id
    bmsc: str  # BM-SC URI: MIKEY IDi
    realm: str
    service_id: str


def _identities(seed: int) -> _Identities:
    rng = SeededRandom(seed, "identities")
    msin = f"{rng.below(10**10):010d}"
    host = f"bmsc{rng.below(100)}.mbms.example.org"
    return _Identities(
        ue=f"00101{msin}@ims.mnc001.mcc001.3gppnetwork.org",
        bmsc=f"http://{host}/",
        realm=host,
        service_id=f"urn:example:mbms:service:{rng.below(10**6):06d}",
    )


# --------------------------------------------------------------------------- Digest AKA

# 3GPP TS 35.208 clause 4.3.1, Test Set 1 (inputs only; the outputs are computed and
# the tests compare them with the published values in tests/vectors/ts35208.json).
_TS35208_SET1: Final = {
    "K": "465b5ce8b199b49faa5f0a2ee238a6bc",
    "OP": "cdc202d5123e20f62b6d676ac72cb318",
    "RAND": "23553cbe9637a89d218ae64dae47bf35",
    "SQN": "ff9bb4d0b607",
    "AMF": "b9b9",
}
_TS35208_SOURCE: Final = (
    "3GPP TS 35.208 clause 4.3.1, Test Set 1: the published inputs; the outputs equal the "
    "published ones"
)

_DIGEST_METHOD: Final = "POST"
_DIGEST_URI: Final = "/keymanagement?requesttype=register"


def _milenage_outputs(mil: Milenage, rand: bytes, sqn: bytes, amf: bytes) -> JsonDict:
    res, ck, ik, ak = mil.f2345(rand)
    return {
        "f1": mil.f1(rand, sqn, amf).hex(),
        "f1*": mil.f1star(rand, sqn, amf).hex(),
        "f2": res.hex(),
        "f3": ck.hex(),
        "f4": ik.hex(),
        "f5": ak.hex(),
        "f5*": mil.f5star(rand).hex(),
    }


def _milenage_case(
    case_id: str, source: str, k: bytes, op: bytes, rand: bytes, sqn: int, amf: bytes
) -> JsonDict:
    mil = Milenage.from_op(k, op)
    sqn_b = sqn.to_bytes(6, "big")
    return {
        "id": case_id,
        "source": source,
        "K": k.hex(),
        "OP": op.hex(),
        "OPc": mil.opc.hex(),
        "RAND": rand.hex(),
        "SQN": sqn_b.hex(),
        "AMF": amf.hex(),
        "outputs": _milenage_outputs(mil, rand, sqn_b, amf),
    }


@dataclass(frozen=True)
class _Subscriber:
    case_id: str
    k: bytes
    op: bytes
    mil: Milenage


@dataclass(frozen=True)
class _Round:
    """One challenge and the UE's answer."""

    record: JsonDict
    response: AkaResponse | None


def _fixed(value: bytes) -> Callable[[int], bytes]:
    def rand(n: int) -> bytes:
        if n != len(value):
            raise VectorsError(f"fixed RAND of {len(value)} bytes asked for {n}")
        return value

    return rand


def _digest_fields(auth: DigestAuthorization, password: bytes, method: str) -> JsonDict:
    """The RFC 2617 3.2.2.1 intermediate values of an Authorization (password = raw octets)."""
    ha1 = _digest(
        hashes.MD5(), auth.username.encode() + b":" + auth.realm.encode() + b":" + password
    ).hex()
    ha2 = _digest(hashes.MD5(), f"{method}:{auth.uri}".encode()).hex()
    return {
        "username": auth.username,
        "realm": auth.realm,
        "nonce": auth.nonce,
        "uri": auth.uri,
        "method": method,
        "qop": auth.qop,
        "nc": f"{auth.nc:08x}" if auth.nc is not None else None,
        "cnonce": auth.cnonce,
        "password": password.hex(),
        "ha1": ha1,
        "ha2": ha2,
        "response": auth.response,
    }


def _aka_round(
    sub: _Subscriber,
    ids: _Identities,
    *,
    rand_value: bytes,
    sqn: int,
    amf: bytes,
    sqn_ms: int,
    now: int,
    rng: SeededRandom,
) -> _Round:
    vector: AuthVector = generate_vector(sub.mil, sqn=sqn, amf=amf, rand=_fixed(rand_value))
    challenge: DigestChallenge = make_aka_challenge(vector, realm=ids.realm, now=now, rand=rng)
    nonce = decode_aka_nonce(challenge.nonce)
    sqn_b = sqn.to_bytes(6, "big")
    _, _, _, ak = sub.mil.f2345(vector.rand)
    record: JsonDict = {
        "now": now,
        "vector": {
            "RAND": vector.rand.hex(),
            "SQN": sqn_b.hex(),
            "AMF": amf.hex(),
            "AK": ak.hex(),
            "MAC-A": sub.mil.f1(vector.rand, sqn_b, amf).hex(),
            "AUTN": vector.autn.hex(),
            "XRES": vector.xres.hex(),
            "CK": vector.ck.hex(),
            "IK": vector.ik.hex(),
        },
        "www_authenticate": serialise_challenge(challenge),
        "nonce": {
            "value": challenge.nonce,
            "rand": nonce.rand.hex(),
            "autn": nonce.autn.hex(),
            "server_data": nonce.server_data.hex(),
        },
        "opaque": challenge.opaque,
        "usim_sqn_ms": sqn_ms,
    }
    try:
        response, after = usim_authenticate(sub.mil, UsimState(sqn_ms), nonce.rand, nonce.autn)
    except SyncFailure as failure:
        auth = respond_resync(
            challenge,
            username=ids.ue,
            auts=failure.auts,
            method=_DIGEST_METHOD,
            uri=_DIGEST_URI,
            rand=rng,
        )
        record["outcome"] = "sync_failure"
        record["auts"] = {
            "AUTS": failure.auts.hex(),
            "AK*": sub.mil.f5star(vector.rand).hex(),
            "MAC-S": failure.auts[6:].hex(),
            "SQN_MS": sqn_ms.to_bytes(6, "big").hex(),
            "auc_recovered_sqn_ms": auc_resync(sub.mil, vector.rand, failure.auts),
        }
        record["authorization"] = serialise_authorization(auth)
        record["digest"] = _digest_fields(auth, b"", _DIGEST_METHOD)
        return _Round(record, None)
    auth = respond(
        challenge,
        username=ids.ue,
        res=response.res,
        method=_DIGEST_METHOD,
        uri=_DIGEST_URI,
        rand=rng,
    )
    record["outcome"] = "response"
    record["ue"] = {
        "RES": response.res.hex(),
        "CK": response.ck.hex(),
        "IK": response.ik.hex(),
        "usim_sqn_ms_after": after.sqn_ms,
    }
    record["authorization"] = serialise_authorization(auth)
    record["digest"] = _digest_fields(auth, response.res, _DIGEST_METHOD)
    return _Round(record, response)


@dataclass(frozen=True)
class _Exchange:
    record: JsonDict
    kek_ck: bytes
    kek_derived: bytes


def _exchange(
    sub: _Subscriber, ids: _Identities, description: str, rounds: Sequence[_Round]
) -> _Exchange:
    final = rounds[-1].response
    if final is None:
        raise VectorsError(f"exchange {sub.case_id} ends without a response")
    kek_ck = derive_kek("ck", final.ck, final.ik, ids.ue, ids.service_id)
    kek_derived = derive_kek("derived", final.ck, final.ik, ids.ue, ids.service_id)
    record: JsonDict = {
        "id": sub.case_id,
        "description": description,
        "subscriber": {
            "username": ids.ue,
            "K": sub.k.hex(),
            "OP": sub.op.hex(),
            "OPc": sub.mil.opc.hex(),
        },
        "request": {"method": _DIGEST_METHOD, "uri": _DIGEST_URI, "realm": ids.realm},
        "rounds": [r.record for r in rounds],
        "kek": {
            "ue_id": ids.ue,
            "service_id": ids.service_id,
            "ck": kek_ck.hex(),
            "derived": kek_derived.hex(),
        },
    }
    return _Exchange(record, kek_ck, kek_derived)


def _aka_exchanges(seed: int) -> dict[str, _Exchange]:
    ids = _identities(seed)
    now = _base_time(seed)
    out: dict[str, _Exchange] = {}

    # 1. The TS 35.208 Test Set 1 subscriber and challenge: RES, CK, IK are published.
    k = bytes.fromhex(_TS35208_SET1["K"])
    op = bytes.fromhex(_TS35208_SET1["OP"])
    sub = _Subscriber("ts35208-set1", k, op, Milenage.from_op(k, op))
    rng = SeededRandom(seed, "digest/ts35208-set1")
    sqn = int(_TS35208_SET1["SQN"], 16)
    first = _aka_round(
        sub,
        ids,
        rand_value=bytes.fromhex(_TS35208_SET1["RAND"]),
        sqn=sqn,
        amf=bytes.fromhex(_TS35208_SET1["AMF"]),
        sqn_ms=sqn - 32,
        now=now,
        rng=rng,
    )
    out[sub.case_id] = _exchange(
        sub,
        ids,
        "Digest AKA with the subscriber and challenge of TS 35.208 Test Set 1: "
        "RES, CK and IK equal the published f2, f3 and f4.",
        [first],
    )

    # 2. A seeded subscriber and challenge; its derived KEK protects a MIKEY case.
    rng = SeededRandom(seed, "digest/seeded")
    k, op = rng(16), rng(16)
    sub = _Subscriber("seeded", k, op, Milenage.from_op(k, op))
    sqn = 32 * rng.between(1, 1 << 40)
    first = _aka_round(
        sub,
        ids,
        rand_value=rng(16),
        sqn=sqn,
        amf=b"\x80\x00",
        sqn_ms=sqn - 32,
        now=now + 1,
        rng=rng,
    )
    out[sub.case_id] = _exchange(
        sub,
        ids,
        "Digest AKA with a seeded subscriber; its KEK (derived) protects the MIKEY "
        "case aes-cm-2keys-time-lifetime.",
        [first],
    )

    # 3. Resynchronisation: the USIM has seen a higher SQN, answers with AUTS, the AuC
    # recovers SQN_MS and a second challenge above it succeeds.
    rng = SeededRandom(seed, "digest/resync")
    k, op = rng(16), rng(16)
    sub = _Subscriber("resync", k, op, Milenage.from_op(k, op))
    sqn_ms = 32 * rng.between(1 << 20, 1 << 40)
    stale = sqn_ms - 32 * rng.between(1, 1000)
    first = _aka_round(
        sub,
        ids,
        rand_value=rng(16),
        sqn=stale,
        amf=b"\x80\x00",
        sqn_ms=sqn_ms,
        now=now + 2,
        rng=rng,
    )
    recovered = first.record["auts"]["auc_recovered_sqn_ms"]
    second = _aka_round(
        sub,
        ids,
        rand_value=rng(16),
        sqn=recovered + 32,
        amf=b"\x80\x00",
        sqn_ms=sqn_ms,
        now=now + 3,
        rng=rng,
    )
    out[sub.case_id] = _exchange(
        sub,
        ids,
        "Resynchronisation (RFC 3310 3.4, TS 33.102 6.3.3/6.3.5): the first "
        "challenge's SQN is not fresh, the client answers with auts and an empty password, "
        "the AuC recovers SQN_MS from AUTS and the second challenge succeeds.",
        [first, second],
    )
    return out


def digest_aka_vectors(seed: int) -> JsonDict:
    """The content of ``digest_aka.json``: MILENAGE sets and Digest AKA exchanges."""
    rng = SeededRandom(seed, "milenage/seeded")
    milenage = [
        _milenage_case(
            "ts35208-set1",
            _TS35208_SOURCE,
            bytes.fromhex(_TS35208_SET1["K"]),
            bytes.fromhex(_TS35208_SET1["OP"]),
            bytes.fromhex(_TS35208_SET1["RAND"]),
            int(_TS35208_SET1["SQN"], 16),
            bytes.fromhex(_TS35208_SET1["AMF"]),
        ),
        _milenage_case(
            "seeded",
            "generated from the seed",
            rng(16),
            rng(16),
            rng(16),
            rng.below(1 << 48),
            rng(2),
        ),
    ]
    exchanges = _aka_exchanges(seed)
    data = _header(
        seed,
        DIGEST_FILE,
        "MILENAGE (TS 35.206) input/output sets and HTTP Digest AKA (RFC 3310, AKAv1-MD5) "
        "exchanges with the KEK derived in both modes of the proposal.",
    )
    data["references"] = [
        "3GPP TS 35.206",
        "3GPP TS 35.208",
        "3GPP TS 33.102 6.3",
        "RFC 3310",
        "RFC 2617 3.2.2",
    ]
    data["milenage"] = milenage
    data["exchanges"] = [e.record for e in exchanges.values()]
    return data


# --------------------------------------------------------------------------- SRTP


@dataclass(frozen=True)
class _SrtpKeys:
    current: MasterKey
    following: MasterKey  # the next TEK, switched to by MKI
    ssrc_80: int
    ssrc_32: int
    roc_32: int


def _srtp_keys(seed: int) -> _SrtpKeys:
    rng = SeededRandom(seed, "srtp/keys")
    mki_a = rng(_MIKEY_MKI_LEN)
    mki_b = mki_a
    while mki_b == mki_a:
        mki_b = rng(_MIKEY_MKI_LEN)
    current = MasterKey(mki_a, rng(16), rng(14))
    following = MasterKey(mki_b, rng(16), rng(14))
    ssrc_80 = rng.below(1 << 32)
    ssrc_32 = ssrc_80
    while ssrc_32 == ssrc_80:
        ssrc_32 = rng.below(1 << 32)
    return _SrtpKeys(current, following, ssrc_80, ssrc_32, rng.between(1, (1 << 32) - 2))


def _rtp_packet(rng: SeededRandom, seq: int, ssrc: int, shape: int) -> bytes:
    """An RTP packet (RFC 3550 5.1); ``shape`` varies CSRCs, header extension and marker."""
    csrcs = [rng.below(1 << 32) for _ in range(2)] if shape % 4 == 1 else []
    extension = shape % 4 == 2
    b0 = 0x80 | (0x10 if extension else 0) | len(csrcs)
    b1 = (0x80 if shape % 3 == 0 else 0) | 96
    head = struct.pack("!BBHII", b0, b1, seq, rng.below(1 << 32), ssrc)
    head += b"".join(struct.pack("!I", c) for c in csrcs)
    if extension:  # RFC 8285 one-byte header extension, one 2-byte element + padding
        head += struct.pack("!HH", 0xBEDE, 1) + bytes([0x11]) + rng(2) + b"\x00"
    return head + rng(rng.between(20, 180))


def _rtcp_packet(rng: SeededRandom, ssrc: int, i: int) -> bytes:
    """A compound RTCP packet: sender report + SDES CNAME (RFC 3550 6.4.1, 6.5)."""
    sr = struct.pack(
        "!BBHIIIIII",
        0x80,
        200,
        6,
        ssrc,
        rng.below(1 << 32),
        rng.below(1 << 32),
        rng.below(1 << 32),
        100 + i,
        16000 + 160 * i,
    )
    cname = b"ue@mbms"
    sdes = struct.pack("!BBHIBB", 0x81, 202, 4, ssrc, 1, len(cname)) + cname + b"\x00" * 3
    return sr + sdes


def _session_keys(key: MasterKey) -> JsonDict:
    def one(enc: KeyLabel, auth: KeyLabel, salt: KeyLabel) -> JsonDict:
        return {
            "encryption_key": derive_session_key(key.key, key.salt, enc, 0, 0, 16).hex(),
            "authentication_key": derive_session_key(key.key, key.salt, auth, 0, 0, 20).hex(),
            "salt": derive_session_key(key.key, key.salt, salt, 0, 0, 14).hex(),
        }

    return {
        "srtp": one(KeyLabel.SRTP_ENCRYPTION, KeyLabel.SRTP_AUTHENTICATION, KeyLabel.SRTP_SALT),
        "srtcp": one(KeyLabel.SRTCP_ENCRYPTION, KeyLabel.SRTCP_AUTHENTICATION, KeyLabel.SRTCP_SALT),
    }


def _srtp_stream(
    rng: SeededRandom,
    keys: _SrtpKeys,
    *,
    stream_id: str,
    description: str,
    tag: AuthTag,
    ssrc: int,
    roc: int,
    first_seq: int,
    count: int,
    switch_at: int,
) -> JsonDict:
    sender = SrtpSender(
        SrtpPolicy(mki_length=_MIKEY_MKI_LEN, rtp_auth_tag=tag, rtcp_auth_tag=tag),
        [keys.current, keys.following],
    )
    sender.set_roc(ssrc, roc)
    packets = []
    index = (roc << 16) + first_seq
    for n in range(count):
        if n == switch_at:
            sender.switch_to(keys.following.mki)
        seq = index & 0xFFFF
        plain = _rtp_packet(rng, seq, ssrc, n)
        protected = sender.protect(plain)
        packets.append(
            {
                "seq": seq,
                "roc": index >> 16,
                "index": index,
                "mki": sender.current_mki.hex() if sender.current_mki else "",
                "plaintext": plain.hex(),
                "protected": protected.hex(),
            }
        )
        index += 1
    return {
        "id": stream_id,
        "description": description,
        "kind": "srtp",
        "ssrc": ssrc,
        "initial_roc": roc,
        "auth_tag_length": int(tag),
        "packets": packets,
    }


def _srtcp_stream(
    rng: SeededRandom, keys: _SrtpKeys, *, ssrc: int, count: int, switch_at: int
) -> JsonDict:
    sender = SrtpSender(SrtpPolicy(mki_length=_MIKEY_MKI_LEN), [keys.current, keys.following])
    packets = []
    for n in range(count):
        if n == switch_at:
            sender.switch_to(keys.following.mki)
        plain = _rtcp_packet(rng, ssrc, n)
        protected = sender.protect_rtcp(plain)
        packets.append(
            {
                "srtcp_index": n,
                "e_flag": 1,
                "mki": sender.current_mki.hex() if sender.current_mki else "",
                "plaintext": plain.hex(),
                "protected": protected.hex(),
            }
        )
    return {
        "id": "srtcp-80",
        "description": "SRTCP (E flag set) with HMAC-SHA1-80; the sender switches to the next "
        f"master key by MKI at SRTCP index {switch_at}.",
        "kind": "srtcp",
        "ssrc": ssrc,
        "auth_tag_length": int(AuthTag.HMAC_SHA1_80),
        "packets": packets,
    }


def srtp_vectors(seed: int) -> JsonDict:
    """The content of ``srtp_mki.json``: SRTP/SRTCP with a 4-byte MKI, key switch, rollover."""
    keys = _srtp_keys(seed)
    data = _header(
        seed,
        SRTP_FILE,
        "SRTP and SRTCP packets (RFC 3711, AES-CM-128 / HMAC-SHA1) carrying a 4-byte MKI, "
        "across a switch of master key by MKI and across a rollover of the sequence number.",
    )
    data["references"] = ["RFC 3711 3.1-3.4, 4.1.1, 4.2, 4.3", "RFC 3550 5.1, 6.4.1, 6.5"]
    data["crypto"] = {
        "cipher": "AES-CM-128",
        "auth": "HMAC-SHA1",
        "mki_length": _MIKEY_MKI_LEN,
        "key_derivation_rate": 0,
        "srtcp_encryption": True,
    }
    data["master_keys"] = [
        {
            "role": role,
            "mki": k.mki.hex(),
            "master_key": k.key.hex(),
            "master_salt": k.salt.hex(),
            "session_keys": _session_keys(k),
        }
        for role, k in (("current", keys.current), ("next", keys.following))
    ]
    streams = [
        _srtp_stream(
            SeededRandom(seed, "srtp/rtp-80"),
            keys,
            stream_id="rtp-80",
            description="SRTP with HMAC-SHA1-80 from ROC 0: the key switches by MKI at the "
            "5th packet, the sequence number wraps (ROC 0 -> 1) at the 9th.",
            tag=AuthTag.HMAC_SHA1_80,
            ssrc=keys.ssrc_80,
            roc=0,
            first_seq=65528,
            count=14,
            switch_at=4,
        ),
        _srtp_stream(
            SeededRandom(seed, "srtp/rtp-32"),
            keys,
            stream_id="rtp-32",
            description="SRTP with HMAC-SHA1-32 starting at a ROC conveyed by key management "
            "(MIKEY CS map): the key switches by MKI at the 3rd packet, the sequence number "
            "wraps (ROC r -> r+1) at the 5th.",
            tag=AuthTag.HMAC_SHA1_32,
            ssrc=keys.ssrc_32,
            roc=keys.roc_32,
            first_seq=65532,
            count=8,
            switch_at=2,
        ),
        _srtcp_stream(
            SeededRandom(seed, "srtp/srtcp-80"), keys, ssrc=keys.ssrc_80, count=6, switch_at=3
        ),
    ]
    data["streams"] = streams
    return data


# --------------------------------------------------------------------------- MIKEY


@dataclass(frozen=True)
class _MikeyCase:
    case_id: str
    description: str
    encr: EncrAlg
    n_keys: int
    fetch: str  # "time" or "srtp_index"
    lifetime: bool
    counter: bool  # T = COUNTER (else NTP-UTC)
    salted: tuple[bool, ...] = ()  # per key, default all TEK+SALT


# AES-KW (RFC 3394) has no padding in RFC 3830, so the Key data chain must be a multiple
# of 8 bytes: a TEK+SALT sub-payload (16-byte TEK, 14-byte salt) is 37 bytes + MKI, so
# the AES-KW cases use a 3-byte MKI (40 bytes per key).
_MIKEY_CASES: Final = (
    _MikeyCase(
        "null-1key-time",
        "Encryption NULL (the Key data is readable on the wire), one "
        "TEK+SALT with its MKI, fetch hint as a time, T = NTP-UTC.",
        EncrAlg.NULL,
        1,
        "time",
        False,
        False,
    ),
    _MikeyCase(
        "aes-cm-1key-index-lifetime",
        "AES-CM-128, one key, fetch hint as an SRTP "
        "index, TEK lifetime, T = COUNTER; the KEK is CK of the Digest AKA exchange "
        "ts35208-set1 (KEK option 'ck').",
        EncrAlg.AES_CM_128,
        1,
        "srtp_index",
        True,
        True,
    ),
    _MikeyCase(
        "aes-cm-2keys-time-lifetime",
        "AES-CM-128, two keys: the current and the next "
        "SRTP master key of srtp_mki.json; fetch hint as a time, TEK lifetime, "
        "T = NTP-UTC; the KEK is the derived KEK of the Digest AKA exchange seeded.",
        EncrAlg.AES_CM_128,
        2,
        "time",
        True,
        False,
    ),
    _MikeyCase(
        "aes-kw-1key-time",
        "AES-KW-128, one key (3-byte MKI: AES-KW needs a multiple "
        "of 8 bytes), fetch hint as a time, T = COUNTER.",
        EncrAlg.AES_KW_128,
        1,
        "time",
        False,
        True,
    ),
    _MikeyCase(
        "aes-kw-2keys-index-lifetime",
        "AES-KW-128, two keys (3-byte MKIs), fetch hint "
        "as an SRTP index, TEK lifetime, T = NTP-UTC.",
        EncrAlg.AES_KW_128,
        2,
        "srtp_index",
        True,
        False,
    ),
    _MikeyCase(
        "null-3keys-index",
        "Encryption NULL, three keys (the last a TEK without salt), "
        "fetch hint as an SRTP index, T = COUNTER.",
        EncrAlg.NULL,
        3,
        "srtp_index",
        False,
        True,
        (True, True, False),
    ),
)

_ENCR_NAMES: Final = {
    EncrAlg.NULL: "NULL",
    EncrAlg.AES_CM_128: "AES-CM-128",
    EncrAlg.AES_KW_128: "AES-KW-128",
}
_MAC_NAMES: Final = {MacAlg.NULL: "NULL", MacAlg.HMAC_SHA_1_160: "HMAC-SHA-1-160"}
_TS_NAMES: Final = {TsType.NTP_UTC: "NTP-UTC", TsType.NTP: "NTP", TsType.COUNTER: "COUNTER"}


def _mikey_policy(tag: AuthTag, policy_no: int = 0) -> MikeySrtpPolicy:
    return MikeySrtpPolicy(
        policy_no=policy_no,
        encr_alg=SrtpEncrAlg.AES_CM,
        encr_key_len=16,
        auth_alg=SrtpAuthAlg.HMAC_SHA_1,
        auth_key_len=20,
        salt_key_len=14,
        prf=SrtpPrf.AES_CM,
        kdr=0,
        srtp_encryption=True,
        srtcp_encryption=True,
        fec_order=SrtpFecOrder.FEC_SRTP,
        srtp_authentication=True,
        auth_tag_len=int(tag),
        srtp_prefix_len=0,
    )


def _policy_json(p: MikeySrtpPolicy) -> JsonDict:
    def num(v: int | None) -> int | None:
        return None if v is None else int(v)

    return {
        "policy_no": p.policy_no,
        "encr_alg": num(p.encr_alg),
        "encr_key_len": p.encr_key_len,
        "auth_alg": num(p.auth_alg),
        "auth_key_len": p.auth_key_len,
        "salt_key_len": p.salt_key_len,
        "prf": num(p.prf),
        "key_derivation_rate": p.kdr,
        "srtp_encryption": num(p.srtp_encryption),
        "srtcp_encryption": num(p.srtcp_encryption),
        "fec_order": num(p.fec_order),
        "srtp_authentication": num(p.srtp_authentication),
        "auth_tag_len": p.auth_tag_len,
        "srtp_prefix_len": p.srtp_prefix_len,
    }


def _fetch_json(fetch: FetchHint) -> JsonDict:
    if isinstance(fetch, FetchAtTime):
        return {
            "form": "time",
            "ntp": _ntp_hex(fetch.ntp),
            "unix_time": (fetch.ntp >> 32) - NTP_UNIX_OFFSET,
        }
    return {"form": "srtp_index", "index": fetch.index, "roc": fetch.roc, "seq": fetch.seq}


def _key_json(key: TekKey) -> JsonDict:
    return {
        "type": "TEK+SALT" if key.salt is not None else "TEK",
        "tek": key.tek.hex(),
        "salt": key.salt.hex() if key.salt is not None else None,
        "mki": key.mki.hex() if key.mki is not None else None,
    }


def _mikey_case(
    seed: int,
    case: _MikeyCase,
    position: int,
    ids: _Identities,
    srtp: _SrtpKeys,
    exchanges: dict[str, _Exchange],
    now: int,
) -> tuple[JsonDict, bytes, bytes]:
    rng = SeededRandom(seed, f"mikey/{case.case_id}")
    kek_source: JsonDict | None = None
    if case.case_id == "aes-cm-1key-index-lifetime":
        kek = exchanges["ts35208-set1"].kek_ck
        kek_source = {"file": DIGEST_FILE, "exchange": "ts35208-set1", "kek": "ck"}
    elif case.case_id == "aes-cm-2keys-time-lifetime":
        kek = exchanges["seeded"].kek_derived
        kek_source = {"file": DIGEST_FILE, "exchange": "seeded", "kek": "derived"}
    else:
        kek = rng(16)
    keys_source: JsonDict | None = None
    if case.case_id == "aes-cm-2keys-time-lifetime":
        keys = [TekKey(k.key, k.salt, k.mki) for k in (srtp.current, srtp.following)]
        # One policy per stream of srtp_mki.json: rtp-80 uses 10-byte tags, rtp-32 4-byte.
        cs_map = [SrtpCs(0, srtp.ssrc_80, 0), SrtpCs(1, srtp.ssrc_32, srtp.roc_32)]
        policies = [_mikey_policy(AuthTag.HMAC_SHA1_80, 0), _mikey_policy(AuthTag.HMAC_SHA1_32, 1)]
        keys_source = {"file": SRTP_FILE, "member": "master_keys"}
    else:
        mki_len = _KW_MKI_LEN if case.encr is EncrAlg.AES_KW_128 else _MIKEY_MKI_LEN
        salted = case.salted or (True,) * case.n_keys
        keys = [TekKey(rng(16), rng(14) if s else None, rng(mki_len)) for s in salted]
        cs_map = [SrtpCs(0, rng.below(1 << 32), rng.below(1 << 16))]
        policies = [_mikey_policy(AuthTag.HMAC_SHA1_80)]
    roc = cs_map[0].roc
    fetch: FetchHint
    if case.fetch == "time":
        fetch = FetchAtTime(ntp_from_unix(now + _TEK_PERIOD - rng.below(600)))
    else:
        fetch = FetchAtSrtpIndex.from_roc_seq(roc, rng.below(1 << 16))
    lifetime = 2 * _TEK_PERIOD if case.lifetime else None
    counter = rng.between(1, 1 << 31) if case.counter else None
    delivery: TekDelivery = new_tek_delivery(
        csb_id=rng.below(1 << 32),
        keys=keys,
        now=now,
        rand=rng,
        counter=counter,
        cs_map=cs_map,
        policies=policies,
        id_i=IdPayload(IdType.URI, ids.bmsc.encode()),
        id_r=IdPayload(IdType.NAI, ids.ue.encode()),
        fetch=fetch,
        lifetime=lifetime,
        encr_alg=case.encr,
        mac_alg=MacAlg.HMAC_SHA_1_160,
        request_verification=True,
    )
    message = build_tek_delivery(delivery, kek)
    verification = build_verification(delivery, kek)
    mk = derive_message_keys(
        kek, delivery.csb_id, delivery.rand, delivery.encr_alg, delivery.mac_alg
    )
    kemac = parse_message(message).payloads[-1]
    if not isinstance(kemac, KemacPayload):
        raise VectorsError("built message does not end in KEMAC")
    ts = delivery.timestamp
    assert delivery.id_i is not None and delivery.id_r is not None
    derived: JsonDict = {
        "encr_key": mk.encr_key.hex() or None,
        "salt_key": mk.salt_key.hex() or None,
        "auth_key": mk.auth_key.hex(),
        "aes_cm_iv": (
            aes_cm_iv(mk.salt_key, delivery.csb_id, ts.value_bytes()).hex()
            if case.encr is EncrAlg.AES_CM_128
            else None
        ),
        "key_data_plaintext": serialise_key_data_chain(
            [k.to_key_data() for k in delivery.keys]
        ).hex(),
        "encr_data": kemac.encr_data.hex(),
        "mac": kemac.mac.hex(),
        "tek_fetch_extension_data": TekFetchExtension(fetch, lifetime).to_payload().data.hex(),
    }
    record: JsonDict = {
        "id": case.case_id,
        "description": case.description,
        "kek": kek.hex(),
        "kek_source": kek_source,
        "inputs": {
            "csb_id": delivery.csb_id,
            "cs_map": [
                {"policy_no": c.policy_no, "ssrc": c.ssrc, "roc": c.roc} for c in delivery.cs_map
            ],
            "v_flag": delivery.v_flag,
            "now": now,
            "counter": counter,
            "timestamp": {"type": _TS_NAMES[ts.ts_type], "value": ts.value_bytes().hex()},
            "rand": delivery.rand.hex(),
            "id_i": {"type": "URI", "data": ids.bmsc},
            "id_r": {"type": "NAI", "data": ids.ue},
            "policies": [_policy_json(p) for p in policies],
            "keys": [_key_json(k) for k in delivery.keys],
            "keys_source": keys_source,
            "fetch": _fetch_json(fetch),
            "lifetime": lifetime,
            "encr_alg": _ENCR_NAMES[delivery.encr_alg],
            "mac_alg": _MAC_NAMES[delivery.mac_alg],
        },
        "derived": derived,
        "message": message.hex(),
        "verification": {
            "message": verification.hex(),
            "auth_alg": _MAC_NAMES[MacAlg.HMAC_SHA_1_160],
            "mac_suffix": (delivery.id_i.data + delivery.id_r.data + ts.value_bytes()).hex(),
        },
        "replay": {"mode": "counter" if counter is not None else "timestamp", "now": now},
        "pcap_frames": [2 * position + 1, 2 * position + 2],
    }
    return record, message, verification


def _mikey_cases(seed: int) -> list[tuple[JsonDict, bytes, bytes]]:
    ids = _identities(seed)
    srtp = _srtp_keys(seed)
    exchanges = _aka_exchanges(seed)
    now = _base_time(seed) + 60
    return [
        _mikey_case(seed, case, i, ids, srtp, exchanges, now + 10 * i)
        for i, case in enumerate(_MIKEY_CASES)
    ]


def mikey_vectors(seed: int) -> JsonDict:
    """The content of ``mikey_tek_delivery.json``: TEK delivery and verification messages."""
    data = _header(
        seed,
        MIKEY_FILE,
        "MIKEY (RFC 3830) pre-shared-key TEK delivery messages (I_MESSAGE) of the MBMS "
        "proposal, protected with the UE's KEK, and the UE's verification messages "
        "(R_MESSAGE with V).",
    )
    data["references"] = [
        "RFC 3830 3.1, 4.1.2, 4.1.4, 4.2.3, 4.2.4, 5.2, 6",
        "RFC 3394 (AES-KW)",
        "RFC 3711 3.3.1 (SRTP index)",
    ]
    data["tek_fetch_extension"] = {
        "general_extension_type": 255,
        "data": "version (1 byte) = 1, then items tag (1 byte) | length (1 byte) | value",
        "items": {
            "1": "fetch time, 8-byte NTP-UTC timestamp",
            "2": "fetch SRTP index, 6 bytes (ROC * 2^16 + SEQ)",
            "3": "TEK lifetime in seconds, 4 bytes",
        },
    }
    data["pcap"] = {
        "file": PCAP_FILE,
        "udp_port": MIKEY_PORT,
        "frames": "for case n (from 0): frame 2n+1 is the I_MESSAGE, frame 2n+2 "
        "the verification message",
    }
    data["cases"] = [record for record, _, _ in _mikey_cases(seed)]
    return data


# --------------------------------------------------------------------------- pcap


def _pcapng_option(code: int, value: bytes) -> bytes:
    pad = -len(value) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\x00" * pad


def _pcapng_block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def _pcapng(classic: bytes, section_comment: str, comments: Sequence[str]) -> bytes:
    """Re-wrap a classic libpcap image (from :func:`pcap_bytes`) as pcapng with comments.

    pcapng (draft-ietf-opsawg-pcapng): a Section Header Block with an ``opt_comment``,
    one Interface Description Block (link type and snap length of the classic header,
    microsecond timestamps) and an Enhanced Packet Block per record, each with its
    ``opt_comment``.
    """
    _, _, _, _, _, snaplen, linktype = struct.unpack_from("<IHHiIII", classic)
    end_opt = _pcapng_option(0, b"")
    shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    shb += _pcapng_option(1, section_comment.encode()) + end_opt
    out = bytearray(_pcapng_block(0x0A0D0D0A, shb))
    out += _pcapng_block(1, struct.pack("<HHI", linktype, 0, snaplen))
    at = 24
    for comment in comments:
        sec, usec, incl, orig = struct.unpack_from("<IIII", classic, at)
        data = classic[at + 16 : at + 16 + incl]
        at += 16 + incl
        ts = sec * 1_000_000 + usec
        body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, incl, orig)
        body += data + b"\x00" * (-incl % 4)
        body += _pcapng_option(1, comment.encode()) + end_opt
        out += _pcapng_block(6, body)
    if at != len(classic):
        raise VectorsError("pcap records and comments do not match")
    return bytes(out)


def mikey_pcap(seed: int) -> bytes:
    """``mikey.pcap``: each case's I_MESSAGE then its verification message, UDP port 2269.

    The BM-SC sends from port 49152 + case number to the UE's port 2269; the UE
    answers from 2269. All addresses are 127.0.0.1. pcapng, with the generator version
    and seed in the section comment and each frame's case in its packet comment.
    """
    now = _base_time(seed) + 60
    packets: list[Packet] = []
    comments: list[str] = []
    for i, (record, message, verification) in enumerate(_mikey_cases(seed)):
        bmsc_port = 49152 + i
        t = float(now + 10 * i)
        packets.append(Packet(t, bmsc_port, MIKEY_PORT, message))
        packets.append(Packet(t + 0.5, MIKEY_PORT, bmsc_port, verification))
        comments.append(f"{MIKEY_FILE} cases[{i}] {record['id']}: TEK delivery I_MESSAGE")
        comments.append(f"{MIKEY_FILE} cases[{i}] {record['id']}: verification message")
    section = (
        f"mbmssec vectors {GENERATOR_VERSION} (mbmssec {__version__}), seed {seed}: "
        f"the MIKEY messages of {MIKEY_FILE}; format in {DOCUMENTATION}"
    )
    return _pcapng(pcap_bytes(packets), section, comments)


# --------------------------------------------------------------------------- all files


@dataclass(frozen=True)
class VectorFile:
    """One output file: its name, its exact bytes, how many items it holds, what it is."""

    name: str
    data: bytes
    items: int
    summary: str


def readme_text(seed: int, files: Sequence[VectorFile]) -> str:
    """``README.txt``: what each file is, the seed, the generator version, checksums."""
    lines = [
        "MBMS key management test vectors (mbmssec)",
        "",
        f"Generator: mbmssec vectors {GENERATOR_VERSION} (mbmssec {__version__})",
        f"Seed: {seed}",
        f"Regenerate: mbmssec vectors --out DIR --seed {seed}",
        "",
        f"The file format is documented in {DOCUMENTATION} of the mbmssec source tree.",
        "Byte strings are lower-case hex; every JSON file records the generator version",
        "and the seed; mikey.pcap is pcapng and records them in its section comment.",
        "",
        "Files (SHA-256):",
    ]
    for f in files:
        lines.append(f"  {f.name}: {f.summary}")
        lines.append(f"    sha256 {_digest(hashes.SHA256(), f.data).hex()}")
    return "\n".join(lines) + "\n"


def generate(seed: int) -> tuple[VectorFile, ...]:
    """Every output file for ``seed``, in writing order (README.txt last)."""
    check_seed(seed)
    mikey = mikey_vectors(seed)
    srtp = srtp_vectors(seed)
    digest = digest_aka_vectors(seed)
    n_packets = sum(len(s["packets"]) for s in srtp["streams"])
    files = [
        VectorFile(
            MIKEY_FILE,
            _json_bytes(mikey),
            len(mikey["cases"]),
            f"{len(mikey['cases'])} MIKEY TEK delivery cases with verification messages",
        ),
        VectorFile(
            SRTP_FILE,
            _json_bytes(srtp),
            n_packets,
            f"{n_packets} SRTP/SRTCP packets in {len(srtp['streams'])} streams",
        ),
        VectorFile(
            DIGEST_FILE,
            _json_bytes(digest),
            len(digest["exchanges"]),
            f"{len(digest['milenage'])} MILENAGE sets, {len(digest['exchanges'])} "
            "Digest AKA exchanges",
        ),
    ]
    pcap = mikey_pcap(seed)
    files.append(
        VectorFile(
            PCAP_FILE,
            pcap,
            2 * len(mikey["cases"]),
            f"{2 * len(mikey['cases'])} MIKEY messages on UDP port {MIKEY_PORT}",
        )
    )
    readme = readme_text(seed, files).encode("ascii")
    files.append(VectorFile(README_FILE, readme, 0, f"this overview; format in {DOCUMENTATION}"))
    return tuple(files)

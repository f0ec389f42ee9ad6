"""SRTP and SRTCP (RFC 3711) as used to protect MBMS streaming (TS 33.246).

The MBMS profile protects the media with AES-CM-128 and HMAC-SHA1 (80- or 32-bit tag)
and makes the Master Key Identifier (MKI) mandatory: every packet names the traffic key
(the MTK delivered by MIKEY) it was protected with, so a UE can hold the current and the
next key and follow the BM-SC when it switches. This module is sans-I/O: contexts take
packets as bytes and return bytes; nothing here reads a clock, a socket or a random source.
A context is a plain mutable object and is not thread-safe.

Public surface:

* :class:`MasterKey` - one master key, master salt and its MKI (RFC 3711 §3.2.1).
* :class:`SrtpPolicy` - the crypto-context parameters shared by both ends: MKI length
  (0 for the RFC's MKI-less option), tag lengths, key derivation rate, replay window.
* :class:`SrtpSender` - protects RTP/RTCP with a chosen current MKI (``protect``,
  ``protect_many``, ``protect_rtcp``, ``protect_rtcp_many``).
* :class:`SrtpReceiver` - holds several master keys indexed by MKI and unprotects
  (``unprotect``, ``unprotect_many``, ``unprotect_each`` and the ``_rtcp`` variants).
* Errors: :class:`SrtpError` and its subclasses :class:`SrtpParseError`,
  :class:`UnknownMkiError`, :class:`SrtpAuthError`, :class:`SrtpReplayError`,
  :class:`KeyLifetimeError`, :class:`SrtpConfigError`.
* :func:`parse_srtp` - the clear fields of a protected packet (sequence number, SSRC,
  MKI) without any key, for checking what went on the wire.
* Building blocks checked against RFC 3711 Appendix B: :func:`aes_cm_keystream`,
  :func:`derive_session_key`, :func:`srtp_iv`, :func:`estimate_index`.

The ``*_many`` calls are the fast path: one AES-ECB call produces the keystream blocks of a
whole batch, the XOR is a single numpy operation, and the HMAC contexts are ``copy()``-ed
from a keyed template.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from hmac import compare_digest
from typing import Final

from mbmssec.errors import MbmssecError
from mbmssec.impl.protocols._srtp_kdf import (
    MASTER_KEY_LENGTH,
    MASTER_SALT_LENGTH,
    KeyLabel,
    SessionKeys,
    aes_cm_keystream,
    derive_session_key,
    derive_session_keys,
    srtp_iv,
    xor_keystream_batch,
)

__all__ = [
    "MAX_MKI_LENGTH",
    "MAX_PACKET_LENGTH",
    "SRTCP_MAX_INDEX",
    "SRTP_MAX_INDEX",
    "AuthTag",
    "KeyLabel",
    "KeyLifetimeError",
    "KeyUsage",
    "MasterKey",
    "SrtpAuthError",
    "SrtpConfigError",
    "SrtpError",
    "SrtpFields",
    "SrtpParseError",
    "SrtpPolicy",
    "SrtpReceiver",
    "SrtpReplayError",
    "SrtpSender",
    "UnknownMkiError",
    "aes_cm_keystream",
    "derive_session_key",
    "estimate_index",
    "parse_srtp",
    "srtp_iv",
]

SRTP_MAX_INDEX: Final = (1 << 48) - 1  # RFC 3711 §3.3.1: 48-bit packet index
SRTCP_MAX_INDEX: Final = (1 << 31) - 1  # RFC 3711 §3.4: 31-bit SRTCP index
MAX_MKI_LENGTH: Final = 128  # as libsrtp's SRTP_MAX_MKI_LEN; RFC 3711 leaves it open
MAX_PACKET_LENGTH: Final = 65535  # a protected packet must fit one UDP datagram
_MAX_KDR_EXPONENT: Final = 24  # RFC 3711 §4.3.1: kdr is 0 or 2^t, 0 <= t <= 24
_MAX_REPLAY_WINDOW: Final = 1 << 15  # a window wider than half the SEQ space is meaningless
_SESSION_KEY_CACHE: Final = 4  # derived-key sets kept per master key when kdr != 0

_RTP_HEADER: Final = struct.Struct("!BBHII")
_RTCP_HEADER: Final = struct.Struct("!BBHI")


# --- errors ---------------------------------------------------------------------------


class SrtpError(MbmssecError):
    """Base of every SRTP/SRTCP error.

    ``position`` is set by the batch calls to the index of the offending packet in the
    batch; it is ``None`` for single-packet calls.
    """

    position: int | None = None


class SrtpConfigError(SrtpError):
    """A policy, key or call argument is invalid (wrong key length, unknown MKI to send)."""


class SrtpParseError(SrtpError):
    """A packet is malformed: too short, wrong RTP version, a header running past its end.

    ``offset`` is the byte offset at which the packet stopped making sense.
    """

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at byte {offset})")
        self.offset = offset


class UnknownMkiError(SrtpError):
    """The packet's MKI names no master key held by the context (RFC 3711 §3.3 step 3)."""

    def __init__(self, mki: bytes) -> None:
        super().__init__(f"no master key with MKI {mki.hex() or '(none)'}")
        self.mki = mki


class SrtpAuthError(SrtpError):
    """The authentication tag did not verify. Deliberately carries no detail."""

    def __init__(self) -> None:
        super().__init__("authentication failed")


class SrtpReplayError(SrtpError):
    """The packet index was already accepted, or is older than the replay window.

    Raised on the receiver (RFC 3711 §3.3.2) and, unless the policy allows repeated
    transmission, on the sender when asked to reuse an index (which would reuse keystream).
    """

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"index {index}: {reason}")
        self.index = index
        self.reason = reason


class KeyLifetimeError(SrtpError):
    """A master key or the index space is exhausted (2^48 SRTP / 2^31 SRTCP, RFC 3711 §9.2)."""


# --- configuration --------------------------------------------------------------------


class AuthTag(IntEnum):
    """HMAC-SHA1 authentication tag lengths in octets (RFC 3711 §4.2.1, RFC 4568)."""

    HMAC_SHA1_80 = 10
    HMAC_SHA1_32 = 4


@dataclass(frozen=True)
class MasterKey:
    """One SRTP master key: 16-byte AES key, 14-byte master salt and the MKI naming it.

    In the MBMS profile the key is the MTK and the MKI identifies it; with a policy whose
    ``mki_length`` is 0 the MKI must be empty.
    """

    mki: bytes
    key: bytes
    salt: bytes

    def __post_init__(self) -> None:
        if len(self.key) != MASTER_KEY_LENGTH:
            raise SrtpConfigError(f"master key must be {MASTER_KEY_LENGTH} bytes")
        if len(self.salt) != MASTER_SALT_LENGTH:
            raise SrtpConfigError(f"master salt must be {MASTER_SALT_LENGTH} bytes")
        if len(self.mki) > MAX_MKI_LENGTH:
            raise SrtpConfigError(f"MKI longer than {MAX_MKI_LENGTH} bytes")

    def __repr__(self) -> str:  # never print key material
        return f"MasterKey(mki={self.mki.hex()!r}, key=..., salt=...)"


@dataclass(frozen=True)
class SrtpPolicy:
    """Crypto-context parameters (RFC 3711 §3.2, §8.2) for the MBMS profile.

    ``mki_length``: octets of MKI carried in every packet. The MBMS profile makes the MKI
    mandatory, so the default is non-zero (4); 0 selects RFC 3711's MKI-less option, in
    which a context holds exactly one master key.
    ``rtp_auth_tag`` / ``rtcp_auth_tag``: HMAC-SHA1-80 (default) or HMAC-SHA1-32.
    ``key_derivation_rate``: 0 (derive once) or a power of two up to 2^24; session keys
    are re-derived whenever ``index DIV rate`` changes (RFC 3711 §4.3.1).
    ``replay_window``: width of the replay list in packets (RFC 3711 §3.3.2 asks for at
    least 64); also bounds how far back a sender may protect out of order.
    ``encrypt_rtcp``: set the SRTCP E flag and encrypt (RFC 3711 §3.4).
    ``allow_repeat_tx``: let the sender protect an index twice (only safe if the payload
    is identical, as for a retransmission).
    """

    mki_length: int = 4
    rtp_auth_tag: AuthTag = AuthTag.HMAC_SHA1_80
    rtcp_auth_tag: AuthTag = AuthTag.HMAC_SHA1_80
    key_derivation_rate: int = 0
    replay_window: int = 64
    encrypt_rtcp: bool = True
    allow_repeat_tx: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.mki_length <= MAX_MKI_LENGTH:
            raise SrtpConfigError(f"mki_length must be 0..{MAX_MKI_LENGTH}")
        for tag in (self.rtp_auth_tag, self.rtcp_auth_tag):
            if tag not in (AuthTag.HMAC_SHA1_80, AuthTag.HMAC_SHA1_32):
                raise SrtpConfigError("auth tag must be HMAC_SHA1_80 or HMAC_SHA1_32")
        object.__setattr__(self, "rtp_auth_tag", AuthTag(self.rtp_auth_tag))
        object.__setattr__(self, "rtcp_auth_tag", AuthTag(self.rtcp_auth_tag))
        kdr = self.key_derivation_rate
        if kdr != 0 and not (kdr > 0 and kdr & (kdr - 1) == 0 and kdr <= 1 << _MAX_KDR_EXPONENT):
            raise SrtpConfigError("key_derivation_rate must be 0 or 2^t with 0 <= t <= 24")
        if not 1 <= self.replay_window <= _MAX_REPLAY_WINDOW:
            raise SrtpConfigError(f"replay_window must be 1..{_MAX_REPLAY_WINDOW}")

    @property
    def uses_mki(self) -> bool:
        """True when every packet carries an MKI (always so in the MBMS profile)."""
        return self.mki_length > 0


@dataclass(frozen=True)
class KeyUsage:
    """How many packets a master key has protected (sender) or accepted (receiver)."""

    srtp_packets: int
    srtcp_packets: int


# --- index estimation and the replay list ---------------------------------------------


def estimate_index(roc: int, s_l: int, seq: int) -> int:
    """The packet index a receiver guesses for ``seq`` (RFC 3711 §3.3.1, Appendix A).

    ``roc`` and ``s_l`` are the rollover counter and highest sequence number seen so far.
    Returns ``v * 2^16 + seq`` where ``v`` is ROC-1, ROC or ROC+1. A result below zero
    means the packet predates the stream (``v`` would be ROC-1 with ROC = 0); a result
    above :data:`SRTP_MAX_INDEX` means the index space is exhausted.
    """
    if s_l < 32768:
        v = roc - 1 if seq - s_l > 32768 else roc
    else:
        v = roc + 1 if s_l - 32768 > seq else roc
    return (v << 16) + seq


class _Window:
    """The highest index accepted so far and a bit mask of the ``size`` indices below it.

    Bit ``k`` of ``bits`` records index ``highest - k``. ``highest`` is -1 before the
    first packet. Used for the SRTP replay list, the SRTCP replay list and the sender's
    guard against reusing an index.
    """

    __slots__ = ("bits", "highest")

    def __init__(self, highest: int = -1, bits: int = 0) -> None:
        self.highest = highest
        self.bits = bits

    def copy(self) -> _Window:
        return _Window(self.highest, self.bits)

    def check(self, index: int, size: int, allow_repeat: bool = False) -> None:
        """Raise :class:`SrtpReplayError` unless ``index`` may be accepted (RFC 3711 §3.3.2)."""
        delta = self.highest - index
        if delta < 0:
            return
        if delta >= size:
            raise SrtpReplayError(index, "older than the replay window")
        if not allow_repeat and (self.bits >> delta) & 1:
            raise SrtpReplayError(index, "already received")

    def accept(self, index: int, size: int) -> None:
        """Record ``index`` as received; slide the window if it is the new highest."""
        delta = index - self.highest
        if delta > 0:
            # A jump past the whole window (e.g. an SRTCP index far ahead) clears it; the
            # shift is skipped then, so a jump of 2^31 never builds a 2^31-bit integer.
            self.bits = 1 if delta >= size else ((self.bits << delta) | 1) & ((1 << size) - 1)
            self.highest = index
        else:
            self.bits |= 1 << -delta


# --- key state ------------------------------------------------------------------------


class _KeyState:
    """A master key with its derived session keys and usage counters."""

    __slots__ = ("kdr", "key", "rtcp_cache", "rtcp_fixed", "rtp_cache", "rtp_fixed", "usage")

    def __init__(self, key: MasterKey, kdr: int) -> None:
        self.key = key
        self.kdr = kdr
        self.usage = [0, 0]  # SRTP packets, SRTCP packets
        self.rtp_cache: dict[int, SessionKeys] = {}
        self.rtcp_cache: dict[int, SessionKeys] = {}
        self.rtp_fixed: SessionKeys | None = None
        self.rtcp_fixed: SessionKeys | None = None
        if kdr == 0:
            self.rtp_fixed = derive_session_keys(key.key, key.salt, False, 0, 0)
            self.rtcp_fixed = derive_session_keys(key.key, key.salt, True, 0, 0)

    def session_keys(self, rtcp: bool, index: int) -> SessionKeys:
        """Session keys for ``index``: fixed when kdr = 0, else keyed by ``index DIV kdr``."""
        fixed = self.rtcp_fixed if rtcp else self.rtp_fixed
        if fixed is not None:
            return fixed
        cache = self.rtcp_cache if rtcp else self.rtp_cache
        r = index // self.kdr
        keys = cache.get(r)
        if keys is None:
            keys = derive_session_keys(self.key.key, self.key.salt, rtcp, index, self.kdr)
            if len(cache) >= _SESSION_KEY_CACHE:
                del cache[next(iter(cache))]
            cache[r] = keys
        return keys


# --- packet parsing -------------------------------------------------------------------


def _rtp_header(packet: bytes, end: int) -> tuple[int, int, int]:
    """Parse an RTP header (RFC 3550 §5.1) within ``packet[:end]``.

    Returns ``(header_length, seq, ssrc)``; the header length covers the CSRC list and
    any header extension, which SRTP leaves unencrypted.
    """
    if end < 12:
        raise SrtpParseError("shorter than the 12-byte RTP header", max(end, 0))
    b0, _, seq, _, ssrc = _RTP_HEADER.unpack_from(packet)
    if b0 >> 6 != 2:
        raise SrtpParseError(f"RTP version {b0 >> 6}, expected 2", 0)
    length = 12 + ((b0 & 0x0F) << 2)
    if b0 & 0x10:
        if length + 4 > end:
            raise SrtpParseError("header extension runs past the payload", length)
        length += 4 + (((packet[length + 2] << 8) | packet[length + 3]) << 2)
    if length > end:
        raise SrtpParseError("RTP header runs past the payload", end)
    return length, seq, ssrc


@dataclass(frozen=True)
class SrtpFields:
    """The fields of an SRTP packet that are readable without a key (RFC 3711 §3.1)."""

    seq: int
    ssrc: int
    header_length: int
    mki: bytes
    tag: bytes

    @property
    def mki_value(self) -> int | None:
        """The MKI as a big-endian integer, or None when the packet carries none."""
        return int.from_bytes(self.mki, "big") if self.mki else None


def parse_srtp(packet: bytes, policy: SrtpPolicy) -> SrtpFields:
    """Split an SRTP packet protected under ``policy`` into its clear fields: the RTP
    header's sequence number and SSRC, the MKI (``policy.mki_length`` octets, empty when
    0) and the authentication tag.  Raises :class:`SrtpParseError` for a packet too short
    to hold them or whose RTP header is malformed; nothing is verified."""
    n = _check_length(packet, MAX_PACKET_LENGTH)
    tag_len = int(policy.rtp_auth_tag)
    end = n - policy.mki_length - tag_len
    head_len, seq, ssrc = _rtp_header(packet, end)
    return SrtpFields(
        seq, ssrc, head_len, bytes(packet[end : n - tag_len]), bytes(packet[n - tag_len :])
    )


def _check_length(packet: bytes, limit: int) -> int:
    n = len(packet)
    if n > limit:
        raise SrtpParseError(f"longer than {limit} bytes", limit)
    return n


# --- the contexts ---------------------------------------------------------------------


class _Context:
    """What sender and receiver share: the policy, the master keys by MKI, the streams."""

    def __init__(self, policy: SrtpPolicy, keys: Iterable[MasterKey]) -> None:
        if not isinstance(policy, SrtpPolicy):
            raise SrtpConfigError("policy must be an SrtpPolicy")
        self.policy = policy
        self._keys: dict[bytes, _KeyState] = {}
        self._rtp: dict[int, _Window] = {}
        self._rtcp: dict[int, _Window] = {}
        self._pending_roc: dict[int, int] = {}
        for key in keys:
            self.add_key(key)

    # --- keys -------------------------------------------------------------------------

    def add_key(self, key: MasterKey) -> None:
        """Install a master key under its MKI (e.g. the next MTK before it is used).

        Raises :class:`SrtpConfigError` if the MKI length does not match the policy, the
        MKI is already present, or (MKI-less policy) a key is already installed.
        """
        if not isinstance(key, MasterKey):
            raise SrtpConfigError("key must be a MasterKey")
        if len(key.mki) != self.policy.mki_length:
            raise SrtpConfigError(
                f"MKI is {len(key.mki)} bytes, the policy says {self.policy.mki_length}"
            )
        if key.mki in self._keys:
            raise SrtpConfigError(f"MKI {key.mki.hex()} already installed")
        if not self.policy.uses_mki and self._keys:
            raise SrtpConfigError("without an MKI a context holds exactly one master key")
        self._keys[key.mki] = _KeyState(key, self.policy.key_derivation_rate)

    def remove_key(self, mki: bytes) -> None:
        """Forget the master key named ``mki``; later packets naming it are refused."""
        if mki not in self._keys:
            raise UnknownMkiError(mki)
        del self._keys[mki]

    @property
    def mkis(self) -> tuple[bytes, ...]:
        """The MKIs of the installed master keys, in installation order."""
        return tuple(self._keys)

    def usage(self, mki: bytes) -> KeyUsage:
        """Packets protected (sender) or accepted (receiver) under the key ``mki``."""
        state = self._keys.get(mki)
        if state is None:
            raise UnknownMkiError(mki)
        return KeyUsage(state.usage[0], state.usage[1])

    # --- stream state -----------------------------------------------------------------

    def set_roc(self, ssrc: int, roc: int) -> None:
        """Start (or restart) the stream ``ssrc`` with rollover counter ``roc``.

        Key management may convey the ROC (RFC 3711 §3.3.1); the next packet of the
        stream then gets index ``roc * 2^16 + SEQ`` and the replay state is cleared.
        """
        if not 0 <= ssrc <= 0xFFFFFFFF or not 0 <= roc <= 0xFFFFFFFF:
            raise SrtpConfigError("ssrc and roc are 32-bit unsigned values")
        self._rtp.pop(ssrc, None)
        self._pending_roc[ssrc] = roc

    def roc(self, ssrc: int) -> int | None:
        """The stream's rollover counter, or ``None`` if it has seen no packet yet."""
        window = self._rtp.get(ssrc)
        return None if window is None else window.highest >> 16

    def highest_index(self, ssrc: int) -> int | None:
        """The highest SRTP index sent/accepted on ``ssrc`` (ROC * 2^16 + s_l), if any."""
        window = self._rtp.get(ssrc)
        return None if window is None else window.highest

    def highest_srtcp_index(self, ssrc: int) -> int | None:
        """The highest SRTCP index sent/accepted on ``ssrc``, if any."""
        window = self._rtcp.get(ssrc)
        return None if window is None else window.highest

    def _rtp_index(self, windows: dict[int, _Window], ssrc: int, seq: int) -> tuple[_Window, int]:
        """The (provisional) window of ``ssrc`` and the estimated index of ``seq``."""
        window = windows.get(ssrc)
        if window is None:
            current = self._rtp.get(ssrc)
            if current is None:
                window = _Window()
                index = (self._pending_roc.get(ssrc, 0) << 16) | seq
            else:
                window = current.copy()
                index = estimate_index(window.highest >> 16, window.highest & 0xFFFF, seq)
            windows[ssrc] = window
        elif window.highest < 0:
            index = (self._pending_roc.get(ssrc, 0) << 16) | seq
        else:
            index = estimate_index(window.highest >> 16, window.highest & 0xFFFF, seq)
        if index < 0:
            raise SrtpReplayError(index, "before the start of the stream")
        if index > SRTP_MAX_INDEX:
            raise KeyLifetimeError("the 48-bit SRTP index space is exhausted")
        return window, index

    def _commit_rtp(self, windows: dict[int, _Window]) -> None:
        for ssrc, window in windows.items():
            if window.highest >= 0:
                self._rtp[ssrc] = window
                self._pending_roc.pop(ssrc, None)

    def _commit_rtcp(self, windows: dict[int, _Window]) -> None:
        for ssrc, window in windows.items():
            if window.highest >= 0:
                self._rtcp[ssrc] = window


class SrtpSender(_Context):
    """The protecting end (the BM-SC in MBMS): RFC 3711 §3.3 sender processing.

    Protects with the master key named by :attr:`current_mki`; :meth:`switch_to` moves
    to another installed key (e.g. the next MTK) without disturbing the stream indices.
    Sequence numbers may be out of order by less than the replay window; each index is
    protected at most once unless the policy sets ``allow_repeat_tx``.
    """

    def __init__(
        self,
        policy: SrtpPolicy | None = None,
        keys: Iterable[MasterKey] = (),
        current_mki: bytes | None = None,
    ) -> None:
        # Set before the base class installs the keys: add_key() reads it.
        self._current: bytes | None = None
        self._next_srtcp: dict[int, int] = {}
        super().__init__(SrtpPolicy() if policy is None else policy, keys)
        if current_mki is not None:
            self.switch_to(current_mki)

    @property
    def current_mki(self) -> bytes | None:
        """MKI of the key new packets are protected with (``None`` before any key)."""
        return self._current

    def add_key(self, key: MasterKey) -> None:
        """Install a master key; the first key installed becomes the current one."""
        super().add_key(key)
        if self._current is None:
            self._current = key.mki

    def switch_to(self, mki: bytes) -> None:
        """Protect subsequent packets with the installed master key named ``mki``."""
        if mki not in self._keys:
            raise UnknownMkiError(mki)
        self._current = mki

    def remove_key(self, mki: bytes) -> None:
        """Forget a key; removing the current key leaves the sender without one."""
        super().remove_key(mki)
        if self._current == mki:
            self._current = None

    def set_srtcp_index(self, ssrc: int, index: int) -> None:
        """Make ``index`` the SRTCP index of the next RTCP packet sent on ``ssrc``."""
        if not 0 <= ssrc <= 0xFFFFFFFF or not 0 <= index <= SRTCP_MAX_INDEX:
            raise SrtpConfigError("ssrc is 32-bit, the SRTCP index 31-bit")
        self._next_srtcp[ssrc] = index

    def _current_state(self) -> _KeyState:
        if self._current is None:
            raise SrtpConfigError("the sender has no current master key")
        return self._keys[self._current]

    # --- SRTP -------------------------------------------------------------------------

    def protect(self, rtp: bytes) -> bytes:
        """SRTP-protect one RTP packet: encrypt the payload, append MKI and tag."""
        return self.protect_many((rtp,))[0]

    def protect_many(self, packets: Sequence[bytes]) -> list[bytes]:
        """SRTP-protect a batch of RTP packets, in order; all or nothing.

        The result equals protecting each packet in turn. If any packet is malformed or
        would reuse an index, the error (with ``position`` set) is raised and the
        sender's state is unchanged.
        """
        if not packets:
            return []
        policy = self.policy
        state = self._current_state()
        tag_len = int(policy.rtp_auth_tag)
        mki = state.key.mki
        limit = MAX_PACKET_LENGTH - tag_len - len(mki)
        size = policy.replay_window
        allow_repeat = policy.allow_repeat_tx
        if state.usage[0] + len(packets) > 1 << 48:
            raise KeyLifetimeError(f"master key {mki.hex()} has protected 2^48 SRTP packets")
        windows: dict[int, _Window] = {}
        heads: list[bytes] = []
        rocs: list[bytes] = []
        jobs: list[tuple[SessionKeys, int, bytes]] = []
        macs: list[SessionKeys] = []
        rtp_index = self._rtp_index
        for position, packet in enumerate(packets):
            try:
                n = _check_length(packet, limit)
                head_len, seq, ssrc = _rtp_header(packet, n)
                window, index = rtp_index(windows, ssrc, seq)
                window.check(index, size, allow_repeat)
                window.accept(index, size)
            except SrtpError as exc:
                exc.position = position
                raise
            keys = state.rtp_fixed or state.session_keys(False, index)
            heads.append(packet[:head_len])
            rocs.append((index >> 16).to_bytes(4, "big"))
            jobs.append((keys, keys.salt_iv ^ (ssrc << 64) ^ (index << 16), packet[head_len:]))
            macs.append(keys)
        bodies = xor_keystream_batch(jobs)
        out: list[bytes] = []
        append = out.append
        for head, body, roc, keys in zip(heads, bodies, rocs, macs, strict=True):
            authenticated = head + body
            mac = keys.mac.copy()
            mac.update(authenticated)
            mac.update(roc)
            append(authenticated + mki + mac.finalize()[:tag_len])
        self._commit_rtp(windows)
        state.usage[0] += len(packets)
        return out

    # --- SRTCP ------------------------------------------------------------------------

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        """SRTCP-protect one RTCP (compound) packet: E flag, SRTCP index, MKI, tag."""
        return self.protect_rtcp_many((rtcp,))[0]

    def protect_rtcp_many(self, packets: Sequence[bytes]) -> list[bytes]:
        """SRTCP-protect a batch of RTCP packets, in order; all or nothing (RFC 3711 §3.4).

        Each packet gets the next SRTCP index of its SSRC (from 0, or as set with
        :meth:`set_srtcp_index`). Only the first RTCP header (version, SSRC) is checked;
        the compound packet's content is the RTCP layer's business.
        """
        if not packets:
            return []
        policy = self.policy
        state = self._current_state()
        tag_len = int(policy.rtcp_auth_tag)
        mki = state.key.mki
        limit = MAX_PACKET_LENGTH - tag_len - len(mki) - 4
        encrypt = policy.encrypt_rtcp
        e_flag = 0x80000000 if encrypt else 0
        if state.usage[1] + len(packets) > 1 << 31:
            raise KeyLifetimeError(f"master key {mki.hex()} has protected 2^31 SRTCP packets")
        next_index = dict(self._next_srtcp)
        windows: dict[int, _Window] = {}
        heads: list[bytes] = []
        trailers: list[bytes] = []
        jobs: list[tuple[SessionKeys, int, bytes]] = []
        macs: list[SessionKeys] = []
        for position, packet in enumerate(packets):
            try:
                n = _check_length(packet, limit)
                if n < 8:
                    raise SrtpParseError("shorter than the 8-byte RTCP header", n)
                b0, _, _, ssrc = _RTCP_HEADER.unpack_from(packet)
                if b0 >> 6 != 2:
                    raise SrtpParseError(f"RTCP version {b0 >> 6}, expected 2", 0)
                index = next_index.get(ssrc, 0)
                if index > SRTCP_MAX_INDEX:
                    raise KeyLifetimeError(f"SRTCP index of SSRC {ssrc:#010x} is exhausted")
            except SrtpError as exc:
                exc.position = position
                raise
            next_index[ssrc] = index + 1
            window = windows.get(ssrc)
            if window is None:
                window = windows[ssrc] = _Window()
            window.highest = index
            keys = state.rtcp_fixed or state.session_keys(True, index)
            heads.append(packet[:8])
            trailers.append((e_flag | index).to_bytes(4, "big"))
            jobs.append((keys, keys.salt_iv ^ (ssrc << 64) ^ (index << 16), packet[8:]))
            macs.append(keys)
        bodies = xor_keystream_batch(jobs) if encrypt else [job[2] for job in jobs]
        out: list[bytes] = []
        for head, body, trailer, keys in zip(heads, bodies, trailers, macs, strict=True):
            authenticated = head + body + trailer
            mac = keys.mac.copy()
            mac.update(authenticated)
            out.append(authenticated + mki + mac.finalize()[:tag_len])
        self._next_srtcp = next_index
        self._commit_rtcp(windows)
        state.usage[1] += len(packets)
        return out


class SrtpReceiver(_Context):
    """The verifying end (a UE in MBMS): RFC 3711 §3.3 receiver processing.

    Holds any number of master keys indexed by MKI (typically the current and the next
    MTK) and uses whichever key each packet's MKI names, so it follows the sender's key
    switch packet by packet. Per SSRC it keeps the ROC, the highest sequence number and
    a replay list for SRTP, and a replay list for SRTCP. The MAC is checked (in constant
    time) before anything is decrypted, and state changes only for authentic packets.
    """

    def __init__(self, policy: SrtpPolicy | None = None, keys: Iterable[MasterKey] = ()) -> None:
        super().__init__(SrtpPolicy() if policy is None else policy, keys)
        self._last_mki: bytes | None = None

    @property
    def last_mki(self) -> bytes | None:
        """MKI of the most recent authentic packet (SRTP or SRTCP), ``None`` before one."""
        return self._last_mki

    # --- SRTP -------------------------------------------------------------------------

    def replay_check(self, ssrc: int, seq: int) -> int:
        """The index a packet of stream ``ssrc`` with sequence number ``seq`` would get
        (RFC 3711 §3.3.1), checked against the replay list (§3.3.2) without a key and
        without changing any state: raises :class:`SrtpReplayError` for an index already
        received, older than the replay window or before the start of the stream.  A
        caller can so tell a replayed packet from one under a key it does not hold
        before looking the MKI up (which :meth:`unprotect` does first, as §3.3 orders
        the steps)."""
        window, index = self._rtp_index({}, ssrc, seq)
        window.check(index, self.policy.replay_window)
        return index

    def unprotect(self, srtp: bytes) -> bytes:
        """Verify and decrypt one SRTP packet, returning the RTP packet."""
        result = self._unprotect_rtp((srtp,), stop_on_error=True)[0]
        assert isinstance(result, bytes)
        return result

    def unprotect_many(self, packets: Sequence[bytes]) -> list[bytes]:
        """Verify and decrypt a batch of SRTP packets, in order; all or nothing.

        If any packet fails, its error (with ``position`` set) is raised and the
        receiver's state is unchanged; otherwise the result equals unprotecting each
        packet in turn.
        """
        results = self._unprotect_rtp(packets, stop_on_error=True)
        return [r for r in results if isinstance(r, bytes)]

    def unprotect_each(self, packets: Sequence[bytes]) -> list[bytes | SrtpError]:
        """Verify and decrypt a batch, reporting per packet: RTP bytes or the error.

        Equivalent to calling :meth:`unprotect` on each packet in turn and catching
        :class:`SrtpError`; authentic packets update the state, failed ones do not.
        """
        return self._unprotect_rtp(packets, stop_on_error=False)

    def _unprotect_rtp(
        self, packets: Sequence[bytes], stop_on_error: bool
    ) -> list[bytes | SrtpError]:
        policy = self.policy
        tag_len = int(policy.rtp_auth_tag)
        mki_len = policy.mki_length
        trailer = mki_len + tag_len
        size = policy.replay_window
        keys_by_mki = self._keys
        only_key = next(iter(keys_by_mki.values()), None) if mki_len == 0 else None
        windows: dict[int, _Window] = {}
        results: list[bytes | SrtpError] = []
        heads: list[bytes] = []
        jobs: list[tuple[SessionKeys, int, bytes]] = []
        slots: list[int] = []
        used: dict[bytes, int] = {}
        last_mki = self._last_mki
        rtp_index = self._rtp_index
        for position, packet in enumerate(packets):
            try:
                n = _check_length(packet, MAX_PACKET_LENGTH)
                end = n - trailer
                head_len, seq, ssrc = _rtp_header(packet, end)
                if mki_len:
                    mki = packet[end : end + mki_len]
                    state = keys_by_mki.get(mki)
                    if state is None:
                        raise UnknownMkiError(mki)
                else:
                    mki = b""
                    state = only_key
                    if state is None:
                        raise UnknownMkiError(mki)
                window, index = rtp_index(windows, ssrc, seq)
                window.check(index, size)
                keys = state.rtp_fixed or state.session_keys(False, index)
                mac = keys.mac.copy()
                mac.update(packet[:end])
                mac.update((index >> 16).to_bytes(4, "big"))
                if not compare_digest(mac.finalize()[:tag_len], packet[n - tag_len :]):
                    raise SrtpAuthError()
            except SrtpError as exc:
                exc.position = position
                if stop_on_error:
                    raise
                results.append(exc)
                continue
            window.accept(index, size)
            used[mki] = used.get(mki, 0) + 1
            last_mki = mki
            heads.append(packet[:head_len])
            jobs.append((keys, keys.salt_iv ^ (ssrc << 64) ^ (index << 16), packet[head_len:end]))
            slots.append(len(results))
            results.append(b"")
        for slot, head, body in zip(slots, heads, xor_keystream_batch(jobs), strict=True):
            results[slot] = head + body
        self._commit_rtp(windows)
        self._count(used, 0)
        self._last_mki = last_mki
        return results

    def _count(self, used: dict[bytes, int], which: int) -> None:
        for mki, count in used.items():
            state = self._keys.get(mki)
            if state is not None:
                state.usage[which] += count

    # --- SRTCP ------------------------------------------------------------------------

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        """Verify and (if the E flag is set) decrypt one SRTCP packet."""
        result = self._unprotect_rtcp((srtcp,), stop_on_error=True)[0]
        assert isinstance(result, bytes)
        return result

    def unprotect_rtcp_many(self, packets: Sequence[bytes]) -> list[bytes]:
        """Verify and decrypt a batch of SRTCP packets; all or nothing, as ``unprotect_many``."""
        results = self._unprotect_rtcp(packets, stop_on_error=True)
        return [r for r in results if isinstance(r, bytes)]

    def unprotect_rtcp_each(self, packets: Sequence[bytes]) -> list[bytes | SrtpError]:
        """Per-packet SRTCP outcomes, as :meth:`unprotect_each`."""
        return self._unprotect_rtcp(packets, stop_on_error=False)

    def _unprotect_rtcp(
        self, packets: Sequence[bytes], stop_on_error: bool
    ) -> list[bytes | SrtpError]:
        policy = self.policy
        tag_len = int(policy.rtcp_auth_tag)
        mki_len = policy.mki_length
        size = policy.replay_window
        keys_by_mki = self._keys
        only_key = next(iter(keys_by_mki.values()), None) if mki_len == 0 else None
        windows: dict[int, _Window] = {}
        results: list[bytes | SrtpError] = []
        heads: list[bytes] = []
        jobs: list[tuple[SessionKeys, int, bytes]] = []
        slots: list[int] = []
        used: dict[bytes, int] = {}
        last_mki = self._last_mki
        for position, packet in enumerate(packets):
            try:
                n = _check_length(packet, MAX_PACKET_LENGTH)
                end = n - mki_len - tag_len  # end of the authenticated portion
                if end < 12:
                    raise SrtpParseError("shorter than RTCP header, SRTCP index, MKI and tag", n)
                b0, _, _, ssrc = _RTCP_HEADER.unpack_from(packet)
                if b0 >> 6 != 2:
                    raise SrtpParseError(f"RTCP version {b0 >> 6}, expected 2", 0)
                word = int.from_bytes(packet[end - 4 : end], "big")
                index = word & SRTCP_MAX_INDEX
                if mki_len:
                    mki = packet[end : end + mki_len]
                    state = keys_by_mki.get(mki)
                    if state is None:
                        raise UnknownMkiError(mki)
                else:
                    mki = b""
                    state = only_key
                    if state is None:
                        raise UnknownMkiError(mki)
                window = windows.get(ssrc)
                if window is None:
                    current = self._rtcp.get(ssrc)
                    window = _Window() if current is None else current.copy()
                    windows[ssrc] = window
                window.check(index, size)
                keys = state.rtcp_fixed or state.session_keys(True, index)
                mac = keys.mac.copy()
                mac.update(packet[:end])
                if not compare_digest(mac.finalize()[:tag_len], packet[n - tag_len :]):
                    raise SrtpAuthError()
            except SrtpError as exc:
                exc.position = position
                if stop_on_error:
                    raise
                results.append(exc)
                continue
            window.accept(index, size)
            used[mki] = used.get(mki, 0) + 1
            last_mki = mki
            body = packet[8 : end - 4]
            if word >> 31:  # E flag: the packet is encrypted
                slots.append(len(results))
                results.append(b"")
                heads.append(packet[:8])
                jobs.append((keys, keys.salt_iv ^ (ssrc << 64) ^ (index << 16), body))
            else:
                results.append(packet[:8] + body)
        for slot, head, plain in zip(slots, heads, xor_keystream_batch(jobs), strict=True):
            results[slot] = head + plain
        self._commit_rtcp(windows)
        self._count(used, 1)
        self._last_mki = last_mki
        return results

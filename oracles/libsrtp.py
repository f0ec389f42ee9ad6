"""A ctypes bridge to the system libsrtp 2.x, used as an independent SRTP oracle.

The tests use it to check that packets protected by :mod:`mbmssec.impl.protocols.srtp`
are accepted by libsrtp and vice versa (RFC 3711 with the MKI, across a key switch and a
rollover), and the SRTP benchmark uses it as the speed reference. No libsrtp headers are
installed, so the structures below are declared by hand from ``include/srtp.h`` of libsrtp 2.5
(``srtp_crypto_policy_t``, ``srtp_ssrc_t``, ``srtp_master_key_t``, ``srtp_policy_t``).

Only AES-CM-128 with HMAC-SHA1-80 or HMAC-SHA1-32 is exposed, which is all RFC 3711's
default transforms and the MBMS profile need. A :class:`LibSrtpSession` is not
thread-safe: it reuses one packet buffer for every call.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from types import TracebackType
from typing import Final

from mbmssec.errors import MbmssecError

__all__ = [
    "DEFAULT_LIBRARY",
    "Direction",
    "LibSrtpError",
    "LibSrtpKey",
    "LibSrtpSession",
    "LibSrtpStatusError",
    "LibSrtpUnavailableError",
    "Status",
    "available",
    "init_status",
    "load",
    "version",
]

DEFAULT_LIBRARY: Final = "/usr/lib/x86_64-linux-gnu/libsrtp2.so.1"

# srtp.h: SRTP_MAX_TRAILER_LEN = SRTP_MAX_TAG_LEN (16) + SRTP_MAX_MKI_LEN (128), plus the
# 4-byte SRTCP index for RTCP; libsrtp may write that much past the packet.
_MAX_TRAILER: Final = 16 + 128 + 4
_MAX_PACKET: Final = 65536
_MAX_MKI_LEN: Final = 128
_MAX_NUM_MASTER_KEYS: Final = 16


class LibSrtpError(MbmssecError):
    """Base of the errors raised by the libsrtp bridge."""


class LibSrtpUnavailableError(LibSrtpError):
    """libsrtp 2.x could not be loaded (not installed, or an incompatible version)."""


class Status(IntEnum):
    """``srtp_err_status_t`` from srtp.h (libsrtp 2.5)."""

    OK = 0
    FAIL = 1
    BAD_PARAM = 2
    ALLOC_FAIL = 3
    DEALLOC_FAIL = 4
    INIT_FAIL = 5
    TERMINUS = 6
    AUTH_FAIL = 7
    CIPHER_FAIL = 8
    REPLAY_FAIL = 9
    REPLAY_OLD = 10
    ALGO_FAIL = 11
    NO_SUCH_OP = 12
    NO_CTX = 13
    CANT_CHECK = 14
    KEY_EXPIRED = 15
    SOCKET_ERR = 16
    SIGNAL_ERR = 17
    NONCE_BAD = 18
    READ_FAIL = 19
    WRITE_FAIL = 20
    PARSE_ERR = 21
    ENCODE_ERR = 22
    SEMAPHORE_ERR = 23
    PFKEY_ERR = 24
    BAD_MKI = 25
    PKT_IDX_OLD = 26
    PKT_IDX_ADV = 27


class LibSrtpStatusError(LibSrtpError):
    """A libsrtp call returned a status other than ``srtp_err_status_ok``."""

    def __init__(self, call: str, status: int) -> None:
        self.call = call
        self.status = status
        try:
            name = Status(status).name
        except ValueError:
            name = "UNKNOWN"
        super().__init__(f"{call} returned {status} ({name})")


class Direction(IntEnum):
    """``srtp_ssrc_type_t``: which packets a wildcard policy matches."""

    SPECIFIC = 1
    ANY_INBOUND = 2
    ANY_OUTBOUND = 3


# --- structures of srtp.h (libsrtp 2.5), in declaration order -------------------------


class _CryptoPolicy(ctypes.Structure):
    _fields_ = (
        ("cipher_type", ctypes.c_uint32),
        ("cipher_key_len", ctypes.c_int),
        ("auth_type", ctypes.c_uint32),
        ("auth_key_len", ctypes.c_int),
        ("auth_tag_len", ctypes.c_int),
        ("sec_serv", ctypes.c_int),
    )


class _Ssrc(ctypes.Structure):
    _fields_ = (("type", ctypes.c_int), ("value", ctypes.c_uint))


class _MasterKey(ctypes.Structure):
    _fields_ = (
        ("key", ctypes.POINTER(ctypes.c_ubyte)),
        ("mki_id", ctypes.POINTER(ctypes.c_ubyte)),
        ("mki_size", ctypes.c_uint),
    )


class _Policy(ctypes.Structure):
    pass


_Policy._fields_ = (
    ("ssrc", _Ssrc),
    ("rtp", _CryptoPolicy),
    ("rtcp", _CryptoPolicy),
    ("key", ctypes.POINTER(ctypes.c_ubyte)),
    ("keys", ctypes.POINTER(ctypes.POINTER(_MasterKey))),
    ("num_master_keys", ctypes.c_ulong),
    ("deprecated_ekt", ctypes.c_void_p),
    ("window_size", ctypes.c_ulong),
    ("allow_repeat_tx", ctypes.c_int),
    ("enc_xtn_hdr", ctypes.POINTER(ctypes.c_int)),
    ("enc_xtn_hdr_count", ctypes.c_int),
    ("next", ctypes.POINTER(_Policy)),
)

# Layout guard: the x86-64 sizes implied by srtp.h.
assert ctypes.sizeof(_CryptoPolicy) == 24
assert ctypes.sizeof(_MasterKey) == 24
assert ctypes.sizeof(_Policy) == 128 or ctypes.sizeof(ctypes.c_void_p) != 8

_Session = ctypes.c_void_p
_IntP = ctypes.POINTER(ctypes.c_int)


def _declare(lib: ctypes.CDLL) -> None:
    """Give every function we call its C signature (srtp.h, libsrtp 2.5)."""
    lib.srtp_init.argtypes = ()
    lib.srtp_init.restype = ctypes.c_int
    lib.srtp_get_version_string.argtypes = ()
    lib.srtp_get_version_string.restype = ctypes.c_char_p
    lib.srtp_get_version.argtypes = ()
    lib.srtp_get_version.restype = ctypes.c_uint
    lib.srtp_create.argtypes = (ctypes.POINTER(_Session), ctypes.POINTER(_Policy))
    lib.srtp_create.restype = ctypes.c_int
    lib.srtp_dealloc.argtypes = (_Session,)
    lib.srtp_dealloc.restype = ctypes.c_int
    lib.srtp_crypto_policy_set_rtp_default.argtypes = (ctypes.POINTER(_CryptoPolicy),)
    lib.srtp_crypto_policy_set_rtp_default.restype = None
    lib.srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32.argtypes = (ctypes.POINTER(_CryptoPolicy),)
    lib.srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32.restype = None
    for name in ("srtp_protect", "srtp_unprotect", "srtp_protect_rtcp", "srtp_unprotect_rtcp"):
        fn = getattr(lib, name)
        fn.argtypes = (_Session, ctypes.c_void_p, _IntP)
        fn.restype = ctypes.c_int
    for name in ("srtp_protect_mki", "srtp_protect_rtcp_mki"):
        fn = getattr(lib, name)
        fn.argtypes = (_Session, ctypes.c_void_p, _IntP, ctypes.c_uint, ctypes.c_uint)
        fn.restype = ctypes.c_int
    for name in ("srtp_unprotect_mki", "srtp_unprotect_rtcp_mki"):
        fn = getattr(lib, name)
        fn.argtypes = (_Session, ctypes.c_void_p, _IntP, ctypes.c_uint)
        fn.restype = ctypes.c_int
    lib.srtp_set_stream_roc.argtypes = (_Session, ctypes.c_uint32, ctypes.c_uint32)
    lib.srtp_set_stream_roc.restype = ctypes.c_int
    lib.srtp_get_stream_roc.argtypes = (_Session, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))
    lib.srtp_get_stream_roc.restype = ctypes.c_int


@dataclass(frozen=True)
class _Loaded:
    """The library once loaded and initialised, with what ``srtp_init()`` returned."""

    lib: ctypes.CDLL
    init_status: int


@functools.cache
def _loaded() -> _Loaded:
    """Load and initialise the library; cached, since ``srtp_init`` may run once only.

    A failure is not cached: the next call tries again.
    """
    candidates = [p for p in (os.environ.get("MBMSSEC_LIBSRTP"), DEFAULT_LIBRARY) if p]
    found = ctypes.util.find_library("srtp2")
    if found:
        candidates.append(found)
    errors: list[str] = []
    for candidate in candidates:
        try:
            lib = ctypes.CDLL(candidate)
            _declare(lib)
        except (OSError, AttributeError) as exc:
            errors.append(f"{candidate}: {exc}")
            continue
        version = lib.srtp_get_version_string()
        if not isinstance(version, bytes) or not version.startswith(b"libsrtp2 2."):
            errors.append(f"{candidate}: unsupported version {version!r}")
            continue
        # srtp_init may run once per process: a second call reports bad_param.
        status = lib.srtp_init()
        if status != Status.OK:
            errors.append(f"{candidate}: srtp_init returned {status}")
            continue
        return _Loaded(lib, int(status))
    reason = "; ".join(errors) or "no candidate library"
    raise LibSrtpUnavailableError(f"libsrtp 2.x not usable: {reason}")


def load() -> ctypes.CDLL:
    """Load libsrtp 2.x once, declare its functions and call ``srtp_init``.

    The library is looked up at ``$MBMSSEC_LIBSRTP``, then the Debian location
    :data:`DEFAULT_LIBRARY`, then ``ctypes.util.find_library("srtp2")``.
    Raises :class:`LibSrtpUnavailableError` if none loads or ``srtp_init`` fails.
    """
    return _loaded().lib


def init_status() -> int:
    """What ``srtp_init()`` returned when :func:`load` initialised the library (0 = ok)."""
    return _loaded().init_status


def available() -> bool:
    """True if libsrtp 2.x loads and initialises."""
    try:
        load()
    except LibSrtpUnavailableError:
        return False
    return True


def version() -> str:
    """The library's own version string, e.g. ``"libsrtp2 2.5.0"``."""
    raw = load().srtp_get_version_string()
    return raw.decode("ascii", "replace") if isinstance(raw, bytes) else ""


@dataclass(frozen=True)
class LibSrtpKey:
    """One master key for a libsrtp policy: AES-128 key, 14-byte salt and its MKI."""

    master_key: bytes
    master_salt: bytes
    mki: bytes = b""


class LibSrtpSession:
    """One libsrtp session (``srtp_t``) with a single stream policy.

    ``keys`` are the master keys, in libsrtp's ``mki_index`` order. With ``use_mki`` the
    MKI of each key is carried in every packet (all MKIs must have the same length), as
    the MBMS profile requires; without it only the first key is used and no MKI is sent.
    ``direction`` picks a wildcard SSRC (any inbound / any outbound) or, with ``ssrc``,
    a specific stream whose rollover counter can then be set with :meth:`set_roc`.
    ``rtp_tag_len`` and ``rtcp_tag_len`` are 10 (HMAC-SHA1-80) or 4 (HMAC-SHA1-32).
    """

    def __init__(
        self,
        keys: Sequence[LibSrtpKey],
        *,
        direction: Direction,
        ssrc: int = 0,
        use_mki: bool = True,
        rtp_tag_len: int = 10,
        rtcp_tag_len: int = 10,
        window_size: int = 128,
        allow_repeat_tx: bool = False,
    ) -> None:
        lib = load()
        if not 1 <= len(keys) <= _MAX_NUM_MASTER_KEYS:
            raise LibSrtpError(f"libsrtp takes 1..{_MAX_NUM_MASTER_KEYS} master keys")
        for k in keys:
            if len(k.master_key) != 16 or len(k.master_salt) != 14:
                raise LibSrtpError("AES-CM-128 needs a 16-byte master key and 14-byte salt")
            if use_mki and not 1 <= len(k.mki) <= _MAX_MKI_LEN:
                raise LibSrtpError(f"an MKI must be 1..{_MAX_MKI_LEN} bytes")
        if use_mki and len({len(k.mki) for k in keys}) != 1:
            raise LibSrtpError("libsrtp needs all MKIs of a stream to have one length")
        if rtp_tag_len not in (4, 10) or rtcp_tag_len not in (4, 10):
            raise LibSrtpError("tag length must be 4 or 10")
        self._lib = lib
        self._use_mki = use_mki
        self._n_keys = len(keys)
        self.mki_len = len(keys[0].mki) if use_mki else 0
        self.rtp_tag_len = rtp_tag_len
        self.rtcp_tag_len = rtcp_tag_len

        policy = _Policy()
        ssrc_type = Direction(direction)
        policy.ssrc.type = int(ssrc_type)
        policy.ssrc.value = ssrc if ssrc_type is Direction.SPECIFIC else 0
        for crypto, tag in ((policy.rtp, rtp_tag_len), (policy.rtcp, rtcp_tag_len)):
            if tag == 10:
                lib.srtp_crypto_policy_set_rtp_default(ctypes.byref(crypto))
            else:
                lib.srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(ctypes.byref(crypto))
        # Keep every buffer the policy points to alive until srtp_create has copied it.
        keep: list[object] = []
        if use_mki:
            key_ptrs = (ctypes.POINTER(_MasterKey) * len(keys))()
            for i, k in enumerate(keys):
                material = (ctypes.c_ubyte * 30).from_buffer_copy(k.master_key + k.master_salt)
                mki = (ctypes.c_ubyte * len(k.mki)).from_buffer_copy(k.mki)
                mk = _MasterKey(
                    ctypes.cast(material, ctypes.POINTER(ctypes.c_ubyte)),
                    ctypes.cast(mki, ctypes.POINTER(ctypes.c_ubyte)),
                    len(k.mki),
                )
                keep.extend((material, mki, mk))
                key_ptrs[i] = ctypes.pointer(mk)
            keep.append(key_ptrs)
            policy.key = ctypes.POINTER(ctypes.c_ubyte)()
            policy.keys = key_ptrs
            policy.num_master_keys = len(keys)
        else:
            material = (ctypes.c_ubyte * 30).from_buffer_copy(
                keys[0].master_key + keys[0].master_salt
            )
            keep.append(material)
            policy.key = ctypes.cast(material, ctypes.POINTER(ctypes.c_ubyte))
        policy.window_size = window_size
        policy.allow_repeat_tx = 1 if allow_repeat_tx else 0
        policy.next = ctypes.POINTER(_Policy)()

        session = _Session()
        status = lib.srtp_create(ctypes.byref(session), ctypes.byref(policy))
        del keep
        if status != Status.OK:
            raise LibSrtpStatusError("srtp_create", status)
        self._session: _Session | None = session
        self._buf = ctypes.create_string_buffer(_MAX_PACKET + _MAX_TRAILER)
        self._len = ctypes.c_int(0)
        self._len_ref = ctypes.byref(self._len)
        # Bound C functions, looked up once (the benchmark calls them per packet).
        self._protect_mki = lib.srtp_protect_mki
        self._unprotect_mki = lib.srtp_unprotect_mki
        self._protect_rtcp_mki = lib.srtp_protect_rtcp_mki
        self._unprotect_rtcp_mki = lib.srtp_unprotect_rtcp_mki

    # --- lifecycle ----------------------------------------------------------------

    def close(self) -> None:
        """Free the libsrtp session (idempotent)."""
        if self._session is not None:
            self._lib.srtp_dealloc(self._session)
            self._session = None

    def __enter__(self) -> LibSrtpSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # At interpreter shutdown the library may already be gone.
        with contextlib.suppress(Exception):
            self.close()

    # --- packet processing --------------------------------------------------------

    def _handle(self) -> _Session:
        if self._session is None:
            raise LibSrtpError("session is closed")
        return self._session

    def _load(self, packet: bytes) -> None:
        n = len(packet)
        if n > _MAX_PACKET:
            raise LibSrtpError("packet too long")
        ctypes.memmove(self._buf, packet, n)
        self._len.value = n

    def _check_mki_index(self, mki_index: int) -> None:
        if not 0 <= mki_index < self._n_keys:
            raise LibSrtpError(f"mki_index {mki_index} out of range")

    def protect(self, rtp: bytes, mki_index: int = 0) -> bytes:
        """``srtp_protect_mki``: SRTP-protect one RTP packet with key ``mki_index``."""
        self._check_mki_index(mki_index)
        self._load(rtp)
        status = self._protect_mki(
            self._handle(), self._buf, self._len_ref, self._use_mki, mki_index
        )
        if status:
            raise LibSrtpStatusError("srtp_protect_mki", status)
        return ctypes.string_at(self._buf, self._len.value)

    def unprotect(self, srtp: bytes) -> bytes:
        """``srtp_unprotect_mki``: verify and decrypt one SRTP packet."""
        self._load(srtp)
        status = self._unprotect_mki(self._handle(), self._buf, self._len_ref, self._use_mki)
        if status:
            raise LibSrtpStatusError("srtp_unprotect_mki", status)
        return ctypes.string_at(self._buf, self._len.value)

    def protect_rtcp(self, rtcp: bytes, mki_index: int = 0) -> bytes:
        """``srtp_protect_rtcp_mki``: SRTCP-protect one RTCP compound packet."""
        self._check_mki_index(mki_index)
        self._load(rtcp)
        status = self._protect_rtcp_mki(
            self._handle(), self._buf, self._len_ref, self._use_mki, mki_index
        )
        if status:
            raise LibSrtpStatusError("srtp_protect_rtcp_mki", status)
        return ctypes.string_at(self._buf, self._len.value)

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        """``srtp_unprotect_rtcp_mki``: verify and decrypt one SRTCP packet."""
        self._load(srtcp)
        status = self._unprotect_rtcp_mki(self._handle(), self._buf, self._len_ref, self._use_mki)
        if status:
            raise LibSrtpStatusError("srtp_unprotect_rtcp_mki", status)
        return ctypes.string_at(self._buf, self._len.value)

    # --- stream state -------------------------------------------------------------

    def set_roc(self, ssrc: int, roc: int) -> None:
        """``srtp_set_stream_roc``: set the rollover counter of an existing stream."""
        status = self._lib.srtp_set_stream_roc(self._handle(), ssrc, roc)
        if status:
            raise LibSrtpStatusError("srtp_set_stream_roc", status)

    def get_roc(self, ssrc: int) -> int:
        """``srtp_get_stream_roc``: the rollover counter of an existing stream."""
        roc = ctypes.c_uint32(0)
        status = self._lib.srtp_get_stream_roc(self._handle(), ssrc, ctypes.byref(roc))
        if status:
            raise LibSrtpStatusError("srtp_get_stream_roc", status)
        return int(roc.value)

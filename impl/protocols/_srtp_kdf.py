"""The cryptographic core of SRTP (RFC 3711): AES-CM keystream, IVs and key derivation.

Kept apart from the packet logic in :mod:`mbmssec.impl.protocols.srtp` so the transforms of
RFC 3711 §4.1.1 (AES in counter mode), §4.3 (key derivation) and the batch keystream
used by the fast path can be checked on their own against Appendix B.2 and B.3.
All AES work goes through ``cryptography``; nothing here keeps state between calls
except the reusable ECB contexts held by :class:`SessionKeys`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache
from typing import Final

import numpy as np
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

__all__ = [
    "MASTER_KEY_LENGTH",
    "MASTER_SALT_LENGTH",
    "MAX_KEYSTREAM_BLOCKS",
    "SESSION_AUTH_KEY_LENGTH",
    "SESSION_KEY_LENGTH",
    "SESSION_SALT_LENGTH",
    "KeyLabel",
    "SessionKeys",
    "aes_cm_keystream",
    "derive_session_key",
    "derive_session_keys",
    "srtp_iv",
    "xor_keystream",
    "xor_keystream_batch",
]

MASTER_KEY_LENGTH: Final = 16  # AES-128 master key (RFC 3711 §8.2 default)
MASTER_SALT_LENGTH: Final = 14  # 112-bit master salt
SESSION_KEY_LENGTH: Final = 16  # n_e = 128
SESSION_SALT_LENGTH: Final = 14  # n_s = 112
SESSION_AUTH_KEY_LENGTH: Final = 20  # n_a = 160 for HMAC-SHA1
# RFC 3711 §4.1.1: the block counter is 16 bits, so one IV yields at most 2^16 blocks.
MAX_KEYSTREAM_BLOCKS: Final = 1 << 16

_MASK64: Final = (1 << 64) - 1
# Below this many packets the numpy set-up costs more than it saves.
_NUMPY_MIN_PACKETS: Final = 4
_ZERO_PAD: Final = tuple(bytes(n) for n in range(16))


class KeyLabel(IntEnum):
    """Key derivation labels of RFC 3711 §4.3.1 (SRTP) and §4.3.2 (SRTCP)."""

    SRTP_ENCRYPTION = 0x00
    SRTP_AUTHENTICATION = 0x01
    SRTP_SALT = 0x02
    SRTCP_ENCRYPTION = 0x03
    SRTCP_AUTHENTICATION = 0x04
    SRTCP_SALT = 0x05


def _ecb(key: bytes) -> CipherContext:
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor()


@lru_cache(maxsize=512)
def _block_series(n_blocks: int) -> tuple[int, int]:
    """``(R, J)`` with ``R = sum 2^(128 k)`` and ``J = sum j 2^(128 (n-1-j))`` for j < n.

    ``(iv * R + J)`` written as ``16 n`` big-endian bytes is the run of counter blocks
    IV, IV+1, ..., IV+n-1 (no carries between blocks: IV's low 16 bits are zero and
    n <= 2^16), built with one big-integer multiply instead of n conversions.
    """
    ones = 0
    ramp = 0
    for j in range(n_blocks):
        ones = (ones << 128) | 1
        ramp = (ramp << 128) | j
    return ones, ramp


def _counter_blocks(iv: int, n_blocks: int) -> bytes:
    """IV, IV+1, ... as 16-byte big-endian blocks (the low 16 bits of IV are zero)."""
    ones, ramp = _block_series(n_blocks)
    return (iv * ones + ramp).to_bytes(n_blocks << 4, "big")


def _check_iv(iv: int, n_blocks: int) -> None:
    if iv < 0 or iv >> 128 or iv & 0xFFFF:
        raise ValueError("an AES-CM IV is 128 bits with its low 16 bits zero (RFC 3711 §4.1.1)")
    if n_blocks > MAX_KEYSTREAM_BLOCKS:
        raise ValueError("AES-CM keystream is limited to 2^16 blocks per IV")


def aes_cm_keystream(key: bytes, iv: bytes, length: int) -> bytes:
    """The first ``length`` octets of the AES-CM keystream of RFC 3711 §4.1.1.

    ``iv`` is the 16-octet initial counter; block ``j`` of the keystream is
    ``AES(key, IV + j)``. This is the function Appendix B.2's vector exercises.
    """
    if len(iv) != 16:
        raise ValueError("the AES-CM IV is 16 octets")
    n_blocks = (length + 15) >> 4
    iv_int = int.from_bytes(iv, "big")
    _check_iv(iv_int, n_blocks)
    # Long runs (the B.2 vector is 65282 blocks) are built with numpy, short ones directly.
    if n_blocks > 256:
        stream = _ecb(key).update(_counters_numpy([iv_int], [n_blocks]))
    else:
        stream = _ecb(key).update(_counter_blocks(iv_int, n_blocks))
    return stream[:length]


def srtp_iv(session_salt: bytes, ssrc: int, index: int) -> int:
    """The AES-CM IV of RFC 3711 §4.1.1 as a 128-bit integer.

    ``IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16)``, where ``i`` is the 48-bit
    SRTP packet index or, for SRTCP, the 31-bit SRTCP index.
    """
    return (int.from_bytes(session_salt, "big") << 16) ^ (ssrc << 64) ^ (index << 16)


def derive_session_key(
    master_key: bytes,
    master_salt: bytes,
    label: int,
    index: int,
    key_derivation_rate: int,
    length: int,
) -> bytes:
    """One session key, salt or auth key by the AES-CM PRF of RFC 3711 §4.3.1 / §4.3.3.

    ``r = index DIV key_derivation_rate`` (0 when the rate is 0),
    ``key_id = label || r`` (8 + 48 bits), ``x = key_id XOR master_salt``, and the
    result is the first ``length`` octets of AES-CM under the master key with
    ``IV = x * 2^16``.
    """
    r = 0 if key_derivation_rate == 0 else index // key_derivation_rate
    key_id = (label << 48) | (r & 0xFFFFFFFFFFFF)
    x = int.from_bytes(master_salt, "big") ^ key_id
    return aes_cm_keystream(master_key, (x << 16).to_bytes(16, "big"), length)


@dataclass(frozen=True, eq=False)
class SessionKeys:
    """The session keys of one direction (SRTP or SRTCP) for one master key and ``r``.

    Holds the derived encryption key, salt and authentication key (RFC 3711 §4.3)
    together with the objects the packet path reuses: an AES-ECB context for the
    keystream and an HMAC-SHA1 context that is ``copy()``-ed per packet.
    """

    encryption_key: bytes
    salt: bytes
    auth_key: bytes
    salt_iv: int = field(repr=False)
    ecb: CipherContext = field(repr=False)
    mac: hmac.HMAC = field(repr=False)


def derive_session_keys(
    master_key: bytes, master_salt: bytes, rtcp: bool, index: int, key_derivation_rate: int
) -> SessionKeys:
    """Derive the encryption key, salt and auth key for SRTP (or SRTCP when ``rtcp``).

    ``index`` is the SRTP packet index (or SRTCP index) at which the keys take effect;
    it matters only when ``key_derivation_rate`` is non-zero (RFC 3711 §4.3.1).
    """
    if rtcp:
        labels = (KeyLabel.SRTCP_ENCRYPTION, KeyLabel.SRTCP_SALT, KeyLabel.SRTCP_AUTHENTICATION)
    else:
        labels = (KeyLabel.SRTP_ENCRYPTION, KeyLabel.SRTP_SALT, KeyLabel.SRTP_AUTHENTICATION)
    k_e = derive_session_key(
        master_key, master_salt, labels[0], index, key_derivation_rate, SESSION_KEY_LENGTH
    )
    k_s = derive_session_key(
        master_key, master_salt, labels[1], index, key_derivation_rate, SESSION_SALT_LENGTH
    )
    k_a = derive_session_key(
        master_key, master_salt, labels[2], index, key_derivation_rate, SESSION_AUTH_KEY_LENGTH
    )
    return SessionKeys(
        encryption_key=k_e,
        salt=k_s,
        auth_key=k_a,
        salt_iv=int.from_bytes(k_s, "big") << 16,
        ecb=_ecb(k_e),
        mac=hmac.HMAC(k_a, hashes.SHA1()),
    )


def _counters_numpy(ivs: Sequence[int], counts: Sequence[int]) -> bytes:
    """All counter blocks of a batch at once: for packet p, ``IV_p | j`` for j < count_p."""
    n = np.asarray(counts, dtype=np.int64)
    total = int(n.sum())
    hi = np.fromiter((iv >> 64 for iv in ivs), dtype=np.uint64, count=len(ivs))
    lo = np.fromiter((iv & _MASK64 for iv in ivs), dtype=np.uint64, count=len(ivs))
    starts = np.cumsum(n) - n
    j = np.arange(total, dtype=np.int64) - np.repeat(starts, n)
    blocks = np.empty((total, 2), dtype=">u8")
    blocks[:, 0] = np.repeat(hi, n)
    blocks[:, 1] = np.repeat(lo, n) | j.astype(np.uint64)
    return blocks.tobytes()


def xor_keystream(keys: SessionKeys, iv: int, data: bytes) -> bytes:
    """Encrypt or decrypt one payload with the AES-CM keystream starting at ``iv``."""
    n = len(data)
    if n == 0:
        return b""
    n_blocks = (n + 15) >> 4
    if n_blocks > 256:
        stream = keys.ecb.update(_counters_numpy([iv], [n_blocks]))
    else:
        stream = keys.ecb.update(_counter_blocks(iv, n_blocks))
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream[:n], "big")).to_bytes(n, "big")


def xor_keystream_batch(jobs: Sequence[tuple[SessionKeys, int, bytes]]) -> list[bytes]:
    """Encrypt or decrypt many payloads: ``[(keys, iv, data), ...] -> [data XOR keystream]``.

    Jobs sharing session keys get their keystream from a single AES-ECB call over all
    their counter blocks, and the XOR is one numpy operation over the whole group; the
    result is the same as calling :func:`xor_keystream` on each job.
    """
    if len(jobs) < _NUMPY_MIN_PACKETS:
        return [xor_keystream(k, iv, d) for k, iv, d in jobs]
    out: list[bytes] = [b""] * len(jobs)
    groups: dict[int, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(id(job[0]), []).append(i)
    for members in groups.values():
        keys = jobs[members[0]][0]
        ivs: list[int] = []
        counts: list[int] = []
        pieces: list[bytes] = []
        for i in members:
            _, iv, data = jobs[i]
            n = len(data)
            ivs.append(iv)
            counts.append((n + 15) >> 4)
            pieces.append(data)
            pieces.append(_ZERO_PAD[-n & 15])
        stream = keys.ecb.update(_counters_numpy(ivs, counts))
        plain = np.frombuffer(b"".join(pieces), dtype=np.uint64)
        mixed = (plain ^ np.frombuffer(stream, dtype=np.uint64)).tobytes()
        offset = 0
        for i, count in zip(members, counts, strict=True):
            out[i] = mixed[offset : offset + len(jobs[i][2])]
            offset += count << 4
    return out

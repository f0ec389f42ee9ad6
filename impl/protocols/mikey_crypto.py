"""MIKEY cryptography (RFC 3830 section 4): PRF, key derivation, KEMAC encryption and MAC.

* :func:`prf` is the MIKEY-1 PRF of RFC 3830 4.1.2 (the TLS-like P function over
  HMAC-SHA-1 on 256-bit slices of the input key, XORed together).
* :func:`derive_message_keys` derives the KEMAC encryption key, authentication key
  and salting key from the pre-shared key (in MBMS: the UE's KEK) with the
  constants and label ``constant || 0xFF || CSB ID || RAND`` of RFC 3830 4.1.4;
  :func:`derive_from_tgk` is the 4.1.3 derivation (``constant || CS ID || CSB ID ||
  RAND``) of a TEK, salt, encryption or authentication key from a TGK.
* :func:`kemac_encrypt` / :func:`kemac_decrypt` apply the KEMAC Encr alg (RFC 3830
  4.2.3, 6.2): NULL, AES-CM-128 with ``IV = (S XOR (0x0000 || CSB ID || T)) ||
  0x0000`` (a 32-bit COUNTER T is placed in the low 32 bits of the 64-bit T field)
  and AES-KW-128 (RFC 3394 key wrap with its default IV; RFC 3830 defines no
  padding, so the Key data chain must be a multiple of 8 bytes and at least 16).
* :func:`compute_mac` / :func:`verify_mac` implement the Mac alg NULL and
  HMAC-SHA-1-160 (full 160-bit tag), compared in constant time.

All primitives come from ``cryptography``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives import constant_time, hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from mbmssec.impl.protocols.mikey import (
    EncodeError,
    EncrAlg,
    ErrorNo,
    MacAlg,
    MikeyAuthError,
    MikeyParseError,
    UnsupportedError,
)

__all__ = [
    "AES_CM_SALT_LEN",
    "AUTH_KEY_LEN",
    "ENCR_KEY_LEN",
    "MessageKeys",
    "PskConstant",
    "TgkConstant",
    "aes_cm_iv",
    "compute_mac",
    "derive_from_tgk",
    "derive_message_keys",
    "kemac_decrypt",
    "kemac_encrypt",
    "key_unwrap",
    "key_wrap",
    "prf",
    "verify_mac",
]

ENCR_KEY_LEN = 16
"""Bytes of the KEMAC encryption key for AES-CM-128 and AES-KW-128 (RFC 3830 4.2.3)."""
AUTH_KEY_LEN = 20
"""Bytes of the HMAC-SHA-1-160 authentication key (RFC 3830 4.2.4)."""
AES_CM_SALT_LEN = 14
"""Bytes of the 112-bit AES-CM salting key S (RFC 3830 4.2.3)."""

_PRF_BLOCK = 32  # inkey is cut into 256-bit pieces (RFC 3830 4.1.2)
_SHA1_LEN = 20


class TgkConstant(IntEnum):
    """Derivation constants for keys derived from a TGK (RFC 3830 4.1.3)."""

    TEK = 0x2AD01C64
    AUTH = 0x1B5C7973
    ENCR = 0x15798CEF
    SALT = 0x39A2C14B


class PskConstant(IntEnum):
    """Derivation constants for keys derived from the envelope / pre-shared key (4.1.4)."""

    ENCR = 0x150533E1
    AUTH = 0x2D22AC75
    SALT = 0x29B88916


_PSK_ENCR = PskConstant.ENCR.to_bytes(4, "big")
_PSK_AUTH = PskConstant.AUTH.to_bytes(4, "big")
_PSK_SALT = PskConstant.SALT.to_bytes(4, "big")


_SHA1 = hashes.SHA1()


def _hmac_sha1(key: bytes, data: bytes) -> bytes:
    h = hmac.HMAC(key, _SHA1)
    h.update(data)
    return h.finalize()


def _keyed(inkey: bytes) -> list[hmac.HMAC]:
    """HMAC-SHA-1 keyed with each 256-bit piece s_1..s_n of ``inkey`` (4.1.2), to copy."""
    return [hmac.HMAC(inkey[i : i + _PRF_BLOCK], _SHA1) for i in range(0, len(inkey), _PRF_BLOCK)]


def _p(s: hmac.HMAC, label: bytes, m: int) -> bytes:
    """P(s, label, m) of RFC 3830 4.1.2, ``s`` given as HMAC keyed with it.

    HMAC(s, A_1 || label) || ... || HMAC(s, A_m || label), A_0 = label, A_i = HMAC(s, A_(i-1)).
    """
    out = []
    a = label  # A_0
    for _ in range(m):
        h = s.copy()
        h.update(a)
        a = h.finalize()
        h = s.copy()
        h.update(a + label)
        out.append(h.finalize())
    return b"".join(out)


def _prf(pieces: list[hmac.HMAC], label: bytes, out_len: int) -> bytes:
    """PRF(inkey, label) of 4.1.2 from the pieces of ``inkey`` (:func:`_keyed`)."""
    if not pieces:
        raise EncodeError("PRF input key is empty")
    m = -(-out_len // _SHA1_LEN)
    if len(pieces) == 1:
        return _p(pieces[0], label, m)[:out_len]
    acc = 0
    for s in pieces:
        acc ^= int.from_bytes(_p(s, label, m), "big")
    return acc.to_bytes(m * _SHA1_LEN, "big")[:out_len]


def prf(inkey: bytes, label: bytes, out_len: int) -> bytes:
    """MIKEY-1 PRF (RFC 3830 4.1.2): ``out_len`` bytes of PRF(inkey, label).

    The input key is split into 256-bit pieces s_1..s_n (the last may be shorter)
    and the outputs P(s_j, label, m), m = ceil(out_len*8 / 160), are XORed.
    """
    if out_len < 0:
        raise EncodeError("PRF output length is negative")
    return _prf(_keyed(inkey), label, out_len)


def _label(constant: int, cs_id: int, csb_id: int, rand: bytes) -> bytes:
    return constant.to_bytes(4, "big") + bytes([cs_id]) + csb_id.to_bytes(4, "big") + rand


def derive_from_tgk(
    tgk: bytes, constant: TgkConstant, cs_id: int, csb_id: int, rand: bytes, out_len: int
) -> bytes:
    """A key derived from a TGK (RFC 3830 4.1.3): PRF(TGK, constant || CS ID || CSB ID || RAND)."""
    if not 0 <= cs_id <= 255 or not 0 <= csb_id < 1 << 32:
        raise EncodeError("CS ID must fit 8 bits and CSB ID 32 bits")
    return prf(tgk, _label(int(constant), cs_id, csb_id, rand), out_len)


@dataclass(frozen=True, repr=False)
class MessageKeys:
    """The keys protecting one MIKEY message, derived from the pre-shared key (4.1.4).

    A field is empty when the chosen algorithm needs no such key. ``repr`` hides them.
    """

    encr_key: bytes
    auth_key: bytes
    salt_key: bytes

    def __repr__(self) -> str:
        return "MessageKeys(<secret>)"


def derive_message_keys(
    psk: bytes, csb_id: int, rand: bytes, encr_alg: EncrAlg, mac_alg: MacAlg
) -> MessageKeys:
    """Derive encr_key, auth_key and salt_key from the pre-shared key (RFC 3830 4.1.4).

    Label: ``constant || 0xFF || CSB ID || RAND``; AES-CM-128 needs a 128-bit
    encryption key and a 112-bit salt, AES-KW-128 a 128-bit key, HMAC-SHA-1-160 a
    160-bit authentication key.
    """
    if not 0 <= csb_id < 1 << 32:
        raise EncodeError("CSB ID must fit 32 bits")
    # One keyed HMAC per piece of the pre-shared key serves every derivation below, and
    # every label is its constant followed by the same 0xFF || CSB ID || RAND.
    pieces = _keyed(psk)
    tail = _label(0, 0xFF, csb_id, rand)[4:]
    encr_key = salt_key = auth_key = b""
    if encr_alg in (EncrAlg.AES_CM_128, EncrAlg.AES_KW_128):
        encr_key = _prf(pieces, _PSK_ENCR + tail, ENCR_KEY_LEN)
    if encr_alg is EncrAlg.AES_CM_128:
        salt_key = _prf(pieces, _PSK_SALT + tail, AES_CM_SALT_LEN)
    if mac_alg is MacAlg.HMAC_SHA_1_160:
        auth_key = _prf(pieces, _PSK_AUTH + tail, AUTH_KEY_LEN)
    return MessageKeys(encr_key, auth_key, salt_key)


def aes_cm_iv(salt_key: bytes, csb_id: int, ts_value: bytes) -> bytes:
    """The AES-CM-128 IV of RFC 3830 4.2.3: ``(S XOR (0x0000 || CSB ID || T)) || 0x0000``.

    ``ts_value`` is the T payload's TS value field; a 4-byte COUNTER is
    right-aligned in the 64-bit T position.
    """
    if len(salt_key) != AES_CM_SALT_LEN or len(ts_value) > 8:
        raise EncodeError("AES-CM IV needs a 14-byte salt and a TS value of at most 8 bytes")
    # 0x0000 || CSB ID || T as a 112-bit number: CSB ID above the 64 bits of T.
    block = (csb_id << 64) | int.from_bytes(ts_value, "big")
    iv = int.from_bytes(salt_key, "big") ^ block
    return iv.to_bytes(AES_CM_SALT_LEN, "big") + b"\x00\x00"


def _aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def key_wrap(kek: bytes, plaintext: bytes) -> bytes:
    """AES key wrap (RFC 3394 2.2.1) with the default IV A6A6A6A6A6A6A6A6."""
    if len(kek) not in (16, 24, 32):
        raise EncodeError(f"AES key wrap KEK of {len(kek)} bytes")
    if len(plaintext) < 16 or len(plaintext) % 8:
        raise UnsupportedError(
            f"AES key wrap needs a multiple of 8 bytes, at least 16; got {len(plaintext)}",
            error_no=ErrorNo.INVALID_EA,
        )
    return aes_key_wrap(kek, plaintext)


def key_unwrap(kek: bytes, wrapped: bytes) -> bytes:
    """AES key unwrap (RFC 3394 2.2.2); an integrity failure is an :class:`MikeyAuthError`."""
    if len(kek) not in (16, 24, 32):
        raise EncodeError(f"AES key wrap KEK of {len(kek)} bytes")
    if len(wrapped) < 24 or len(wrapped) % 8:
        raise MikeyParseError(
            f"AES-KW data of {len(wrapped)} bytes (needs a multiple of 8, at least 24)",
            offset=0,
            payload="KEMAC",
        )
    try:
        return aes_key_unwrap(kek, wrapped)
    except InvalidUnwrap:
        raise MikeyAuthError() from None


def kemac_encrypt(
    encr_alg: EncrAlg, keys: MessageKeys, plaintext: bytes, csb_id: int, ts_value: bytes
) -> bytes:
    """Encrypt the Key data chain for the KEMAC Encr data field (RFC 3830 4.2.3, 6.2)."""
    if encr_alg is EncrAlg.NULL:
        return plaintext
    if encr_alg is EncrAlg.AES_CM_128:
        return _aes_ctr(keys.encr_key, aes_cm_iv(keys.salt_key, csb_id, ts_value), plaintext)
    if encr_alg is EncrAlg.AES_KW_128:
        return key_wrap(keys.encr_key, plaintext)
    raise UnsupportedError(f"encryption {encr_alg!r}", error_no=ErrorNo.INVALID_EA)


def kemac_decrypt(
    encr_alg: EncrAlg,
    keys: MessageKeys,
    encr_data: bytes,
    csb_id: int,
    ts_value: bytes,
    *,
    offset: int = 0,
) -> bytes:
    """Decrypt the KEMAC Encr data (inverse of :func:`kemac_encrypt`).

    ``offset`` is the Encr data's position in the message, for error reports.
    """
    if encr_alg is EncrAlg.NULL:
        return encr_data
    if encr_alg is EncrAlg.AES_CM_128:
        return _aes_ctr(keys.encr_key, aes_cm_iv(keys.salt_key, csb_id, ts_value), encr_data)
    if encr_alg is EncrAlg.AES_KW_128:
        try:
            return key_unwrap(keys.encr_key, encr_data)
        except MikeyParseError as exc:
            raise MikeyParseError(exc.reason, offset=offset, payload="KEMAC") from None
    raise UnsupportedError(f"encryption {encr_alg!r}", error_no=ErrorNo.INVALID_EA)


def compute_mac(mac_alg: MacAlg, auth_key: bytes, data: bytes) -> bytes:
    """The MAC field for ``data`` (RFC 3830 4.2.4, 6.2): empty for NULL, 20 bytes for HMAC."""
    if mac_alg is MacAlg.NULL:
        return b""
    if mac_alg is MacAlg.HMAC_SHA_1_160:
        return _hmac_sha1(auth_key, data)
    raise UnsupportedError(f"MAC {mac_alg!r}", error_no=ErrorNo.INVALID_MAC)


def verify_mac(mac_alg: MacAlg, auth_key: bytes, data: bytes, tag: bytes) -> bool:
    """Whether ``tag`` is the MAC of ``data``; constant-time comparison."""
    return constant_time.bytes_eq(compute_mac(mac_alg, auth_key, data), tag)

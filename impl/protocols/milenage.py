"""MILENAGE: the 3GPP example authentication and key generation functions.

This is the algorithm set of 3GPP TS 35.206 ("Document 2: Algorithm specification"),
built on AES-128 as the kernel function E_K (TS 35.206 clause 2; AES is the Rijndael
instance with a 128-bit block and key).  It supplies:

* f1  (network authentication, MAC-A) and f1* (resynchronisation, MAC-S),
* f2  (user authentication, RES), f3 (cipher key CK), f4 (integrity key IK),
* f5  (anonymity key AK) and f5* (anonymity key for resynchronisation).

The AKA protocol logic that strings these together (authentication vectors, AUTN
and AUTS handling, SQN freshness) lives in :mod:`mbmssec.impl.protocols.aka`; this module is
only the cryptographic functions, checked against the TS 35.208 conformance data.

All values are raw big-endian octet strings: K, OP, OPc, RAND 16 octets, SQN
6 octets, AMF 2 octets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from mbmssec.errors import MbmssecError

__all__ = [
    "C1",
    "C2",
    "C3",
    "C4",
    "C5",
    "R1",
    "R2",
    "R3",
    "R4",
    "R5",
    "Milenage",
    "MilenageError",
    "compute_opc",
]

# TS 35.206 clause 4.1: the constants c1..c5 (128 bits each) and the rotation
# amounts r1..r5 (in bits).  c1 is all zero; c2..c5 have a single bit set in the
# last octet.
C1 = bytes(16)
C2 = bytes(15) + b"\x01"
C3 = bytes(15) + b"\x02"
C4 = bytes(15) + b"\x04"
C5 = bytes(15) + b"\x08"
R1 = 64
R2 = 0
R3 = 32
R4 = 64
R5 = 96

_BLOCK = 16


class MilenageError(MbmssecError):
    """A MILENAGE input has the wrong type or length.

    ``field`` names the input ("K", "OP", "RAND", ...), ``expected`` its length in
    octets and ``actual`` the length given (or -1 when it was not bytes at all).
    """

    def __init__(self, field_name: str, expected: int, actual: int) -> None:
        self.field = field_name
        self.expected = expected
        self.actual = actual
        detail = "not a bytes value" if actual < 0 else f"{actual} octets"
        super().__init__(f"MILENAGE {field_name} must be {expected} octets, got {detail}")


def _check(name: str, value: object, length: int) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise MilenageError(name, length, -1)
    data = bytes(value)
    if len(data) != length:
        raise MilenageError(name, length, len(data))
    return data


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


_MASK: Final = (1 << 128) - 1


def _int(block: bytes) -> int:
    return int.from_bytes(block, "big")


def _rot(value: int, bits: int) -> int:
    """Cyclic left rotation of a 128-bit value by ``bits`` (TS 35.206 clause 4.1)."""
    bits %= 128
    if bits == 0:
        return value
    return ((value << bits) | (value >> (128 - bits))) & _MASK


_C1, _C2, _C3, _C4, _C5 = (_int(c) for c in (C1, C2, C3, C4, C5))


def _aes(key: bytes, block: bytes) -> bytes:
    # ECB on exactly one block is the raw block cipher E_K; no chaining is involved.
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def compute_opc(k: bytes, op: bytes) -> bytes:
    """OPc = OP xor E_K(OP) (TS 35.206 clause 4.1), from the subscriber key K and OP."""
    k = _check("K", k, 16)
    op = _check("OP", op, 16)
    return _xor(op, _aes(k, op))


@dataclass(frozen=True)
class Milenage:
    """The MILENAGE functions for one subscriber key K and operator value OPc.

    Build it with ``Milenage(k, opc)`` when OPc is provisioned, or with
    :meth:`from_op` when the operator configuration OP is given (TS 35.206 allows
    either; OPc is then derived from OP and K).  The key material is kept out of
    ``repr`` so that logging a subscriber does not leak it.

    The 128-bit blocks are computed on as integers (XOR and rotation are single
    operations on them), and E_K is one ECB encryptor kept for the object's life: ECB
    keeps no state between blocks, so each block it is given is E_K of that block.
    """

    k: bytes = field(repr=False)
    opc: bytes = field(repr=False)
    _ek: CipherContext = field(init=False, repr=False, compare=False)
    _opc: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        k = _check("K", self.k, 16)
        opc = _check("OPc", self.opc, 16)
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "opc", opc)
        object.__setattr__(self, "_ek", Cipher(algorithms.AES(k), modes.ECB()).encryptor())
        object.__setattr__(self, "_opc", _int(opc))

    @classmethod
    def from_op(cls, k: bytes, op: bytes) -> Milenage:
        """Build from K and OP, computing OPc = OP xor E_K(OP)."""
        return cls(k=_check("K", k, 16), opc=compute_opc(k, op))

    def _e(self, value: int) -> int:
        """E_K of one 128-bit block."""
        return _int(self._ek.update(value.to_bytes(_BLOCK, "big")))

    def _temp(self, rand: bytes) -> int:
        # TEMP = E_K(RAND xor OPc)
        return self._e(_int(_check("RAND", rand, 16)) ^ self._opc)

    def _out1(self, temp: int, sqn: bytes, amf: bytes) -> bytes:
        sqn = _check("SQN", sqn, 6)
        amf = _check("AMF", amf, 2)
        in1 = _int(sqn + amf + sqn + amf)
        # OUT1 = E_K(TEMP xor rot(IN1 xor OPc, r1) xor c1) xor OPc
        out = self._e(temp ^ _rot(in1 ^ self._opc, R1) ^ _C1) ^ self._opc
        return out.to_bytes(_BLOCK, "big")

    def _out(self, temp: int, rotation: int, constant: int) -> bytes:
        # OUTn = E_K(rot(TEMP xor OPc, rn) xor cn) xor OPc, n = 2..5
        out = self._e(_rot(temp ^ self._opc, rotation) ^ constant) ^ self._opc
        return out.to_bytes(_BLOCK, "big")

    def vector(
        self, rand: bytes, sqn: bytes, amf: bytes
    ) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        """f1 and f2, f3, f4, f5 at once, sharing TEMP: ``(MAC-A, RES, CK, IK, AK)``, what
        an authentication vector needs (5 AES calls; :meth:`f1` and :meth:`f2345` take 6)."""
        temp = self._temp(rand)
        out2 = self._out(temp, R2, _C2)
        return (
            self._out1(temp, sqn, amf)[:8],
            out2[8:],
            self._out(temp, R3, _C3),
            self._out(temp, R4, _C4),
            out2[:6],
        )

    def f1(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """f1: the network authentication code MAC-A (8 octets), the first half of OUT1."""
        return self._out1(self._temp(rand), sqn, amf)[:8]

    def f1star(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """f1*: the resynchronisation code MAC-S (8 octets), the second half of OUT1."""
        return self._out1(self._temp(rand), sqn, amf)[8:]

    def f2345(self, rand: bytes) -> tuple[bytes, bytes, bytes, bytes]:
        """f2, f3, f4 and f5 at once: ``(RES, CK, IK, AK)`` of 8, 16, 16 and 6 octets.

        These share TEMP, so computing them together costs one AES call fewer per
        function than separate calls.
        """
        temp = self._temp(rand)
        out2 = self._out(temp, R2, _C2)
        out3 = self._out(temp, R3, _C3)
        out4 = self._out(temp, R4, _C4)
        return out2[8:], out3, out4, out2[:6]

    def f2(self, rand: bytes) -> bytes:
        """f2: the response RES (8 octets), the last 64 bits of OUT2."""
        return self._out(self._temp(rand), R2, _C2)[8:]

    def f3(self, rand: bytes) -> bytes:
        """f3: the cipher key CK (16 octets), OUT3."""
        return self._out(self._temp(rand), R3, _C3)

    def f4(self, rand: bytes) -> bytes:
        """f4: the integrity key IK (16 octets), OUT4."""
        return self._out(self._temp(rand), R4, _C4)

    def f5(self, rand: bytes) -> bytes:
        """f5: the anonymity key AK (6 octets), the first 48 bits of OUT2."""
        return self._out(self._temp(rand), R2, _C2)[:6]

    def f5star(self, rand: bytes) -> bytes:
        """f5*: the resynchronisation anonymity key AK (6 octets), first 48 bits of OUT5."""
        return self._out(self._temp(rand), R5, _C5)[:6]

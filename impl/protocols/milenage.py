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

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

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


def _rot(block: bytes, bits: int) -> bytes:
    """Cyclic left rotation of a 128-bit block by ``bits`` (TS 35.206 clause 4.1)."""
    if bits % 128 == 0:
        return block
    value = int.from_bytes(block, "big")
    bits %= 128
    rotated = ((value << bits) | (value >> (128 - bits))) & ((1 << 128) - 1)
    return rotated.to_bytes(_BLOCK, "big")


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
    """

    k: bytes = field(repr=False)
    opc: bytes = field(repr=False)
    _ecb: Cipher[modes.ECB] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        k = _check("K", self.k, 16)
        opc = _check("OPc", self.opc, 16)
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "opc", opc)
        # One cipher object per subscriber; a fresh encryptor is cheap per block.
        object.__setattr__(self, "_ecb", Cipher(algorithms.AES(k), modes.ECB()))

    @classmethod
    def from_op(cls, k: bytes, op: bytes) -> Milenage:
        """Build from K and OP, computing OPc = OP xor E_K(OP)."""
        return cls(k=_check("K", k, 16), opc=compute_opc(k, op))

    def _e(self, block: bytes) -> bytes:
        encryptor = self._ecb.encryptor()
        return encryptor.update(block) + encryptor.finalize()

    def _temp(self, rand: bytes) -> bytes:
        # TEMP = E_K(RAND xor OPc)
        return self._e(_xor(_check("RAND", rand, 16), self.opc))

    def _out1(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        sqn = _check("SQN", sqn, 6)
        amf = _check("AMF", amf, 2)
        temp = self._temp(rand)
        in1 = sqn + amf + sqn + amf
        # OUT1 = E_K(TEMP xor rot(IN1 xor OPc, r1) xor c1) xor OPc
        inner = _xor(_xor(temp, _rot(_xor(in1, self.opc), R1)), C1)
        return _xor(self._e(inner), self.opc)

    def _out(self, temp: bytes, rotation: int, constant: bytes) -> bytes:
        # OUTn = E_K(rot(TEMP xor OPc, rn) xor cn) xor OPc, n = 2..5
        inner = _xor(_rot(_xor(temp, self.opc), rotation), constant)
        return _xor(self._e(inner), self.opc)

    def f1(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """f1: the network authentication code MAC-A (8 octets), the first half of OUT1."""
        return self._out1(rand, sqn, amf)[:8]

    def f1star(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """f1*: the resynchronisation code MAC-S (8 octets), the second half of OUT1."""
        return self._out1(rand, sqn, amf)[8:]

    def f2345(self, rand: bytes) -> tuple[bytes, bytes, bytes, bytes]:
        """f2, f3, f4 and f5 at once: ``(RES, CK, IK, AK)`` of 8, 16, 16 and 6 octets.

        These share TEMP, so computing them together costs one AES call fewer per
        function than separate calls.
        """
        temp = self._temp(rand)
        out2 = self._out(temp, R2, C2)
        out3 = self._out(temp, R3, C3)
        out4 = self._out(temp, R4, C4)
        return out2[8:], out3, out4, out2[:6]

    def f2(self, rand: bytes) -> bytes:
        """f2: the response RES (8 octets), the last 64 bits of OUT2."""
        return self._out(self._temp(rand), R2, C2)[8:]

    def f3(self, rand: bytes) -> bytes:
        """f3: the cipher key CK (16 octets), OUT3."""
        return self._out(self._temp(rand), R3, C3)

    def f4(self, rand: bytes) -> bytes:
        """f4: the integrity key IK (16 octets), OUT4."""
        return self._out(self._temp(rand), R4, C4)

    def f5(self, rand: bytes) -> bytes:
        """f5: the anonymity key AK (6 octets), the first 48 bits of OUT2."""
        return self._out(self._temp(rand), R2, C2)[:6]

    def f5star(self, rand: bytes) -> bytes:
        """f5*: the resynchronisation anonymity key AK (6 octets), first 48 bits of OUT5."""
        return self._out(self._temp(rand), R5, C5)[:6]

"""A minimal writer of classic libpcap captures of loopback traffic, for protocol oracles.

The project's interoperability tests hand the bytes its protocol code produces
(MIKEY, SRTP, HTTP) to an independent dissector such as tshark. This module frames
each payload as Ethernet II / IPv4 / UDP or TCP between 127.0.0.1 and 127.0.0.1,
with correct IPv4 header checksums and UDP/TCP checksums (RFC 791, RFC 768,
RFC 793 pseudo-header), and writes the classic libpcap file format (magic
``0xa1b2c3d4``, version 2.4, microsecond timestamps, link type 1 = Ethernet).

TCP payloads are given per direction as application data: the writer keeps the
sequence and acknowledgement numbers of each connection (identified by the port
pair), optionally prefixes a new connection with the three-way handshake, and
splits payloads larger than ``mss`` into several segments, so a dissector can
reassemble the stream. Nothing is sent on any network; only a file is written.

The reader (:func:`read_pcap`, :func:`udp_datagrams`) takes a classic libpcap file back
apart, one frame at a time (memory does not grow with the file): either byte order,
microsecond or nanosecond timestamps, link types Ethernet, BSD loopback, raw IP and Linux
cooked capture, IPv4 and UDP.  A file that is not such a capture, or is cut short or
inconsistent (a record running past the end of the file, a length field contradicting
the frame) is a :class:`PcapFormatError` naming the frame and the byte offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import NamedTuple

from mbmssec.errors import MbmssecError

__all__ = [
    "LINKTYPE_ETHERNET",
    "PCAP_MAGIC",
    "CapturedFrame",
    "Datagram",
    "Packet",
    "PcapError",
    "PcapFormatError",
    "Proto",
    "frame",
    "internet_checksum",
    "pcap_bytes",
    "read_pcap",
    "udp_datagrams",
    "write_pcap",
]

PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
SNAPLEN = 262_144
LOOPBACK = bytes([127, 0, 0, 1])
_MAX_UDP_PAYLOAD = 65_535 - 20 - 8
_DEFAULT_MSS = 65_535 - 20 - 20

_TCP_FIN, _TCP_SYN, _TCP_PSH, _TCP_ACK = 0x01, 0x02, 0x08, 0x10


class PcapError(MbmssecError):
    """A packet that cannot be framed (bad port, payload too large, bad timestamp, ...)."""


class PcapFormatError(PcapError):
    """A file that is not a readable classic libpcap capture, or a frame in it that is cut
    short or contradicts its own length fields; ``frame`` is the 1-based frame number (0
    for the file header) and ``offset`` the byte offset in the file."""

    def __init__(self, path: str, frame: int, offset: int, problem: str) -> None:
        where = f"frame {frame} (byte {offset})" if frame else f"byte {offset}"
        super().__init__(f"pcap {path}: {where}: {problem}")
        self.path = path
        self.frame = frame
        self.offset = offset
        self.problem = problem


class Proto(IntEnum):
    """IP protocol numbers of the transports the writer frames."""

    TCP = 6
    UDP = 17


class Packet(NamedTuple):
    """One payload to capture: (timestamp in Unix seconds, src port, dst port, payload, proto)."""

    timestamp: float
    src_port: int
    dst_port: int
    payload: bytes
    proto: Proto = Proto.UDP


def internet_checksum(data: bytes) -> int:
    """The 16-bit one's-complement Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4(proto: Proto, segment: bytes, ident: int) -> bytes:
    header = struct.pack(
        ">BBHHHBBH4s4s",
        0x45,  # version 4, IHL 5 words
        0,
        20 + len(segment),
        ident & 0xFFFF,
        0x4000,  # don't fragment
        64,
        int(proto),
        0,
        LOOPBACK,
        LOOPBACK,
    )
    checksum = internet_checksum(header)
    return header[:10] + struct.pack(">H", checksum) + header[12:] + segment


def _transport_checksum(proto: Proto, segment: bytes) -> int:
    pseudo = LOOPBACK + LOOPBACK + struct.pack(">BBH", 0, int(proto), len(segment))
    return internet_checksum(pseudo + segment)


def _udp(src: int, dst: int, payload: bytes) -> bytes:
    header = struct.pack(">HHHH", src, dst, 8 + len(payload), 0)
    checksum = _transport_checksum(Proto.UDP, header + payload)
    # RFC 768: a computed checksum of zero is sent as all ones (zero means "none").
    header = header[:6] + struct.pack(">H", checksum or 0xFFFF)
    return header + payload


def _tcp(src: int, dst: int, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    header = struct.pack(">HHIIBBHHH", src, dst, seq, ack, 5 << 4, flags, 65_535, 0, 0)
    checksum = _transport_checksum(Proto.TCP, header + payload)
    return header[:16] + struct.pack(">H", checksum) + header[18:] + payload


def frame(proto: Proto, src_port: int, dst_port: int, payload: bytes, ident: int = 0) -> bytes:
    """One Ethernet II frame carrying ``payload`` over UDP (TCP: see :func:`write_pcap`)."""
    for port in (src_port, dst_port):
        if not 0 <= port <= 0xFFFF:
            raise PcapError(f"port {port} outside 0..65535")
    if proto is not Proto.UDP:
        raise PcapError("frame() builds UDP datagrams; TCP needs connection state")
    if len(payload) > _MAX_UDP_PAYLOAD:
        raise PcapError(f"UDP payload of {len(payload)} bytes exceeds {_MAX_UDP_PAYLOAD}")
    return _ethernet(_ipv4(Proto.UDP, _udp(src_port, dst_port, payload), ident))


def _ethernet(ip_packet: bytes) -> bytes:
    # Locally administered placeholder MACs; the capture is of loopback traffic.
    return bytes.fromhex("020000000002") + bytes.fromhex("020000000001") + b"\x08\x00" + ip_packet


@dataclass
class _TcpConn:
    client_port: int
    server_port: int
    next_seq: dict[int, int]  # by sending port


def _isn(src: int, dst: int) -> int:
    # Deterministic initial sequence numbers keep captures reproducible.
    return ((src << 16) ^ dst) * 2_654_435_761 & 0xFFFF_FFFF


class _Writer:
    def __init__(self, tcp_handshake: bool, mss: int) -> None:
        self.records: list[tuple[float, bytes]] = []
        self.ident = 0
        self.conns: dict[frozenset[int], _TcpConn] = {}
        self.tcp_handshake = tcp_handshake
        self.mss = mss

    def _emit(self, ts: float, proto: Proto, segment: bytes) -> None:
        self.ident += 1
        self.records.append((ts, _ethernet(_ipv4(proto, segment, self.ident))))

    def _tcp_segment(self, ts: float, src: int, dst: int, flags: int, payload: bytes) -> None:
        conn = self.conns[frozenset((src, dst))]
        seq = conn.next_seq[src]
        ack = conn.next_seq[dst] if flags & _TCP_ACK else 0
        self._emit(ts, Proto.TCP, _tcp(src, dst, seq, ack, flags, payload))
        consumed = len(payload) + (1 if flags & (_TCP_SYN | _TCP_FIN) else 0)
        conn.next_seq[src] = (seq + consumed) & 0xFFFF_FFFF

    def add(self, pkt: Packet) -> None:
        ts, src, dst, payload, proto = pkt
        if not isinstance(ts, int | float) or ts < 0 or ts >= 1 << 32:
            raise PcapError(f"timestamp {ts!r} outside the pcap range")
        for port in (src, dst):
            if not isinstance(port, int) or not 0 <= port <= 0xFFFF:
                raise PcapError(f"port {port!r} outside 0..65535")
        if src == dst and proto is Proto.TCP:
            raise PcapError("TCP source and destination ports must differ")
        payload = bytes(payload)
        if proto is Proto.UDP:
            if len(payload) > _MAX_UDP_PAYLOAD:
                raise PcapError(f"UDP payload of {len(payload)} bytes exceeds {_MAX_UDP_PAYLOAD}")
            self._emit(ts, Proto.UDP, _udp(src, dst, payload))
            return
        if proto is not Proto.TCP:
            raise PcapError(f"unsupported transport {proto!r}")
        key = frozenset((src, dst))
        if key not in self.conns:
            self.conns[key] = _TcpConn(src, dst, {src: _isn(src, dst), dst: _isn(dst, src)})
            if self.tcp_handshake:
                self._tcp_segment(ts, src, dst, _TCP_SYN, b"")
                self._tcp_segment(ts, dst, src, _TCP_SYN | _TCP_ACK, b"")
                self._tcp_segment(ts, src, dst, _TCP_ACK, b"")
        chunks = [payload[i : i + self.mss] for i in range(0, len(payload), self.mss)] or [b""]
        for chunk in chunks:
            self._tcp_segment(ts, src, dst, _TCP_PSH | _TCP_ACK, chunk)

    def file_bytes(self) -> bytes:
        out = bytearray(struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        for ts, data in self.records:
            sec, usec = divmod(round(ts * 1_000_000), 1_000_000)
            out += struct.pack("<IIII", sec, usec, len(data), len(data))
            out += data
        return bytes(out)


def _as_packet(item: Packet | tuple[object, ...]) -> Packet:
    if isinstance(item, Packet):
        return item
    if not isinstance(item, tuple) or len(item) not in (4, 5):
        raise PcapError(f"a packet is (timestamp, src_port, dst_port, payload[, proto]): {item!r}")
    ts, src, dst, payload = item[:4]
    raw_proto = item[4] if len(item) == 5 else Proto.UDP
    if not isinstance(ts, int | float) or not isinstance(src, int) or not isinstance(dst, int):
        raise PcapError(f"packet timestamp and ports must be numbers: {item!r}")
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise PcapError("packet payload must be bytes")
    if not isinstance(raw_proto, int):
        raise PcapError(f"packet protocol must be Proto.UDP or Proto.TCP: {raw_proto!r}")
    return Packet(float(ts), src, dst, bytes(payload), Proto(raw_proto))


def pcap_bytes(
    packets: Iterable[Packet | tuple[object, ...]],
    *,
    tcp_handshake: bool = True,
    mss: int = _DEFAULT_MSS,
) -> bytes:
    """The libpcap file image of ``packets`` (see :func:`write_pcap`)."""
    if not 1 <= mss <= _DEFAULT_MSS:
        raise PcapError(f"mss {mss} outside 1..{_DEFAULT_MSS}")
    writer = _Writer(tcp_handshake, mss)
    for item in packets:
        try:
            writer.add(_as_packet(item))
        except ValueError as exc:  # e.g. an unknown protocol number
            raise PcapError(str(exc)) from None
    return writer.file_bytes()


def write_pcap(
    path: str | Path,
    packets: Iterable[Packet | tuple[object, ...]],
    *,
    tcp_handshake: bool = True,
    mss: int = _DEFAULT_MSS,
) -> None:
    """Write ``packets`` to a classic libpcap file at ``path``.

    Each packet is ``(timestamp, src_port, dst_port, payload, proto)`` (``proto``
    :class:`Proto` UDP or TCP, default UDP), all between 127.0.0.1 addresses. For
    TCP, a connection's first packet is preceded by a SYN / SYN-ACK / ACK
    handshake when ``tcp_handshake`` is set, and payloads are split into segments
    of at most ``mss`` bytes.
    """
    Path(path).write_bytes(pcap_bytes(packets, tcp_handshake=tcp_handshake, mss=mss))


# -- reading ------------------------------------------------------------------------------

PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_MAGIC = 0x0A0D0D0A
LINKTYPE_NULL = 0
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
_LINKTYPES = {
    LINKTYPE_NULL: "BSD loopback",
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_RAW: "raw IP",
    LINKTYPE_LINUX_SLL: "Linux cooked capture",
}
_ETHERTYPE_IPV4 = 0x0800


class CapturedFrame(NamedTuple):
    """One record of a capture: its 1-based number, timestamp (Unix seconds), the byte
    offset of its record header, the link type and the captured bytes."""

    number: int
    timestamp: float
    offset: int
    linktype: int
    data: bytes


class Datagram(NamedTuple):
    """One IPv4 UDP datagram of a capture (addresses as dotted quads)."""

    frame: int
    timestamp: float
    src: str
    src_port: int
    dst: str
    dst_port: int
    payload: bytes


def read_pcap(path: str | Path) -> Iterator[CapturedFrame]:
    """The frames of the classic libpcap file at ``path``, read one at a time.

    Raises :class:`PcapFormatError` for a file that cannot be read, is not a classic
    libpcap capture (pcapng is named as such), has an unknown link type, or whose record
    runs past the end of the file or declares more bytes than the snapshot length.
    """
    name = str(path)
    try:
        stream = Path(path).open("rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise PcapFormatError(name, 0, 0, f"cannot read the file: {exc.strerror}") from None
    with stream:
        head = stream.read(24)
        if len(head) < 24:
            raise PcapFormatError(
                name, 0, 0, f"{len(head)} bytes: shorter than the 24-byte pcap file header"
            )
        magic_le = struct.unpack_from("<I", head)[0]
        magic_be = struct.unpack_from(">I", head)[0]
        if PCAPNG_MAGIC in (magic_le, magic_be):
            raise PcapFormatError(
                name,
                0,
                0,
                "a pcapng file; only classic libpcap captures are read "
                "(convert it with: editcap -F pcap IN OUT)",
            )
        endian = ""
        for order, value in (("<", magic_le), (">", magic_be)):
            if value in (PCAP_MAGIC, PCAP_MAGIC_NS):
                endian, nano = order, value == PCAP_MAGIC_NS
        if not endian:
            raise PcapFormatError(
                name, 0, 0, f"magic number 0x{magic_le:08x} is not that of a libpcap capture"
            )
        major, _minor, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(
            endian + "HHiIII", head, 4
        )
        if major != 2:
            raise PcapFormatError(name, 0, 4, f"pcap format version {major}, expected 2")
        linktype &= 0x0FFF_FFFF  # the upper bits carry FCS information
        if linktype not in _LINKTYPES:
            raise PcapFormatError(
                name,
                0,
                20,
                f"link type {linktype} is not one of "
                + ", ".join(f"{k} ({v})" for k, v in sorted(_LINKTYPES.items())),
            )
        record = struct.Struct(endian + "IIII")
        divisor = 1e9 if nano else 1e6
        offset, number = 24, 0
        limit = max(snaplen, SNAPLEN) if snaplen else 1 << 31
        while True:
            rec = stream.read(16)
            if not rec:
                return
            number += 1
            if len(rec) < 16:
                raise PcapFormatError(
                    name, number, offset, f"record header cut short ({len(rec)} of 16 bytes)"
                )
            sec, frac, caplen, origlen = record.unpack(rec)
            if frac >= divisor:
                raise PcapFormatError(
                    name, number, offset, f"timestamp fraction {frac} is not below {divisor:.0f}"
                )
            if caplen > limit:
                raise PcapFormatError(
                    name,
                    number,
                    offset,
                    f"record of {caplen} bytes exceeds the snapshot length {snaplen}",
                )
            data = stream.read(caplen)
            if len(data) < caplen:
                raise PcapFormatError(
                    name,
                    number,
                    offset,
                    f"record cut short: {len(data)} of {caplen} bytes before the end of the file",
                )
            if caplen < origlen:
                raise PcapFormatError(
                    name,
                    number,
                    offset,
                    f"only {caplen} of the frame's {origlen} bytes were captured "
                    "(capture with a larger snapshot length)",
                )
            yield CapturedFrame(number, sec + frac / divisor, offset, linktype, data)
            offset += 16 + caplen


def _ipv4_packet(f: CapturedFrame) -> bytes | None:
    """The IPv4 packet a frame carries, or None for another network protocol."""
    data = f.data
    if f.linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None
        return data[14:] if struct.unpack_from(">H", data, 12)[0] == _ETHERTYPE_IPV4 else None
    if f.linktype == LINKTYPE_NULL:
        if len(data) < 4:
            return None
        family = int.from_bytes(data[:4], "little")
        if family != 2:
            family = int.from_bytes(data[:4], "big")
        return data[4:] if family == 2 else None
    if f.linktype == LINKTYPE_LINUX_SLL:
        if len(data) < 16:
            return None
        return data[16:] if struct.unpack_from(">H", data, 14)[0] == _ETHERTYPE_IPV4 else None
    return data if data and data[0] >> 4 == 4 else None  # raw IP


def udp_datagrams(path: str | Path) -> Iterator[Datagram]:
    """The IPv4 UDP datagrams of the capture at ``path``, in capture order, one at a time.

    Frames of other protocols (TCP, IPv6, ARP) and IP fragments after the first are
    skipped; an IPv4 header or UDP header whose lengths contradict the frame is a
    :class:`PcapFormatError` naming the frame.
    """
    name = str(path)
    for f in read_pcap(path):
        ip = _ipv4_packet(f)
        if ip is None:
            continue

        def bad(problem: str, f: CapturedFrame = f) -> PcapFormatError:
            return PcapFormatError(name, f.number, f.offset, problem)

        if len(ip) < 20:
            raise bad(f"IPv4 header cut short ({len(ip)} bytes)")
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from(">H", ip, 2)[0]
        if ihl < 20 or total < ihl or total > len(ip):
            raise bad(
                f"IPv4 lengths contradict the frame (header {ihl}, total {total}, "
                f"{len(ip)} bytes captured)"
            )
        if ip[9] != Proto.UDP:
            continue
        flags_fragment = struct.unpack_from(">H", ip, 6)[0]
        if flags_fragment & 0x1FFF:
            continue  # a later fragment: no UDP header
        if flags_fragment & 0x2000:
            raise bad("a fragmented UDP datagram (fragments are not reassembled)")
        udp = ip[ihl:total]
        if len(udp) < 8:
            raise bad(f"UDP header cut short ({len(udp)} bytes)")
        # The UDP checksum is not verified: captures on loopback often hold checksums
        # the kernel never filled in (offload).
        src_port, dst_port, length = struct.unpack_from(">HHH", udp)
        if length < 8 or length > len(udp):
            raise bad(f"UDP length {length} contradicts the {len(udp)} bytes of the IP payload")
        yield Datagram(
            f.number,
            f.timestamp,
            ".".join(str(b) for b in ip[12:16]),
            src_port,
            ".".join(str(b) for b in ip[16:20]),
            dst_port,
            bytes(udp[8:length]),
        )

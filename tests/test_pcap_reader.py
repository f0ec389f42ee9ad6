"""The pcap reader: what the writer frames comes back (UDP datagrams, TCP skipped), in
either byte order; a file that is not a readable capture is a typed error naming the
frame and byte offset."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from mbmssec.impl.protocols.pcap import (
    Packet,
    PcapFormatError,
    Proto,
    pcap_bytes,
    read_pcap,
    udp_datagrams,
)
from mbmssec.impl.protocols.srtp import SrtpParseError, SrtpPolicy, parse_srtp

PACKETS = [
    Packet(1_700_000_000.25, 40_000, 50_001, b"\x80" + bytes(40)),
    Packet(1_700_000_000.5, 8080, 50_002, b"GET / HTTP/1.1\r\n\r\n", Proto.TCP),
    Packet(1_700_000_000.75, 40_000, 50_002, b"second"),
]


def test_udp_datagrams_come_back(tmp_path: Path) -> None:
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap_bytes(PACKETS))
    got = list(udp_datagrams(path))
    assert [(d.src_port, d.dst_port, d.payload) for d in got] == [
        (40_000, 50_001, b"\x80" + bytes(40)),
        (40_000, 50_002, b"second"),
    ]
    assert [d.timestamp for d in got] == [1_700_000_000.25, 1_700_000_000.75]
    # frames count the TCP handshake and segment too: 1 UDP, 3 + 1 TCP, 1 UDP
    assert [d.frame for d in got] == [1, 6]
    assert got[0].src == got[0].dst == "127.0.0.1"


def test_big_endian_nanosecond_capture(tmp_path: Path) -> None:
    """The same records written big-endian with nanosecond timestamps."""
    little = pcap_bytes(PACKETS[:1])
    frame = little[24 + 16 :]
    head = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65_535, 1)
    record = struct.pack(">IIII", 1_700_000_000, 250_000_000, len(frame), len(frame))
    path = tmp_path / "be.pcap"
    path.write_bytes(head + record + frame)
    (d,) = udp_datagrams(path)
    assert d.timestamp == 1_700_000_000.25 and d.dst_port == 50_001


@pytest.mark.parametrize(
    ("edit", "frame", "words"),
    [
        (lambda b: b"", 0, "shorter than the 24-byte"),
        (lambda b: b"\x0a\x0d\x0d\x0a" + b[4:], 0, "pcapng"),
        (lambda b: b"\x00\x01\x02\x03" + b[4:], 0, "is not that of a libpcap capture"),
        (lambda b: b[:20] + struct.pack("<I", 105) + b[24:], 0, "link type 105"),
        (lambda b: b[:-5], 1, "record cut short"),
        (lambda b: b[: 24 + 7], 1, "record header cut short"),
        (lambda b: b[:32] + struct.pack("<I", len(b) - 40 - 4) + b[36:-4], 1, "only"),
        (lambda b: b[: 40 + 16] + struct.pack(">H", 9999) + b[40 + 18 :], 1, "IPv4 lengths"),
        (lambda b: b[: 40 + 38] + struct.pack(">H", 4000) + b[40 + 40 :], 1, "UDP length"),
    ],
)
def test_malformed_capture_is_a_typed_error(
    tmp_path: Path, edit: object, frame: int, words: str
) -> None:
    good = pcap_bytes(PACKETS[:1])
    path = tmp_path / "bad.pcap"
    assert callable(edit)
    path.write_bytes(edit(good))
    with pytest.raises(PcapFormatError) as info:
        list(udp_datagrams(path))
    assert words in str(info.value) and info.value.frame == frame


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PcapFormatError, match="cannot read the file"):
        list(read_pcap(tmp_path / "missing.pcap"))


def test_parse_srtp_fields() -> None:
    header = struct.pack("!BBHII", 0x80, 96, 0x1234, 0, 0xDEADBEEF)
    packet = header + b"payload" + (7).to_bytes(4, "big") + bytes(range(10))
    f = parse_srtp(packet, SrtpPolicy())
    assert (f.seq, f.ssrc, f.mki_value, f.tag) == (0x1234, 0xDEADBEEF, 7, bytes(range(10)))
    assert parse_srtp(header + bytes(10), SrtpPolicy(mki_length=0)).mki_value is None
    with pytest.raises(SrtpParseError):
        parse_srtp(header[:8], SrtpPolicy())
    with pytest.raises(SrtpParseError, match="RTP version"):
        parse_srtp(b"\x40" + packet[1:], SrtpPolicy())

"""The BM-SC's SRTP packets on the wire, checked against the event log and the model.

``mbmssec trace-check LOG --pcap FILE`` reads a capture of the BM-SC's data plane (the
pcap ``mbmssec demo --pcap`` writes, or one taken on the loopback interface with a filter
on the BM-SC's UDP port) beside the event log.  Every IPv4 UDP datagram of the capture is
taken as an SRTP packet of the BM-SC's streamer; TCP segments (the HTTP exchanges) and
other protocols are skipped.  Each packet is decoded with the project's own SRTP code
(:func:`mbmssec.impl.protocols.srtp.parse_srtp`: RTP header, sequence number, SSRC and
the MKI field, of the length the profile's ``mki_in_srtp`` gives) and matched with the
BM-SC's ``Send`` of the same stream (SSRC) and packet index.

The join (log order)
--------------------
Streams are told apart by SSRC (every ``Send`` logs its stream's ``ssrc``).  A stream's
packets get their SRTP index as a receiver does (RFC 3711 §3.3.1, from the highest index
so far); its first packet is anchored at the first ``Send`` with its sequence number.
Reading the log in order, each ``Send`` takes the packets of its index, reading the
capture up to the first packet of a later index of the stream, so what is held is the
packets of a few ``Send`` events.  A verdict (exit 1) names the packet (frame number,
sequence number, MKI) and the event:

* a packet of an index no ``Send`` of its stream logged, or of an SSRC no ``Send`` names
  (a packet with no ``Send``), or a UDP payload that is not an SRTP packet;
* two packets of one ``Send`` to the same port (the BM-SC sends each packet once to each
  registered UE);
* a packet to a port no ``Deliver`` before its ``Send`` registered;
* a UE's ``Receive`` of a packet the capture holds, none of whose packets went to a port
  that UE registered;
* a ``Send`` with no packet on the wire, where the capture covers it: once a stream's
  first packet is captured, the BM-SC sends every packet to every port registered (a
  registration keeps its port; a UE registering another port retires the old one), so a
  ``Send`` between two packets of a port, or after a port's last packet and before the
  capture's last packet of the stream, with no packet to that port is a packet missing
  from the wire.  ``Send`` events before a stream's first captured packet (no UE had
  registered yet) or after its last one are outside the capture and counted, not judged.

The model (mapper order)
------------------------
When the model explains a ``Send`` (the streaming checker has checked that its MKI is
the model's active TEK of the service at that point of the run), each of its packets must
carry that MKI, and, where the caller has the TEKs' keys (``keys``: the BM-SC's store in
the demo test, ``--db`` on the command line), authenticate and decrypt with the project's
SRTP receiver under that TEK's master key with the ``Send``'s rollover counter (the
authentication tag covers the ROC, RFC 3711 §4.2), so the key bytes and the index are
checked too.

A capture that cannot be read (not a classic libpcap file, cut short, inconsistent
lengths) is a :class:`~mbmssec.impl.protocols.pcap.PcapFormatError` (exit 2), found when
the checker opens it, before any event is judged, or when it reaches the bad frame.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from mbmssec.impl.protocols.pcap import Datagram, udp_datagrams
from mbmssec.impl.protocols.srtp import (
    MasterKey,
    SrtpError,
    SrtpParseError,
    SrtpPolicy,
    SrtpReceiver,
    estimate_index,
    parse_srtp,
)
from mbmssec.impl.service.bmsc import MKI_LENGTH
from mbmssec.impl.service.events import RECEIVE_REFUSED_UNKEYED
from mbmssec.impl.service.store import Store
from mbmssec.refinement.tracecheck import TraceCheckError
from mbmssec.spec.loader import Profile

__all__ = [
    "DEFAULT_HOLD",
    "KeySource",
    "WireCheck",
    "WireProblem",
    "keys_from_store",
]

KeySource = Callable[[str, int], tuple[bytes, bytes] | None]
"""(service, MKI) -> the TEK's (master key, master salt), or None if unknown."""

DEFAULT_HOLD: Final = 65_536
"""Captured packets held, at most, before their ``Send`` is read (exit 2 beyond)."""

RECENT: Final = 4_096
"""``Send`` events of a stream kept to name one a port missed."""

_RECEIVERS: Final = 8


@dataclass
class _Packet:
    """One captured datagram, decoded."""

    frame: int
    port: int
    seq: int
    ssrc: int
    mki: int | None
    payload: bytes
    index: int = -1

    def describe(self) -> str:
        mki = "no MKI" if self.mki is None else f"MKI {self.mki}"
        return f"frame {self.frame} (seq {self.seq}, {mki}, to port {self.port})"


@dataclass
class _Send:
    """What the join keeps of a ``Send``: its place in the log and its fields."""

    pos: int
    index: int
    seq: int
    mki: Any
    event: Mapping[str, Any]
    ports: set[int] = field(default_factory=set)
    """The ports its packets reached (in the capture)."""


@dataclass
class _Stream:
    """One SSRC: packets read and not yet matched, and what each port received."""

    ssrc: int
    ahead: deque[_Packet] = field(default_factory=deque)
    """Packets read but not yet indexed (before the stream's first packet is anchored)."""
    by_index: dict[int, list[_Packet]] = field(default_factory=dict)
    highest: int | None = None
    """The highest index given to a captured packet (None before the anchor)."""
    first: int | None = None
    """The index of the stream's first captured packet."""
    prev_send: int | None = None
    port_last: dict[int, int] = field(default_factory=dict)
    """Port -> index of the last ``Send`` with a packet to it."""
    recent: deque[_Send] = field(default_factory=deque)
    by_seq: dict[int, _Send] = field(default_factory=dict)
    """Sequence number -> the latest of the ``recent`` Send events with it."""
    service: str | None = None


@dataclass
class WireProblem:
    """A verdict the join found: the log position of the event it is reported at."""

    pos: int
    event: Mapping[str, Any]
    why: str


@dataclass
class _Found:
    packets: list[_Packet]
    problem: str | None


def keys_from_store(path: str | Path) -> KeySource:
    """The TEK keys of a BM-SC's SQLite database (read once per service, then closed)."""
    if not Path(path).is_file():
        raise TraceCheckError(f"no BM-SC database at {path}")
    cache: dict[str, dict[int, tuple[bytes, bytes]]] = {}

    def lookup(service: str, mki: int) -> tuple[bytes, bytes] | None:
        table = cache.get(service)
        if table is None:
            store = Store(path)
            try:
                table = cache[service] = {t.mki: (t.key, t.salt) for t in store.teks(service)}
            finally:
                store.close()
        return table.get(mki)

    return lookup


class _Capture:
    """The capture's datagrams, one at a time; the first is read when it is opened, so a
    file that is not a capture is reported before any event is judged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._it: Iterator[Datagram] = udp_datagrams(path)
        self._next: Datagram | None = next(self._it, None)
        self.read = 0

    def pop(self) -> Datagram | None:
        got = self._next
        if got is not None:
            self.read += 1
            self._next = next(self._it, None)
        return got


class WireCheck:
    """The join of a capture's SRTP packets with a log's ``Send`` events (see the module
    docstring).  :meth:`read` sees every event in log order, :meth:`explain_send` each
    ``Send`` when the model explains it, :meth:`finish` the end of the log."""

    def __init__(
        self,
        pcap: str | Path,
        profile: Profile,
        *,
        keys: KeySource | None = None,
        hold: int = DEFAULT_HOLD,
    ) -> None:
        if hold < 1:
            raise TraceCheckError("the number of packets held must be at least 1")
        self.path = Path(pcap)
        self.keys = keys
        self.hold = hold
        mki_length = MKI_LENGTH if profile["mki_in_srtp"] == "mandatory" else 0
        self.policy = SrtpPolicy(mki_length=mki_length)
        self.capture = _Capture(self.path)
        self.streams: dict[int, _Stream] = {}
        self.held = 0
        self.ports: dict[int, str] = {}
        """Port -> the UE whose ``Deliver`` registered it (in log order)."""
        self.port_of: dict[tuple[str, str], int] = {}
        self.ports_of: dict[tuple[str, str], set[int]] = {}
        """(UE, service) -> every port its Deliver events registered."""
        self.by_service: dict[str, _Stream] = {}
        self.receive_problems: dict[int, str] = {}
        self.retired: set[int] = set()
        self.found: dict[int, _Found] = {}
        self.eof = False
        self.pending: list[str] = []
        """Problems met while reading the capture, reported at the ``Send`` being read."""
        self.last: tuple[int, Mapping[str, Any]] = (-1, {})
        """The last event read (where a problem with no ``Send`` of its own is reported)."""
        self._receivers: dict[tuple[str, int], SrtpReceiver] = {}
        self.counts = {
            "udp_datagrams": 0,
            "packets_matched": 0,
            "sends_on_wire": 0,
            "sends_outside_capture": 0,
            "keys_checked": 0,
        }

    # -- reading the capture
    def _stream(self, ssrc: int) -> _Stream:
        st = self.streams.get(ssrc)
        if st is None:
            st = self.streams[ssrc] = _Stream(ssrc)
        return st

    def _read_one(self, pos: int) -> bool:
        """Read one datagram into its stream; False at the end of the capture."""
        d = self.capture.pop()
        if d is None:
            self.eof = True
            return False
        self.counts["udp_datagrams"] += 1
        try:
            f = parse_srtp(d.payload, self.policy)
        except SrtpParseError as exc:
            self.pending.append(
                f"frame {d.frame} (to port {d.dst_port}) is not an SRTP packet: {exc}"
            )
            return True
        pkt = _Packet(
            d.frame,
            d.dst_port,
            f.seq,
            f.ssrc,
            f.mki_value,
            d.payload if self.keys is not None else b"",
        )
        st = self._stream(pkt.ssrc)
        if st.highest is None:
            st.ahead.append(pkt)
        else:
            self._index(st, pkt)
        self.held += 1
        if self.held > self.hold:
            raise TraceCheckError(
                f"line {pos + 1}: the capture runs more than {self.hold} packets ahead of "
                f"the log's Send events (at frame {d.frame}): the checker holds no more"
            )
        return True

    def _index(self, st: _Stream, pkt: _Packet) -> None:
        assert st.highest is not None
        pkt.index = estimate_index(st.highest >> 16, st.highest & 0xFFFF, pkt.seq)
        st.highest = max(st.highest, pkt.index)
        st.by_index.setdefault(pkt.index, []).append(pkt)

    def _anchor(self, st: _Stream, send: _Send) -> None:
        """Give the stream's first packet the index of the first ``Send`` with its
        sequence number, and index the packets read after it."""
        head = st.ahead[0]
        if head.seq != send.seq:
            return
        st.highest = st.first = send.index
        while st.ahead:
            self._index(st, st.ahead.popleft())

    # -- the log, in its own order
    def read(self, pos: int, e: Mapping[str, Any]) -> None:
        """See the event at ``pos`` of the log (every event, in log order)."""
        self.last = (pos, e)
        name = e["event"]
        if name == "Deliver" and e.get("port") is not None and e.get("ue") is not None:
            port, ue = int(e["port"]), str(e["ue"])
            key = (ue, str(e.get("service")))
            old = self.port_of.get(key)
            if old is not None and old != port:
                self.retired.add(old)
            self.port_of[key] = port
            self.ports_of.setdefault(key, set()).add(port)
            self.ports[port] = ue
            self.retired.discard(port)
        elif name == "Send":
            self._read_send(pos, e)
        elif name == "Receive":
            self._read_receive(pos, e)

    def _read_receive(self, pos: int, e: Mapping[str, Any]) -> None:
        """A UE's reception of a packet the capture covers must have a packet to one of
        the ports the UE registered (one refused before any key was looked up need not
        be the BM-SC's: an injected datagram)."""
        if not e.get("ok") and e.get("reason") in RECEIVE_REFUSED_UNKEYED:
            return
        service, seq, ue = str(e.get("service")), e.get("seq"), str(e.get("ue"))
        st = self.by_service.get(service)
        if st is None or not isinstance(seq, int):
            return
        send = st.by_seq.get(seq)
        if send is None or not send.ports:
            return  # an older packet, or one outside the capture
        mine = self.ports_of.get((ue, service), set())
        if not mine & send.ports:
            where = ", ".join(str(p) for p in sorted(mine)) or "none registered"
            self.receive_problems[pos] = (
                f"the UE logs receiving seq {seq} (the Send at line {send.pos + 1}), but no "
                f"packet of it reached the UE's port ({where}) in the capture, which holds "
                f"{len(send.ports)} packet(s) of that Send to other ports"
            )

    def _read_send(self, pos: int, e: Mapping[str, Any]) -> None:
        ssrc, index, seq = e.get("ssrc"), e.get("index"), e.get("seq")
        for key, value in (("ssrc", ssrc), ("index", index), ("seq", seq)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TraceCheckError(
                    f"line {pos + 1}: a Send without an integer {key!r}: checking a capture "
                    "needs the stream's SSRC, packet index and sequence number in every Send"
                )
        assert isinstance(ssrc, int) and isinstance(index, int) and isinstance(seq, int)
        send = _Send(pos, index, seq, e.get("mki"), e)
        st = self._stream(ssrc)
        problems: list[str] = []
        if st.service is None:
            st.service = str(e.get("service"))
            self.by_service.setdefault(st.service, st)
        elif st.service != e.get("service"):
            problems.append(f"SSRC {ssrc} is the stream of {st.service}, not of {e.get('service')}")
        if index & 0xFFFF != seq:
            problems.append(f"the Send's seq {seq} is not its index {index} modulo 2^16")
        if st.prev_send is not None and index <= st.prev_send:
            problems.append(
                f"index {index} does not follow the stream's previous Send (index {st.prev_send})"
            )
        # read the capture up to the first packet of a later index of the stream
        while not self.eof:
            if st.highest is None and st.ahead:
                self._anchor(st, send)
                if st.highest is None:
                    break  # the capture's first packet of the stream is of a later Send
            if st.highest is not None and st.highest > index:
                break
            self._read_one(pos)
        if st.highest is None and st.ahead and self.eof:
            self._anchor(st, send)
        problems += self.pending
        self.pending.clear()
        packets = st.by_index.pop(index, [])
        self.held -= len(packets)
        for old in sorted(i for i in st.by_index if i < index):
            for pkt in st.by_index.pop(old):
                self.held -= 1
                problems.append(
                    f"{pkt.describe()} was captured, but the BM-SC logged no Send of its "
                    f"index {old} (this Send is of index {index})"
                )
        problems += self._ports(st, send, packets)
        covered = st.first is not None and st.first <= index and st.highest is not None
        if packets:
            self.counts["sends_on_wire"] += 1
            self.counts["packets_matched"] += len(packets)
        elif covered and index <= (st.highest or -1):
            problems.append("no packet of this Send was captured, which the capture covers")
        else:
            self.counts["sends_outside_capture"] += 1
        st.prev_send = index
        send.ports = {pkt.port for pkt in packets}
        st.recent.append(send)
        st.by_seq[seq] = send
        if len(st.recent) > RECENT:
            old_send = st.recent.popleft()
            if st.by_seq.get(old_send.seq) is old_send:
                del st.by_seq[old_send.seq]
        self.found[pos] = _Found(packets, problems[0] if problems else None)

    def _ports(self, st: _Stream, send: _Send, packets: list[_Packet]) -> list[str]:
        problems: list[str] = []
        seen: dict[int, _Packet] = {}
        for pkt in packets:
            first = seen.get(pkt.port)
            if first is not None:
                problems.append(
                    f"{pkt.describe()} repeats frame {first.frame}: the BM-SC sends each "
                    "packet once to each registered port"
                )
                continue
            seen[pkt.port] = pkt
            if pkt.port not in self.ports:
                problems.append(f"{pkt.describe()} goes to a port no Deliver registered")
            last = st.port_last.get(pkt.port)
            if last is not None and last != st.prev_send and pkt.port not in self.retired:
                problems.append(
                    self._missed(
                        st,
                        pkt.port,
                        last,
                        f"which got the packet before it and {pkt.describe()} after it",
                    )
                )
            st.port_last[pkt.port] = send.index
        return problems

    def _missed(self, st: _Stream, port: int, last: int, tail: str) -> str:
        """The first ``Send`` after ``last`` (a port's last packet), which it missed."""
        nxt = next((s for s in st.recent if s.index > last), None)
        ue = self.ports.get(port, "no UE")
        what = (
            f"the Send after index {last}"
            if nxt is None
            else f"the Send at line {nxt.pos + 1} (seq {nxt.seq}, MKI {nxt.mki})"
        )
        return (
            f"no packet of {what} reached port {port} ({ue}), {tail}: a packet missing "
            "from the wire"
        )

    # -- the model's order
    def explain_receive(self, pos: int) -> str | None:
        """The problem found with the ``Receive`` at ``pos``, if any."""
        return self.receive_problems.pop(pos, None)

    def explain_send(self, pos: int, e: Mapping[str, Any], active: int) -> str | None:
        """Check the packets of the ``Send`` at ``pos``, which the model has just explained
        with ``active`` the MKI of the service's active TEK; the first problem, or None."""
        found = self.found.pop(pos, None)
        if found is None:
            return None
        if found.problem is not None:
            return found.problem
        service = str(e.get("service"))
        index = int(e["index"])
        for pkt in found.packets:
            if self.policy.uses_mki and pkt.mki != active:
                return (
                    f"{pkt.describe()} carries MKI {pkt.mki}, but the model's active TEK "
                    f"of {service} at this Send is MKI {active}: a packet under a TEK "
                    "that is not active"
                )
            if self.keys is not None:
                why = self._authenticate(pkt, service, active, index)
                if why is not None:
                    return why
        return None

    def _authenticate(self, pkt: _Packet, service: str, mki: int, index: int) -> str | None:
        rx = self._receivers.get((service, mki))
        if rx is None:
            assert self.keys is not None
            got = self.keys(service, mki)
            if got is None:
                raise TraceCheckError(f"the TEK keys given hold no key for MKI {mki} of {service}")
            wire = mki.to_bytes(MKI_LENGTH, "big") if self.policy.uses_mki else b""
            rx = SrtpReceiver(self.policy, [MasterKey(wire, got[0], got[1])])
            if len(self._receivers) >= _RECEIVERS:
                del self._receivers[next(iter(self._receivers))]
            self._receivers[(service, mki)] = rx
        rx.set_roc(pkt.ssrc, index >> 16)
        try:
            rx.unprotect(pkt.payload)
        except SrtpError as exc:
            return (
                f"{pkt.describe()} does not authenticate under the key of MKI {mki}, the "
                f"model's active TEK, with ROC {index >> 16} (index {index}): {exc}"
            )
        self.counts["keys_checked"] += 1
        return None

    # -- the end of the log
    def finish(self) -> WireProblem | None:
        """After the whole log is explained: the rest of the capture is read; a packet
        left without its ``Send``, or a port that missed a ``Send`` the capture covers
        after its last packet, is a problem (reported at the stream's last ``Send``, or
        at the log's last event)."""
        end_pos, end_event = self.last
        if not self.eof:
            self._read_one(end_pos)  # any packet still to come has no Send: one is enough
        if self.pending:
            return WireProblem(end_pos, end_event, self.pending[0])
        for st in self.streams.values():
            last = st.recent[-1] if st.recent else None
            leftovers = [p for ps in st.by_index.values() for p in ps] + list(st.ahead)
            if leftovers:
                pkt = min(leftovers, key=lambda p: p.frame)
                if last is None:
                    why = f"{pkt.describe()} is of SSRC {st.ssrc}, which no Send of the log names"
                    return WireProblem(end_pos, end_event, why)
                why = f"{pkt.describe()} was captured, but the BM-SC logged no Send of it" + (
                    f" (index {pkt.index})" if pkt.index >= 0 else ""
                )
                return WireProblem(last.pos, last.event, why)
            if st.highest is None:
                continue
            for port, idx in sorted(st.port_last.items()):
                if port in self.retired:
                    continue
                nxt = next((s for s in st.recent if s.index > idx), None)
                if nxt is not None and nxt.index <= st.highest:
                    why = self._missed(
                        st,
                        port,
                        idx,
                        f"though the capture holds the stream's packets up to index {st.highest}",
                    )
                    return WireProblem(nxt.pos, nxt.event, why)
        return None

    def summary(self) -> dict[str, Any]:
        """What was checked, for the verdict."""
        return {
            "pcap": str(self.path),
            "mki_length": self.policy.mki_length,
            "keys": self.keys is not None,
            "streams": sorted(self.streams),
            "ports": len(self.ports),
            **self.counts,
        }

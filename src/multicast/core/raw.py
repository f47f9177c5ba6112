"""Raw and packet sockets: the one place the package opens them and filters them in the kernel.

Both kinds need ``CAP_NET_RAW`` (root, or the capability given to the program); without it
:func:`open_raw` raises :class:`~multicast.exceptions.RawSocketPermissionError`, a
``PermissionError`` (exit code 77 on the command line), with one line saying so.

A packet socket (:func:`open_packet_socket`) takes the frames of one interface, arriving and
leaving, whether or not any socket of this host joined their group; what it returns starts at
the IP header. A classic BPF program (:func:`assemble`, :func:`attach_filter`) decides in the
kernel which of them it keeps, and how many bytes of each.
"""

from __future__ import annotations

import ctypes
import errno
import socket
import struct

from multicast.core.interfaces import Interface
from multicast.exceptions import RawSocketPermissionError, SocketOptionError

__all__ = [
    "BPF_JEQ",
    "BPF_JGE",
    "BPF_JGT",
    "BPF_JSET",
    "BPF_LDX_B_MSH",
    "BPF_LD_B_ABS",
    "BPF_LD_H_ABS",
    "BPF_LD_H_IND",
    "BPF_LD_W_ABS",
    "BPF_MAXINSNS",
    "BPF_RET",
    "ETH_P_IP",
    "ETH_P_IPV6",
    "PACKET_OUTGOING",
    "SKF_AD_PKTTYPE",
    "SKF_AD_PROTOCOL",
    "SO_TIMESTAMPNS",
    "Step",
    "assemble",
    "attach_filter",
    "open_packet_socket",
    "open_raw",
    "packet_drops",
    "refused",
]

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4  # the packet type of frames this host sends (sockaddr_ll.sll_pkttype)
SO_TIMESTAMPNS = 35  # also the control message type carrying the arrival time (timespec)
_SOL_PACKET = 263
_PACKET_ADD_MEMBERSHIP = 1
_PACKET_MR_ALLMULTI = 2
_PACKET_STATISTICS = 6
_SO_ATTACH_FILTER = 26

# Classic BPF (linux/filter.h): the opcodes the package's programs use.
BPF_LD_W_ABS = 0x20  # A = 32 bits at k
BPF_LD_H_ABS = 0x28  # A = 16 bits at k
BPF_LD_B_ABS = 0x30  # A = the byte at k
BPF_LD_H_IND = 0x48  # A = 16 bits at X + k
BPF_LDX_B_MSH = 0xB1  # X = 4 * (the byte at k & 0xf): an IPv4 header's length
BPF_JEQ = 0x15
BPF_JGE = 0x35
BPF_JGT = 0x25
BPF_JSET = 0x45  # true when A & k is not 0
BPF_RET = 0x06  # keep k bytes of the packet (0: drop it)
SKF_AD_PROTOCOL = 0xFFFFF000  # SKF_AD_OFF + 0: loads the frame's EtherType
SKF_AD_PKTTYPE = 0xFFFFF004  # SKF_AD_OFF + 4: loads its packet type (PACKET_OUTGOING...)
BPF_MAXINSNS = 4096  # the most instructions the kernel takes in one classic BPF program
_LONGEST_JUMP = 255  # a conditional jump's offsets are one byte each

Step = tuple[int, int, str | None, str | None]
"""One instruction with symbolic jumps: (opcode, k, label if true, label if false); a label
of None falls through. Jumps only go forward, over at most 255 instructions each (a
conditional jump's offset is one byte), as classic BPF requires."""


def assemble(program: list[tuple[str | None, Step]]) -> bytes:
    """Classic BPF instructions (``struct sock_filter``), each with its label or None, with
    the labels made offsets. A jump that goes back or over more than 255 instructions, or a
    program longer than :data:`BPF_MAXINSNS` instructions, is a ``ValueError``."""
    if len(program) > BPF_MAXINSNS:
        raise ValueError(
            f"a BPF program of {len(program)} instructions: the kernel takes {BPF_MAXINSNS} at most"
        )
    where = {label: index for index, (label, _) in enumerate(program) if label}
    code = []
    for index, (_, (opcode, k, if_true, if_false)) in enumerate(program):
        jt = where[if_true] - index - 1 if if_true else 0
        jf = where[if_false] - index - 1 if if_false else 0
        if not (0 <= jt <= _LONGEST_JUMP and 0 <= jf <= _LONGEST_JUMP):
            raise ValueError(
                f"BPF instruction {index} jumps back or past {_LONGEST_JUMP} instructions ahead"
            )
        code.append(struct.pack("=HBBI", opcode, jt, jf, k))
    return b"".join(code)


def refused(error: OSError, what: str) -> SocketOptionError:
    """The kernel refused to ``what``: its errno, and one line naming what was refused."""
    if isinstance(error, SocketOptionError):
        return error
    return SocketOptionError(error.errno or errno.EIO, f"cannot {what}: {error.strerror or error}")


def open_raw(family: int, kind: int, protocol: int, purpose: str) -> socket.socket:
    """A socket that needs ``CAP_NET_RAW``; without it, one line saying ``purpose`` needs it."""
    try:
        return socket.socket(family, kind, protocol)
    except PermissionError:
        raise RawSocketPermissionError(
            f"{purpose} needs a raw socket, and this process lacks CAP_NET_RAW: run it as root "
            "(or with that capability)"
        ) from None


def attach_filter(sock: socket.socket, program: bytes) -> None:
    """Have the kernel run ``program`` (from :func:`assemble`) on every packet for ``sock``."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HP", len(program) // 8, ctypes.addressof(buffer))  # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError as error:
        raise refused(error, "attach a packet filter") from error


def open_packet_socket(
    interface: Interface, program: bytes, purpose: str, *, timestamps: bool = False
) -> socket.socket:
    """A non-blocking packet socket on ``interface`` that keeps what ``program`` lets through.

    It takes nothing before the filter is on (it is opened for no protocol, then bound to
    every one), and asks the interface to pass up every multicast frame
    (``PACKET_MR_ALLMULTI``), so that a card filtering by address hands over those of groups
    no socket here joined. With ``timestamps`` each packet comes with the time it arrived
    (``SO_TIMESTAMPNS``).
    """
    sock = open_raw(socket.AF_PACKET, socket.SOCK_DGRAM, 0, purpose)
    try:
        attach_filter(sock, program)
        if timestamps:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.bind((interface.name, ETH_P_ALL))
        membership = struct.pack("iHH8s", interface.index, _PACKET_MR_ALLMULTI, 0, b"")
        sock.setsockopt(_SOL_PACKET, _PACKET_ADD_MEMBERSHIP, membership)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        raise refused(error, f"listen on {interface.name}") from error
    return sock


def packet_drops(sock: socket.socket) -> int:
    """Packets a packet socket's full queue dropped since the last call (it starts again
    from 0 on each: ``PACKET_STATISTICS``)."""
    _, drops = struct.unpack("II", sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8))
    return int(drops)

"""A classic BPF interpreter for the opcodes the package's kernel filters use, so that a unit
test can run a filter on a frame without a socket: what the kernel would keep of it.

As in the kernel: a load past the end of the packet ends the program with 0 (dropped);
offsets from ``SKF_AD_OFF`` load the frame's EtherType and packet type.
"""

from __future__ import annotations

import struct

from multicast.core import raw

_SIZES = {raw.BPF_LD_W_ABS: 4, raw.BPF_LD_H_ABS: 2, raw.BPF_LD_B_ABS: 1, raw.BPF_LD_H_IND: 2}
_TESTS = {
    raw.BPF_JEQ: lambda a, k: a == k,
    raw.BPF_JGE: lambda a, k: a >= k,
    raw.BPF_JGT: lambda a, k: a > k,
    raw.BPF_JSET: lambda a, k: bool(a & k),
}
_ANCILLARY = {raw.SKF_AD_PROTOCOL, raw.SKF_AD_PKTTYPE}
_PACKET_HOST = 0


def run_filter(
    program: bytes, packet: bytes, ethertype: int, packet_type: int = _PACKET_HOST
) -> int:
    """The bytes of ``packet`` (a frame from its network header on) that ``program`` keeps."""
    code = [struct.unpack_from("=HBBI", program, at) for at in range(0, len(program), 8)]
    a = x = 0
    pc = 0
    while True:
        opcode, jt, jf, k = code[pc]  # running off the end is an IndexError: a broken program
        pc += 1
        if opcode == raw.BPF_RET:
            return k
        if opcode in _TESTS:
            pc += jt if _TESTS[opcode](a, k) else jf
        elif opcode == raw.BPF_LDX_B_MSH:
            if k >= len(packet):
                return 0
            x = 4 * (packet[k] & 0x0F)
        elif opcode in _SIZES:
            if opcode == raw.BPF_LD_W_ABS and k in _ANCILLARY:
                a = ethertype if k == raw.SKF_AD_PROTOCOL else packet_type
                continue
            offset, size = (x + k if opcode == raw.BPF_LD_H_IND else k), _SIZES[opcode]
            if offset + size > len(packet):
                return 0
            a = int.from_bytes(packet[offset : offset + size], "big")
        else:
            raise ValueError(f"opcode {opcode:#x} is not one this interpreter knows")

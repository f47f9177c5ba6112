"""Listeners and pollable objects for the tests of the event layer (``multicast.events``)."""

from __future__ import annotations

import socket

from multicast.events import MulticastListener

GROUP = "239.3.0.1"
TIMEOUT = 2.0


class Recorder(MulticastListener):
    """Keeps every packet it is handed; stops after ``stop_after`` packets if given."""

    def __init__(self, *args: object, stop_after: int | None = None, **options: object) -> None:
        self.packets: list[tuple[bytes, tuple[str, int]]] = []
        self.stop_after = stop_after
        super().__init__(*args, **options)  # type: ignore[arg-type]

    def handle_packet(self, packet: bytes, addr: tuple[str, int]) -> bool:
        self.packets.append((packet, addr))
        return len(self.packets) == self.stop_after

    @property
    def payloads(self) -> list[bytes]:
        return [packet for packet, _ in self.packets]


class Pipe:
    """A datagram socket pair with handlers that record their calls (no multicast)."""

    def __init__(self) -> None:
        self.inside, self.outside = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.calls: list[str] = []

    def fileno(self) -> int:
        return self.inside.fileno()

    def close(self) -> None:
        self.inside.close()
        self.outside.close()


class ReadWrite(Pipe):
    def handle_read(self) -> None:
        self.calls.append("read")
        self.inside.recv(100)

    def handle_write(self) -> None:
        self.calls.append("write")


class ReadOnly(Pipe):
    def handle_read(self) -> None:
        self.calls.append("read")
        self.inside.recv(100)


class WriteOnly(Pipe):
    def handle_write(self) -> None:
        self.calls.append("write")

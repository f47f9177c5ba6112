"""Types of the C extension (``_fastio.c``, ``_fastio_send.c``): the batched path of
:mod:`multicast.core.batch`."""

import socket
from collections.abc import Callable, Iterable

from multicast.core.datagram import Datagram, Payload

CONTROL_SPACE: int

def configure(
    datagram_class: type[Datagram], check_payload_size: Callable[[socket.AddressFamily, int], None]
) -> None: ...

class Receiver:
    size: int
    slots: int
    busy: bool
    def __init__(self, size: int, slots: int = 64) -> None: ...
    def receive(
        self,
        fd: int,
        limit: int,
        wait: bool = False,
        spin: float = 0.0,
        timeout: float | None = None,
        /,
    ) -> list[Datagram]: ...

def send(
    fd: int, family: socket.AddressFamily, payloads: Iterable[Payload], name: bytes, limit: int
) -> int: ...
def send_each(
    fd: int,
    family: int,
    pairs: list[tuple[Payload, tuple[str, int] | tuple[str, int, int, int]]],
    limit: int,
) -> list[tuple[int, int]]: ...
def parse_control(control: bytes) -> tuple[str | None, int | None, int | None, int]: ...

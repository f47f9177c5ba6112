"""Receivers and senders made inside test-bed hosts, shared by the multi-host tests."""

from __future__ import annotations

import select
import subprocess
import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from multicast.core import Receiver, Sender, open_receiver, parse_group
from multicast.testing import WAIT, Host

PORT = 4446  # each test's hosts are namespaces of their own: one port serves every test


def receiver(stack: ExitStack, host: Host, groups: list[str], **options: Any) -> Receiver:
    """An :func:`open_receiver` on ``PORT`` made inside ``host`` (joined on ``eth0`` unless
    ``interfaces`` says otherwise), closed when the test ends."""
    options.setdefault("interfaces", "eth0")
    return stack.enter_context(host.call(open_receiver, groups, PORT, **options))


def send(host: Host, group: str, payload: bytes, **options: Any) -> None:
    """Send one datagram from ``host`` to ``group`` on ``PORT``, out of ``eth0`` unless
    ``interface`` says otherwise (other :class:`Sender` options: ``ttl``, ``loopback``...)."""
    options.setdefault("interface", "eth0")

    def body() -> None:
        with Sender(parse_group(group).family, **options) as sender:
            sender.send(payload, group, PORT)

    host.call(body)


def start_capture(
    host: Host, seconds: float, display_filter: str, fields: Sequence[str], interface: str = "eth0"
) -> subprocess.Popen[str]:
    """tshark on ``host``'s ``interface`` for ``seconds``, started and capturing: it prints
    the ``fields`` of each packet that ``display_filter`` keeps, one line each, separated
    by ``|``; read them with ``communicate()``."""
    capture = host.popen(
        [
            *("tshark", "-i", interface, "-l", "-n", "-a", f"duration:{seconds}"),
            *("-Y", display_filter, "-T", "fields", "-E", "separator=|"),
            *(f"-e{name}" for name in fields),
        ]
    )
    assert capture.stderr is not None
    deadline = time.monotonic() + WAIT
    seen = ""
    while "Capturing on" not in seen:
        ready, _, _ = select.select([capture.stderr], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"tshark did not start: {seen}"
        line = capture.stderr.readline()
        assert line, f"tshark ended: {seen}"
        seen += line
    return capture

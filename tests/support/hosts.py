"""Receivers and senders made inside test-bed hosts, shared by the multi-host tests."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from multicast.core import Receiver, Sender, open_receiver, parse_group
from multicast.testing import Host

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

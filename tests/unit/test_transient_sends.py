"""One rule for a send the kernel had no room for (``multicast.core.TRANSIENT_SEND_ERRORS``):
the tools' counted sends, ping's probes and the reliable transfer count it as a loss and go
on; every other refusal raises. The kernel's answers are stood in for: no socket is opened."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from multicast.core import TRANSIENT_SEND_ERRORS, Payload
from multicast.core.datagram import SocketAddress
from multicast.exceptions import SendError
from multicast.reliable import transfer
from multicast.tools import common, ping

WHERE = ("239.1.2.3", 5000)
GROUP: Any = WHERE[0]  # what the stand-in Sender resolves


class _Sender:
    """What the counted sends use of a Sender: its socket and the destinations it resolves."""

    sock: Any = None

    def destination(self, group: str, port: int) -> SocketAddress:
        return (group, port)


def _refusing(code: int, *, one: bool = False) -> Callable[..., int]:
    """A stand-in for send_many_to (``one``: send_to) that the kernel refuses with ``code``:
    a SendError, or for one datagram that would block, a BlockingIOError (as send_to)."""

    def send(sock: object, payload: Payload | Iterable[Payload], where: SocketAddress) -> int:
        assert where == WHERE
        if one and code == errno.EAGAIN:
            raise BlockingIOError(code, "would block")
        raise SendError(code, f"cannot send to {where[0]}")

    return send


def test_the_transient_errors() -> None:
    assert {errno.ENOBUFS, errno.EAGAIN} == TRANSIENT_SEND_ERRORS


@pytest.mark.parametrize("code", sorted(TRANSIENT_SEND_ERRORS))
def test_no_room_is_a_loss_to_count(code: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "send_to", _refusing(code, one=True))
    monkeypatch.setattr(common, "send_many_to", _refusing(code))
    monkeypatch.setattr(transfer, "send_many_to", _refusing(code))
    sender: Any = _Sender()
    assert common.send_if_room(None, b"probe", WHERE) is False  # type: ignore[arg-type]
    assert common.send_counted(sender, [b"one"], GROUP, WHERE[1]) == 0
    assert common.send_counted(sender, [b"one", b"two"], GROUP, WHERE[1]) == 0
    assert transfer._send(sender, [b"one", b"two"], WHERE) == 0


def test_any_other_refusal_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "send_to", _refusing(errno.ENETUNREACH, one=True))
    monkeypatch.setattr(common, "send_many_to", _refusing(errno.ENETUNREACH))
    monkeypatch.setattr(transfer, "send_many_to", _refusing(errno.ENETUNREACH))
    sender: Any = _Sender()
    sends: list[Callable[[], object]] = [
        lambda: common.send_if_room(None, b"probe", WHERE),  # type: ignore[arg-type]
        lambda: common.send_counted(sender, [b"one"], GROUP, WHERE[1]),
        lambda: common.send_counted(sender, [b"one", b"two"], GROUP, WHERE[1]),
        lambda: transfer._send(sender, [b"one", b"two"], WHERE),
    ]
    for send in sends:
        with pytest.raises(SendError) as refused:
            send()
        assert refused.value.errno == errno.ENETUNREACH


def test_a_datagram_with_room_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[object] = []
    monkeypatch.setattr(common, "send_to", lambda sock, payload, where: sent.append(payload))
    assert common.send_if_room(None, b"probe", WHERE) is True  # type: ignore[arg-type]
    assert common.send_counted(_Sender(), [b"one"], GROUP, WHERE[1]) == 1  # type: ignore[arg-type]
    assert sent == [b"probe", b"one"]


def test_ping_sends_its_probes_by_the_shared_rule() -> None:
    """ping's per-probe path calls the tools' helper itself: no copy of the rule of its own."""
    assert vars(ping)["send_if_room"] is common.send_if_room

"""Bad values given to the library's pure parts and constructors (issue 12): a
``MulticastError`` subclass (here an ``OptionError``, also a ``ValueError``) that names the
value, raised before anything is opened. Sockets and their checks: ``tests/network``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from multicast.events import Multicaster, MulticastListener
from multicast.exceptions import MulticastError
from multicast.tools.framing import FrameReader, ReplayWindow
from multicast.tools.stats import SequenceTracker, percentile, summarize
from multicast.udp import Peer

GROUP = "239.12.3.1"


class Listener(MulticastListener):
    def handle_packet(self, packet: bytes, addr: tuple[str, int]) -> object:
        return None  # never made: the bad value stops it first


class Talker(Multicaster):
    def __iter__(self) -> Iterator[bytes]:
        return iter(())  # never made: the bad value stops it first


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: Listener(None, GROUP, 5000, 0), "mtu 0"),
        (lambda: Talker(GROUP, 5000, rate=0), "rate 0"),
        (lambda: Peer(name="p", bs=-1), "bs=-1"),
        (lambda: SequenceTracker(memory=0), "memory"),
        (lambda: summarize([]), "no values"),
        (lambda: percentile([1.0], 2.0), "fraction 2.0"),
        (lambda: ReplayWindow(size=0), "replay window size"),
        (lambda: FrameReader(time_window=0.0), "time window 0.0"),
    ],
)
def test_a_bad_value_is_a_multicast_error_naming_it(make: Callable[[], object], named: str) -> None:
    with pytest.raises(MulticastError, match=named) as refused:
        make()
    assert isinstance(refused.value, ValueError)

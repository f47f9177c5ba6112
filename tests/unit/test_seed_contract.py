"""The contract of the reference documents (seeds 000-003), in this project's own words: what
their examples check that needs no socket. ``tests/network/test_seed_contract.py`` has the
rest; ``make acceptance`` runs the transcribed examples themselves when ``../shared`` is there.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

import multicast
from multicast.hear import HearUDPHandler, McastHEAR, McastServer
from multicast.recv import McastRECV, recvstep

FACES = ["hear", "recv", "skt", "send"]


def test_the_package_describes_itself() -> None:
    assert isinstance(multicast.__doc__, str) and multicast.__doc__
    assert multicast.__package__ == "multicast"
    assert multicast.__main__ is not None  # bound by `import multicast` alone
    assert callable(multicast.__main__.main)


@pytest.mark.parametrize("name", FACES)
def test_each_module_has_its_metadata_as_text(name: str) -> None:
    module = getattr(multicast, name)
    assert module is importlib.import_module(f"multicast.{name}")
    for value in (module.__doc__, module.__module__, module.__package__, module.__name__):
        assert isinstance(value, str) and value
    assert module.__package__ == multicast.__package__


@pytest.mark.parametrize("tool", [McastHEAR, McastRECV])
def test_the_tools_name_themselves(tool: type) -> None:
    for attribute in ("__module__", "__proc__", "__prologue__", "__epilogue__"):
        assert isinstance(getattr(tool, attribute), str)
    assert isinstance(tool(), tool)
    for default in ("_MCAST_DEFAULT_PORT", "_MCAST_DEFAULT_GROUP", "_MCAST_DEFAULT_TTL"):
        assert getattr(multicast, default) is not None


def test_the_server_names_its_parts() -> None:
    assert McastServer.__log_handle__ == "multicast.hear.McastServer"
    assert list(inspect.signature(McastServer._sync_logger).parameters) == ["self"]
    assert HearUDPHandler.__name__ == "HearUDPHandler"


def test_a_handler_without_a_socket_does_nothing() -> None:
    handler = HearUDPHandler(
        request=("Test data", None), client_address=("192.0.2.1", 1), server=None
    )
    handler.request = ("No-Op", None)
    assert handler.handle() is None


class OneDatagram:
    """A socket stand-in that holds one datagram."""

    closed = False

    def recv(self, size: int) -> bytes:
        return b"it worked"

    def close(self) -> None:
        self.closed = True


def test_recvstep_appends_what_arrived_and_closes_the_socket() -> None:
    sock = OneDatagram()
    assert recvstep("test added: ", None, sock) == "test added: it worked"
    assert sock.closed

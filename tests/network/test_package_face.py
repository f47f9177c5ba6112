"""The package face's defaults, assigned after import, reach every face, HEAR's server
included (which opens a socket: the rest of the face is tested in ``tests/unit``)."""

from __future__ import annotations

import pytest

from multicast.__main__ import McastDispatch
from multicast.cliargs import Parser, add_port, add_ttl, chosen_groups
from multicast.hear import McastServer
from multicast.recv import bind_host, requested_groups


@pytest.mark.usefixtures("changed_defaults")
def test_the_faces_use_defaults_assigned_after_import() -> None:
    parser = Parser(prog="demo")
    add_port(parser)
    add_ttl(parser)
    args = parser.parse_args([])
    assert (args.port, args.ttl) == (50123, 9)
    assert [str(g) for g in chosen_groups(args)] == ["239.7.7.7"]
    for command in ("SAY", "RECV", "HEAR"):
        namespace, _ = McastDispatch.parseArgs([command])
        assert namespace.port == 50123, command
    assert [str(g) for g in requested_groups(None, None)] == ["239.7.7.7"]
    assert bind_host(requested_groups(None, None)) == "0.0.0.0"
    with McastServer(("", 0), None, bind_and_activate=False) as server:
        assert server.server_address == ("239.7.7.7", 50123)

"""Multicast routers for the test bed: FRR's ``zebra`` and ``pimd`` in host namespaces.

A :class:`PimRouter` turns a test-bed host into a PIM-SM router (IPv4): FRR's ``zebra``
learns the host's interfaces and routes from its kernel, ``pimd`` runs PIM on every
interface (with short hello and join/prune timers) and IGMPv3 towards the hosts, and
programs the kernel's multicast routing table. Any-source groups are routed through a
static rendezvous point; 232.0.0.0/8 is source-specific (SSM), as FRR has it by default.

Each router keeps everything in a directory of its own under :data:`RUN_DIRECTORY`
(configuration, vty sockets, pid files, logs): nothing under ``/etc/frr`` is read or written, no systemd or ``watchfrr`` is
involved, and each daemon is started and stopped by its process id. The daemons give up
root for the user ``frr`` (which owns the directory), and run in a mount namespace of their
own with a private ``/var/tmp``, where FRR keeps its crash buffers. So the test bed needs
the Debian package ``frr`` and real root: :func:`frr_problem` says why not, if not.

:func:`route_unicast` installs the static routes PIM needs to find its way back to sources
and to the rendezvous point; :func:`routed_line` builds the usual topology: a sender, a line
of routers, and receivers each on a link of its own behind the last router.
"""

from __future__ import annotations

import contextlib
import grp
import itertools
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multicast.testing.testbed import WAIT, Host, Testbed, TestbedError

__all__ = [
    "FRR_DAEMONS",
    "RUN_DIRECTORY",
    "PimRouter",
    "PimTimers",
    "RoutedLine",
    "frr_problem",
    "loopback_address",
    "multicast_routing_problem",
    "route_unicast",
    "routed_line",
]

FRR_DAEMONS = Path("/usr/lib/frr")
# Where each router keeps its files: scripts/netns-run mounts a private /run, so they vanish
# with the namespace, and the user frr can reach them (a test's tmp_path is not: mode 0700).
RUN_DIRECTORY = Path("/run/multicast-frr")
_USER = "frr"
_MRT_INIT = 200  # linux/mroute.h: become the multicast routing daemon of a namespace
_POLL = 0.05
_CONFIG_ERROR = "Configuration failed"  # what a daemon prints when a line is refused


def frr_problem() -> str | None:
    """Why this machine cannot run FRR routers in the test bed, or None."""
    missing = [
        str(path)
        for path in (FRR_DAEMONS / "zebra", FRR_DAEMONS / "pimd")
        if not os.access(path, os.X_OK)
    ]
    if missing or shutil.which("vtysh") is None:
        return f"FRR is not installed (Debian package frr): {', '.join(missing) or 'vtysh'}"
    for tool in ("unshare", "mount"):
        if shutil.which(tool) is None:
            return f"'{tool}' is missing (Debian package util-linux)"
    try:
        pwd.getpwnam(_USER)
        grp.getgrnam(_USER)
    except KeyError:
        return f"the user and group {_USER!r} that FRR's daemons run as do not exist"
    if os.geteuid() != 0 or _in_user_namespace():
        return f"FRR's daemons switch to the user {_USER!r}: the test bed must run as real root"
    return multicast_routing_problem(families=(socket.AF_INET,))


def multicast_routing_problem(
    families: tuple[socket.AddressFamily, ...] = (socket.AF_INET, socket.AF_INET6),
) -> str | None:
    """Why this kernel cannot route multicast of ``families`` in a namespace (``MRT_INIT``,
    ``MRT6_INIT``), or None."""
    checks = {
        socket.AF_INET: (socket.IPPROTO_IGMP, socket.IPPROTO_IP, "IPv4 (MRT_INIT)"),
        socket.AF_INET6: (socket.IPPROTO_ICMPV6, socket.IPPROTO_IPV6, "IPv6 (MRT6_INIT)"),
    }
    for family in families:
        protocol, level, what = checks[family]
        try:
            with socket.socket(family, socket.SOCK_RAW, protocol) as raw:
                raw.setsockopt(level, _MRT_INIT, 1)  # MRT_INIT and MRT6_INIT are both 200
        except OSError as error:
            return f"the kernel refuses {what} multicast routing here: {error}"
    return None


def _in_user_namespace() -> bool:
    """Whether uid 0 here is a mapped user: another user of the machine outside."""
    try:
        mapping = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return False
    return mapping[:3] != ["0", "0", "4294967295"]


def loopback_address(host: Host) -> str:
    """The router id of ``host``: an address of its own on ``lo`` (198.19.0.N for host N)."""
    return f"198.19.0.{host.number}"


@dataclass(frozen=True, slots=True)
class PimTimers:
    """Timers short enough for tests: PIM in seconds, IGMP response times in tenths."""

    hello: int = 1  # PIM hello interval; neighbours are held for 3.5 of them
    join_prune: int = 2  # PIM join/prune refresh interval (a restarted router is rejoined)
    igmp_query_interval: int = 2
    igmp_response_tenths: int = 10
    last_member_tenths: int = 2
    last_member_count: int = 1


class PimRouter:
    """``zebra`` and ``pimd`` on ``host``, configured and run from :attr:`directory`.

    ``rp`` is the rendezvous point of every any-source group (224.0.0.0/4 less the SSM
    range); the router whose loopback address it is becomes the RP. :meth:`start`
    returns once both daemons answer on their vty sockets.
    """

    DAEMONS = ("zebra", "pimd")

    def __init__(self, host: Host, *, rp: str, timers: PimTimers = PimTimers()) -> None:
        self.host = host
        self.directory = RUN_DIRECTORY / host.netns
        self.rp = rp
        self.timers = timers
        self.processes: dict[str, subprocess.Popen[str]] = {}
        self.directory.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.directory, _USER, _USER)
        host.sysctl({"net/ipv4/ip_forward": "1"})
        host.ip(f"addr add {loopback_address(host)}/32 dev lo")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host.name}>"

    @property
    def name(self) -> str:
        return self.host.name

    def configuration(self) -> dict[str, str]:
        """The configuration file of each daemon."""
        t = self.timers
        pim = [
            f"hostname {self.name}",
            f"ip pim rp {self.rp} 224.0.0.0/4",
            f"ip pim join-prune-interval {t.join_prune}",
        ]
        for nic in self.host.nics:
            pim += [
                f"interface {nic.name}",
                " ip pim",
                f" ip pim hello {t.hello} {max(3, int(3.5 * t.hello))}",
                " ip igmp",
                " ip igmp version 3",
                # the response time first: FRR checks it against the interval at each line
                f" ip igmp query-max-response-time {t.igmp_response_tenths}",
                f" ip igmp query-interval {t.igmp_query_interval}",
                f" ip igmp last-member-query-interval {t.last_member_tenths}",
                f" ip igmp last-member-query-count {t.last_member_count}",
                "exit",
            ]
        pim += ["interface lo", " ip pim", "exit"]  # the RP address lives on lo
        return {"zebra": f"hostname {self.name}\n", "pimd": "\n".join(pim) + "\n"}

    def _command(self, daemon: str) -> list[str]:
        here = self.directory
        # A mount namespace of its own with a private /var/tmp, then the daemon itself (each
        # step replaces the one before, so the process id is the daemon's).
        return [
            "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", 'mount -t tmpfs frr-var-tmp /var/tmp && exec "$0" "$@"',
            str(FRR_DAEMONS / daemon),
            "-u", _USER, "-g", _USER,
            "-f", str(here / f"{daemon}.conf"),
            "-i", str(here / f"{daemon}.pid"),
            "-z", str(here / "zserv.api"),
            "--vty_socket", str(here),
            "-P", "0",  # no vty over TCP
            "--log", f"file:{here / f'{daemon}.log'}",
        ]  # fmt: skip

    def start(self) -> None:
        """Write the configuration and start ``zebra``, then ``pimd``; wait until both answer."""
        if self.processes:
            raise TestbedError(f"router {self.name} is already running")
        for daemon, text in self.configuration().items():
            (self.directory / f"{daemon}.conf").write_text(text)
        for daemon in self.DAEMONS:
            (self.directory / f"{daemon}.vty").unlink(missing_ok=True)
            with (self.directory / f"{daemon}.out").open("a") as output:
                self.processes[daemon] = self.host.popen(
                    self._command(daemon), stdout=output, stderr=subprocess.STDOUT
                )
            self._wait_for_vty(daemon)

    def _wait_for_vty(self, daemon: str) -> None:
        """Wait for the daemon's vty socket, which it opens once its configuration is read."""
        process = self.processes[daemon]
        socket_path = self.directory / f"{daemon}.vty"
        output = self.directory / f"{daemon}.out"
        deadline = time.monotonic() + WAIT
        while not socket_path.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise TestbedError(
                    f"{daemon} of router {self.name} did not start: {output.read_text()[-2000:]}"
                )
            time.sleep(_POLL)
        refused = [line for line in output.read_text().splitlines() if _CONFIG_ERROR in line]
        if refused:
            raise TestbedError(
                f"{daemon} of router {self.name} refused its configuration: {output.read_text()[-2000:]}"
            )

    def stop(self) -> None:
        """Stop ``pimd``, then ``zebra`` (SIGTERM by process id; SIGKILL if one lingers).

        ``pimd`` leaves the kernel's multicast routing as it goes: forwarding stops.
        """
        for daemon in reversed(self.DAEMONS):
            process = self.processes.pop(daemon, None)
            if process is None:
                continue
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=WAIT / 2)
                    break
            if process.returncode is None:
                raise TestbedError(
                    f"{daemon} of router {self.name} (pid {process.pid}) did not end"
                )

    def restart(self) -> None:
        self.stop()
        self.start()

    def vtysh(self, *commands: str) -> str:
        """Run vtysh commands (``show ip mroute``...) against this router's daemons."""
        args = ["vtysh", "--vty_socket", str(self.directory), "--config_dir", str(self.directory)]
        for command in commands:
            args += ["-c", command]
        return self.host.run(args).stdout

    def show(self, command: str) -> Any:
        """The JSON answer to a ``show ... json`` command, e.g. ``show ip mroute``."""
        return json.loads(self.vtysh(f"{command} json") or "{}")

    def neighbors(self) -> set[str]:
        """The addresses of the PIM neighbours this router has."""
        shown = self.show("show ip pim neighbor")
        return {address for by_interface in shown.values() for address in by_interface}

    def outgoing(self, group: str, source: str = "*") -> set[str]:
        """The interfaces the router forwards ``(source, group)`` to (``*``: any source)."""
        entry = self.show("show ip mroute").get(group, {}).get(source, {})
        return {name for name, state in entry.get("oil", {}).items() if state}


def route_unicast(routers: Sequence[Host]) -> None:
    """Static routes on each of ``routers`` to every link and router loopback it is not on,
    by the fewest router hops (the routes PIM needs to reach sources and the RP)."""
    for router in routers:
        for prefix, via in _routes_from(router, routers).items():
            router.ip(f"route replace {prefix} via {via}")


def _routes_from(start: Host, routers: Sequence[Host]) -> dict[str, str]:
    """prefix -> next hop address, for ``start``: a breadth-first walk over the routers."""
    attached = {nic.link.number for nic in start.nics}
    routes: dict[str, str] = {}
    first_hop: dict[int, str] = {id(start): ""}
    queue = deque([start])
    while queue:
        router = queue.popleft()
        via = first_hop[id(router)]
        if via:
            routes[f"{loopback_address(router)}/32"] = via
            for nic in router.nics:
                if nic.link.number not in attached:
                    routes.setdefault(str(nic.link.ipv4), via)
        for nic in router.nics:
            for other in nic.link.nics:
                neighbor = other.host
                if neighbor in routers and id(neighbor) not in first_hop:
                    first_hop[id(neighbor)] = via or other.address()
                    queue.append(neighbor)
    return routes


@dataclass
class RoutedLine:
    """A sender, a line of PIM routers, and receivers behind the last router.

    The sender is on link 1 with the first router; each router is on a link with the next;
    each receiver is on a link of its own with the last router. The RP is the middle
    router's loopback address.
    """

    sender: Host
    routers: list[PimRouter]
    receivers: list[Host]
    rp: str
    adjacent: dict[str, set[str]] = field(default_factory=dict)  # router -> its PIM neighbours

    def converge(self, timeout: float = 3 * WAIT) -> float:
        """Wait until every router has all its PIM neighbours; the seconds it took."""
        return wait_until(
            "every router has all its PIM neighbours",
            lambda: all(
                router.neighbors() >= self.adjacent[router.name] for router in self.routers
            ),
            timeout,
        )

    def stop(self) -> None:
        for router in self.routers:
            router.stop()


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Poll ``check`` until it holds (at most ``timeout`` seconds); the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TestbedError(f"not within {timeout} s: {what}")
        time.sleep(_POLL * 4)
    return time.monotonic() - start


def routed_line(
    testbed: Testbed,
    *,
    routers: int = 3,
    receivers: int = 2,
    timers: PimTimers = PimTimers(),
) -> RoutedLine:
    """Build and start the line (routers ``r1``... , receivers ``rcv1``...); not yet converged."""
    problem = frr_problem()
    if problem is not None:
        raise TestbedError(f"cannot run FRR routers: {problem}")
    if routers < 1 or receivers < 1:
        raise ValueError("a routed line has at least one router and one receiver")
    sender = testbed.add_host("sender")
    hosts = [testbed.add_host(f"r{n}") for n in range(1, routers + 1)]
    ends = [testbed.add_host(f"rcv{n}") for n in range(1, receivers + 1)]
    testbed.connect(sender, hosts[0])
    for upstream, downstream in itertools.pairwise(hosts):
        testbed.connect(upstream, downstream)
    for end in ends:
        testbed.connect(hosts[-1], end)
    rp = loopback_address(hosts[len(hosts) // 2])
    pim = [PimRouter(host, rp=rp, timers=timers) for host in hosts]
    route_unicast(hosts)
    for router in pim:
        router.start()
    adjacent = {
        host.name: {
            other.address()
            for nic in host.nics
            for other in nic.link.nics
            if other.host in hosts and other.host is not host
        }
        for host in hosts
    }
    return RoutedLine(sender, pim, ends, rp, adjacent)

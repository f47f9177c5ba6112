"""A test bed of hosts: network namespaces joined by veth pairs or bridges (Linux).

For proving multicast code across hosts on one machine: the test suite, ``make demo`` and
anyone's own tests. Use it only inside a private network namespace, such as the one
``scripts/netns-run`` makes (:func:`private_namespace_problem` says why not, if not): every
host, link and bridge it makes then lives and dies in that sandbox, and no datagram can reach
a real network. It runs ``ip`` (iproute2) and needs root there (a user namespace will do).

Addressing. Link N (numbered from 1 in order of creation) is the network 198.18.N.0/24 and
2001:db8:N::/64; host number x has 198.18.N.x and 2001:db8:N::x on it (IPv6 without duplicate
address detection, so addresses are usable at once). A host's interfaces are named ``eth0``,
``eth1``, ... in the order of its links; its first link carries the multicast routes
(224.0.0.0/4, ff00::/8) and the default routes. A bridge lives in a namespace of its own, with
IGMP/MLD snooping off so that it floods every multicast datagram to every port.

Threads. :meth:`Namespace.call` runs a Python callable in a thread that entered the host's
namespace with ``setns(CLONE_NEWNET)``: sockets made there stay in that namespace whichever
thread uses them later, and ``multicast.core`` lookups (``if_nameindex``, ``getifaddrs``,
``ioctl``) answer for the thread's namespace. ``/proc/self/net`` does not: it shows the main
thread's namespace (``/proc/thread-self/net`` shows the thread's).

Typical use (``with Testbed() as testbed:``, or the test suite's ``testbed`` fixture)::

    h1, h2 = testbed.add_hosts(2)
    testbed.connect(h1, h2)                       # h1 eth0 198.18.1.1 <-> h2 eth0 198.18.1.2
    receiver = h2.call(open_receiver, ["239.1.2.3"], 4446, interfaces="eth0")
    h1.call(send_one, ...)                        # any callable, run in h1's namespace
    receiver.receive(timeout=5)                   # the socket stays in h2, any thread reads it
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
import itertools
import json
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network
from typing import IO, Any, ParamSpec, TypeVar

from multicast.core import Closing
from multicast.core.constants import MAX_INTERFACE_NAME
from multicast.exceptions import MulticastError

__all__ = [
    "WAIT",
    "Bridge",
    "Host",
    "Link",
    "Namespace",
    "Nic",
    "Testbed",
    "TestbedError",
    "private_namespace_problem",
]

WAIT = 10.0  # seconds: the bound on every command, callable and wait of the test bed
_SETTLE = 5.0  # seconds for a new link to carry traffic
_STOP = 2.0  # seconds a process gets to end after each signal at tear-down
_NETNS_DIR = "/run/netns"  # where `ip netns add` keeps its namespaces
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_beds = itertools.count(1)
_indexes = itertools.count(100)  # interface indexes for veth ends, never used twice

# Written in every host namespace before its first link: IPv6 addresses (link-local ones too)
# usable at once instead of after duplicate address detection, and kept while a link is down
# so that bringing it up again restores the host as it was.
_HOST_SYSCTLS = {
    "net/ipv6/conf/all/accept_dad": "0",
    "net/ipv6/conf/default/accept_dad": "0",
    "net/ipv6/conf/all/keep_addr_on_down": "1",
    "net/ipv6/conf/default/keep_addr_on_down": "1",
}

P = ParamSpec("P")
T = TypeVar("T")


class TestbedError(MulticastError, RuntimeError):
    """A command that built, changed or removed the test bed failed; the message says which."""

    __test__ = False  # not a test class, whatever its name says to pytest


def private_namespace_problem() -> str | None:
    """Why this thread is not in a fresh namespace from ``scripts/netns-run``, or None.

    That script sets ``MULTICAST_NETNS=private`` in a namespace holding only ``lo``.
    """
    if os.environ.get("MULTICAST_NETNS") != "private":
        return "MULTICAST_NETNS is not 'private'"
    others = sorted(name for _, name in socket.if_nameindex() if name != "lo")
    if others:
        return f"the network namespace has interfaces besides lo ({', '.join(others)})"
    return None


def _run(
    args: Sequence[str], *, input: str | None = None, timeout: float = WAIT, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end (at most ``timeout`` seconds), capturing its output as text."""
    try:
        done = subprocess.run(
            args,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise TestbedError(f"{shlex.join(args)} did not end within {timeout} s") from None
    if check and done.returncode != 0:
        detail = done.stderr.strip() or f"exit status {done.returncode}"
        given = f" (its input: {input!r})" if input is not None else ""
        raise TestbedError(f"{shlex.join(args)} failed: {detail}{given}")
    return done


def _enter(netns: str) -> None:
    """Move the calling thread into the network namespace ``netns``."""
    fd = os.open(os.path.join(_NETNS_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"setns into network namespace {netns}: {os.strerror(code)}")
    finally:
        os.close(fd)


def _write_sysctls(values: dict[str, str]) -> None:
    """Write ``/proc/sys`` entries: the ``net`` ones are those of the calling thread's namespace."""
    for key, value in values.items():
        with open(f"/proc/sys/{key}", "w") as entry:
            entry.write(value)


class Namespace:
    """A network namespace made with ``ip netns add``: run commands and callables inside it."""

    def __init__(self, bed: Testbed, name: str) -> None:
        self.name = name
        self.netns = f"{bed.prefix}-{name}"
        self._bed = bed
        _run(["ip", "netns", "add", self.netns])
        bed._namespaces.append(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ({self.netns})>"

    def ip(self, *commands: str) -> str:
        """Run ``ip`` commands (one per argument, e.g. ``"link set eth0 up"``) in this namespace."""
        return _run(
            ["ip", "-n", self.netns, "-batch", "-"], input="\n".join(commands) + "\n"
        ).stdout

    def describe(self, interface: str) -> dict[str, Any]:
        """``ip -json -details addr show dev INTERFACE`` here: flags, state, addresses..."""
        shown = _run(
            ["ip", "-n", self.netns, "-json", "-details", "addr", "show", "dev", interface]
        )
        states: list[dict[str, Any]] = json.loads(shown.stdout)
        return states[0]

    def run(
        self,
        args: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = WAIT,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command here to its end, fed ``input``; if it fails and ``check``, raise."""
        command = ["ip", "netns", "exec", self.netns, *args]
        return _run(command, input=input, timeout=timeout, check=check)

    def popen(
        self,
        args: Sequence[str],
        *,
        stdout: int | IO[str] | None = subprocess.PIPE,
        stderr: int | IO[str] | None = subprocess.PIPE,
    ) -> subprocess.Popen[str]:
        """Start a long command here in a session of its own; tear-down ends it (and its children)."""
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, *args],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
        self._bed._processes.append(process)
        return process

    def start(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` in a new thread inside this namespace; its future result.

        The callable must bound its own waits: tear-down reports a thread still running.
        """
        future: Future[T] = Future()

        def body() -> None:
            if not future.set_running_or_notify_cancel():
                return  # cancelled before it began
            try:
                _enter(self.netns)
                result = fn(*args, **kwargs)
            except BaseException as error:  # handed to whoever waits on the future
                future.set_exception(error)
            else:
                future.set_result(result)

        name = f"{self.name}:{getattr(fn, '__name__', 'callable')}"
        thread = threading.Thread(target=body, name=name, daemon=True)
        self._bed._threads.append(thread)
        thread.start()
        return future

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` inside this namespace and return (or raise) what it does."""
        return self.start(fn, *args, **kwargs).result(timeout=WAIT)

    def sysctl(self, values: dict[str, str]) -> None:
        """Set kernel settings of this namespace, e.g. ``{"net/ipv4/ip_forward": "1"}``."""
        self.call(_write_sysctls, values)


class Host(Namespace):
    """A host: a namespace with ``lo`` up and one interface per link, named ``eth0``, ``eth1``..."""

    def __init__(self, bed: Testbed, name: str, number: int) -> None:
        super().__init__(bed, name)
        self.number = number
        self.nics: list[Nic] = []
        self.sysctl(_HOST_SYSCTLS)
        self.ip("link set lo up")

    def interface(self, name: str) -> Nic:
        """This host's interface called ``name``."""
        for nic in self.nics:
            if nic.name == name:
                return nic
        have = ", ".join(n.name for n in self.nics) or "none"
        raise KeyError(f"host {self.name} has no interface {name!r} (it has: {have})")

    def address(self, family: socket.AddressFamily = socket.AF_INET, interface: str = "") -> str:
        """This host's address of ``family`` on ``interface`` (by default its first link)."""
        if not self.nics:
            raise KeyError(f"host {self.name} has no link yet")
        nic = self.interface(interface) if interface else self.nics[0]
        return nic.address(family)

    def link_down(self, name: str) -> None:
        """Take interface ``name`` down (its peer loses carrier; the kernel drops its routes)."""
        self.ip(f"link set {self.interface(name).name} down")

    def link_up(self, name: str) -> None:
        """Bring interface ``name`` up again with its routes, as it was before :meth:`link_down`."""
        nic = self.interface(name)
        self.ip(f"link set {nic.name} up", *nic.route_commands())
        nic.veth.settle()

    def delete_interface(self, name: str) -> None:
        """Delete interface ``name`` (a veth pair: its peer end vanishes with it)."""
        self.interface(name).veth.delete()

    def create_interface(self, name: str) -> None:
        """Create interface ``name`` again after :meth:`delete_interface`: same name, same link."""
        self.interface(name).veth.create()


class Bridge(Namespace):
    """A namespace holding bridge ``br0`` that floods multicast to every port (snooping off)."""

    DEVICE = "br0"

    def __init__(self, bed: Testbed, name: str) -> None:
        super().__init__(bed, name)
        self.ip(
            f"link add {self.DEVICE} type bridge mcast_snooping 0",
            f"link set {self.DEVICE} up",
        )


@dataclass(eq=False)
class _End(abc.ABC):
    """One end of a veth pair: the namespace it lives in and its interface name there."""

    namespace: Namespace
    name: str

    @abc.abstractmethod
    def configure(self) -> None:
        """Bring this end into service right after the pair is made."""

    @abc.abstractmethod
    def ready(self, state: dict[str, Any]) -> bool:
        """Whether this end, as :meth:`Namespace.describe` shows it, carries traffic."""

    def settle(self) -> None:
        """Wait (bounded) until this end carries traffic, if it has carrier at all.

        Carrier comes at once, but the kernel's link watcher marks the link operational
        (and so lets the bridge forward and IPv6 make its link-local address) a little later.
        """
        deadline = time.monotonic() + _SETTLE
        while True:
            state = self.namespace.describe(self.name)
            if "LOWER_UP" not in state["flags"]:
                return  # its peer is down: nothing to wait for
            if state["operstate"] == "UP" and self.ready(state):
                return
            if time.monotonic() > deadline:
                raise TestbedError(
                    f"{self.namespace.name} {self.name} not ready within {_SETTLE} s: {state}"
                )
            time.sleep(0.005)


@dataclass(eq=False)
class _Port(_End):
    """A veth end enslaved to a bridge."""

    namespace: Bridge

    def configure(self) -> None:
        self.namespace.ip(
            f"link set {self.name} master {Bridge.DEVICE}", f"link set {self.name} up"
        )

    def ready(self, state: dict[str, Any]) -> bool:
        port: dict[str, Any] = state.get("linkinfo", {}).get("info_slave_data", {})
        return port.get("state") == "forwarding"


@dataclass(eq=False)
class Nic(_End):
    """A host's interface on one link, with its IPv4 and IPv6 addresses there."""

    namespace: Host
    link: Link
    ipv4: IPv4Interface
    ipv6: IPv6Interface
    veth: _Veth = field(init=False)

    @property
    def host(self) -> Host:
        return self.namespace

    @property
    def index(self) -> int:
        """The interface index inside its host (it changes when the interface is re-created)."""
        return self.host.call(socket.if_nametoindex, self.name)

    def address(self, family: socket.AddressFamily = socket.AF_INET) -> str:
        """This interface's address of ``family``, without prefix length."""
        return str(self.ipv4.ip if family == socket.AF_INET else self.ipv6.ip)

    def route_commands(self) -> list[str]:
        """The multicast and default routes, if this is its host's first interface."""
        if self.host.nics[0] is not self:
            return []
        return [
            f"route replace 224.0.0.0/4 dev {self.name}",
            f"route replace default dev {self.name}",
            f"route replace ff00::/8 dev {self.name}",
            f"route replace ::/0 dev {self.name}",
        ]

    def configure(self) -> None:
        self.host.ip(
            f"addr add {self.ipv4} dev {self.name}",
            f"addr add {self.ipv6} dev {self.name} nodad",
            f"link set {self.name} up",
            *self.route_commands(),
        )

    def ready(self, state: dict[str, Any]) -> bool:
        """Its link-local IPv6 address exists and has left the tentative state."""
        link_local = [a for a in state["addr_info"] if a.get("scope") == "link"]
        return bool(link_local) and not any(a.get("tentative") for a in link_local)


@dataclass(eq=False)
class _Veth:
    """A veth pair between two hosts, or between a host and a bridge port."""

    ends: tuple[_End, _End]

    def __post_init__(self) -> None:
        for end in self.ends:
            if isinstance(end, Nic):
                end.veth = self

    def create(self) -> None:
        """Make the pair, each end with a fresh interface index, configure and settle it.

        The indexes differ from each other on purpose: the kernel's link watcher treats a
        veth whose index equals its peer's as not urgent and delays marking it up by up to
        a second, during which a bridge drops its frames.
        """
        near, far = (
            [end.name, "netns", end.namespace.netns, "index", str(next(_indexes))]
            for end in self.ends
        )
        _run(["ip", "link", "add", *near, "type", "veth", "peer", "name", *far])
        for end in self.ends:
            end.configure()
        self.settle()

    def settle(self) -> None:
        for end in self.ends:
            end.settle()

    def delete(self) -> None:
        near = self.ends[0]
        near.namespace.ip(f"link delete {near.name}")


@dataclass(eq=False)
class Link:
    """Network number N: 198.18.N.0/24 and 2001:db8:N::/64, with the hosts' interfaces on it."""

    number: int
    nics: list[Nic] = field(default_factory=list)
    bridge: Bridge | None = None

    @property
    def ipv4(self) -> IPv4Network:
        return IPv4Network(f"198.18.{self.number}.0/24")

    @property
    def ipv6(self) -> IPv6Network:
        return IPv6Network(f"2001:db8:{self.number}::/64")

    def nic(self, host: Host) -> Nic:
        """``host``'s interface on this link."""
        for nic in self.nics:
            if nic.host is host:
                return nic
        raise KeyError(f"host {host.name} is not on link {self.number}")

    def _attach(self, host: Host) -> Nic:
        nic = Nic(
            namespace=host,
            name=f"eth{len(host.nics)}",
            link=self,
            ipv4=IPv4Interface(f"198.18.{self.number}.{host.number}/24"),
            ipv6=IPv6Interface(f"2001:db8:{self.number}::{host.number}/64"),
        )
        host.nics.append(nic)
        self.nics.append(nic)
        return nic


class Testbed(Closing):
    """Hosts, links and bridges made on demand; :meth:`close` removes all of it.

    Use it as a context manager (or through the ``testbed`` fixture) so that tear-down runs
    even when the test fails.
    """

    __test__ = False  # not a test class, whatever its name says to pytest

    def __init__(self) -> None:
        problem = private_namespace_problem()
        if problem is not None:
            raise TestbedError(
                f"a test bed is made only inside a private network namespace "
                f"(scripts/netns-run): {problem}"
            )
        self.prefix = f"tb{os.getpid()}-{next(_beds)}"
        self.hosts: list[Host] = []
        self.links: list[Link] = []
        self._namespaces: list[Namespace] = []
        self._processes: list[subprocess.Popen[str]] = []
        self._threads: list[threading.Thread] = []

    def add_host(self, name: str = "") -> Host:
        """A new host, named ``h<number>`` unless ``name`` is given (at most 15 characters)."""
        number = len(self.hosts) + 1
        name = name or f"h{number}"
        if number > 254:
            raise ValueError("a test bed holds at most 254 hosts")
        if not name.isidentifier() or len(name) > MAX_INTERFACE_NAME:
            raise ValueError(
                f"host name {name!r} must be an identifier of 1-{MAX_INTERFACE_NAME} characters"
            )
        if any(h.name == name for h in self.hosts):
            raise ValueError(f"there is already a host called {name!r}")
        host = Host(self, name, number)
        self.hosts.append(host)
        return host

    def add_hosts(self, count: int) -> list[Host]:
        """``count`` new hosts."""
        return [self.add_host() for _ in range(count)]

    def _new_link(self, hosts: Sequence[Host]) -> Link:
        if len(set(map(id, hosts))) != len(hosts):
            raise ValueError(f"a host appears twice on one link: {[h.name for h in hosts]}")
        if len(self.links) >= 255:
            raise ValueError("a test bed holds at most 255 links")
        link = Link(len(self.links) + 1)
        self.links.append(link)
        return link

    def connect(self, a: Host, b: Host) -> Link:
        """Join hosts ``a`` and ``b`` with a veth pair: a link of its own."""
        link = self._new_link([a, b])
        _Veth((link._attach(a), link._attach(b))).create()
        return link

    def bridge(self, *hosts: Host) -> Link:
        """Join ``hosts`` through a new bridge, each by a veth pair to a bridge port."""
        if not hosts:
            raise ValueError("a bridge needs at least one host")
        link = self._new_link(hosts)
        link.bridge = Bridge(self, f"br{link.number}")
        for host in hosts:
            _Veth((link._attach(host), _Port(link.bridge, host.name))).create()
        return link

    def close(self) -> None:
        """End the processes, wait (bounded) for the threads, delete every namespace.

        Everything is attempted; the problems found are raised together at the end.
        """
        problems: list[str] = []
        for process in self._processes:
            problems.extend(_stop(process))
        self._processes.clear()
        deadline = time.monotonic() + WAIT
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                problems.append(f"callable {thread.name} still running after {WAIT} s")
        self._threads.clear()
        for namespace in reversed(self._namespaces):
            try:
                _run(["ip", "netns", "delete", namespace.netns])
            except TestbedError as error:
                problems.append(str(error))
        self._namespaces.clear()
        if problems:
            raise TestbedError("tear-down: " + "; ".join(problems))


def _stop(process: subprocess.Popen[str]) -> list[str]:
    """End a process started by :meth:`Namespace.popen` and its session; the problems found."""
    problems: list[str] = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        # The process leads a session and group of its own (start_new_session): signalling
        # the group by its id reaches exactly the processes it started.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_STOP)
    if process.returncode is None:
        problems.append(f"process {process.pid} {process.args!r} did not end")
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    return problems

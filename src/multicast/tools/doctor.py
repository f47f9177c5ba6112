"""``multicast doctor``: check this host's multicast set-up, each problem with a one-line fix.

It reads ``/proc`` and the output of ``ip`` (and of ``nft -j`` or ``iptables -S`` where
installed: :mod:`multicast.tools.firewall` compares their address ranges with multicast's),
and self-tests every multicast interface by sending one frame to the all-hosts group
(224.0.0.1, or interface-local ff01::1), or to the user's own ``--group`` and ``--port``,
with TTL 0 and loopback on. The self-test's receiver joins the group on the interface, so
the host is a member and the kernel drops the original before it leaves (see the TTL check
for the rule); joining the all-hosts groups sends no IGMP or MLD report either.

The parsers are pure functions over text, so they are tested on captured samples.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_network
from pathlib import Path

from multicast.cliargs import group_type, port_type, timeout_type
from multicast.core import Group, Interface, Receiver, Scope, Sender, list_interfaces, parse_group
from multicast.exceptions import MulticastError, UsageError
from multicast.tools.checks import Check, Status
from multicast.tools.firewall import Traffic, firewall_checks, iptables_rules, nft_rules
from multicast.tools.framing import Frame, encode_frame, parse_frame
from multicast.tools.options import add_json, emit, seconds_type

__all__ = [
    "TOOL",
    "Check",
    "DoctorReport",
    "DoctorTool",
    "GroupMembership",
    "Status",
    "check_forced_versions",
    "check_interface_local_route",
    "check_interfaces",
    "check_queriers",
    "check_reverse_path",
    "firewall_checks",
    "lo_untestable",
    "parse_igmp",
    "parse_igmp6",
    "run_doctor",
    "self_test",
    "ttl_zero_rule",
]

SELF_TEST_GROUPS = {socket.AF_INET: "224.0.0.1", socket.AF_INET6: "ff01::1"}
_ALL_NODES_INTERFACE_LOCAL = IPv6Address(SELF_TEST_GROUPS[socket.AF_INET6])
# Probe groups for `ip route get`: an administratively scoped and a global IPv6 group.
_ROUTE_PROBES = {socket.AF_INET: "239.255.255.250", socket.AF_INET6: "ff0e::1"}
_COMMAND_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class GroupMembership:
    """A group this host has joined on an interface, as the kernel lists it."""

    interface: str
    group: str
    users: int

    def as_dict(self) -> dict[str, object]:
        return {"interface": self.interface, "group": self.group, "users": self.users}


@dataclass(frozen=True, slots=True)
class DoctorReport:
    checks: tuple[Check, ...]
    memberships: tuple[GroupMembership, ...]

    @property
    def problems(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.problem)

    def as_dict(self) -> dict[str, object]:
        return {
            "problems": len(self.problems),
            "checks": [check.as_dict() for check in self.checks],
            "memberships": [membership.as_dict() for membership in self.memberships],
        }

    def __str__(self) -> str:
        lines = [str(check) for check in self.checks]
        lines.append(f"memberships ({len(self.memberships)}):")
        lines.extend(f"  {m.interface:12} {m.group}  users {m.users}" for m in self.memberships)
        count = len(self.problems)
        lines.append(f"{count} problem{'' if count == 1 else 's'} found")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Pure checks over what the kernel reports.


def parse_igmp(text: str) -> tuple[list[GroupMembership], dict[str, str]]:
    """IPv4 memberships and each interface's IGMP version from ``/proc/net/igmp``.

    Interface lines read ``idx device : count querier``; the group lines under them hold the
    address as the kernel's 32-bit value in hexadecimal, in this host's byte order.
    """
    memberships: list[GroupMembership] = []
    versions: dict[str, str] = {}
    device: str | None = None
    for line in text.splitlines()[1:]:
        fields = line.split()
        if not fields:
            continue
        if not line[0].isspace() and len(fields) >= 5 and fields[2] == ":":
            device = fields[1]
            versions[device] = fields[4]
        elif device is not None and re.fullmatch(r"[0-9A-Fa-f]{8}", fields[0]) and len(fields) > 1:
            packed = int(fields[0], 16).to_bytes(4, sys.byteorder)
            users = int(fields[1]) if fields[1].isdigit() else 0
            memberships.append(GroupMembership(device, str(IPv4Address(packed)), users))
    return memberships, versions


def parse_igmp6(text: str) -> list[GroupMembership]:
    """IPv6 memberships from ``/proc/net/igmp6`` (``idx device address users flags timer``)."""
    memberships = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and re.fullmatch(r"[0-9a-fA-F]{32}", fields[2]):
            users = int(fields[3]) if fields[3].isdigit() else 0
            group = str(IPv6Address(bytes.fromhex(fields[2])))
            memberships.append(GroupMembership(fields[1], group, users))
    return memberships


def check_interfaces(interfaces: Iterable[Interface]) -> list[Check]:
    """Each interface: up, and multicast-capable (the MULTICAST flag)."""
    checks = []
    for interface in interfaces:
        state = "up" if interface.up else "down"
        flags = f"{state}, {'multicast' if interface.multicast else 'no MULTICAST flag'}"
        detail = f"{flags}, mtu {interface.mtu}, index {interface.index}"
        if interface.up and not interface.multicast and not interface.loopback:
            checks.append(
                Check(
                    "interfaces",
                    interface.name,
                    Status.WARN,
                    f"{detail}: the kernel will not send or receive multicast on it",
                    f"ip link set dev {interface.name} multicast on",
                )
            )
        else:
            checks.append(Check("interfaces", interface.name, Status.OK, detail))
    return checks


def check_reverse_path(values: dict[str, int]) -> list[Check]:
    """Reverse-path filtering per interface; ``values`` maps names (and ``all``) to rp_filter.

    The kernel applies the larger of ``all`` and the interface's value. Strict mode (1) drops
    multicast from sources that this host would not route back through the same interface.
    """
    common = values.get("all", 0)
    checks = []
    for name, own in sorted(values.items()):
        if name in ("all", "default"):
            continue
        effective = max(common, own)
        label = {0: "off", 1: "strict", 2: "loose"}.get(effective, str(effective))
        if effective == 1:
            checks.append(
                Check(
                    "rp_filter",
                    name,
                    Status.WARN,
                    "strict reverse-path filtering drops multicast from sources not routed "
                    f"back through {name}",
                    f"sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{name}.rp_filter=2",
                )
            )
        else:
            checks.append(Check("rp_filter", name, Status.OK, label))
    return checks


def check_forced_versions(igmp: dict[str, int], mld: dict[str, int]) -> list[Check]:
    """Forced IGMP/MLD versions: below IGMPv3 / MLDv2, source-specific joins cannot be made."""
    checks = []
    for protocol, forced, full, key in (
        ("IGMP", igmp, 3, "net.ipv4.conf.{}.force_igmp_version"),
        ("MLD", mld, 2, "net.ipv6.conf.{}.force_mld_version"),
    ):
        for name, version in sorted(forced.items()):
            if name == "default" or version == 0:
                continue
            if version < full:
                checks.append(
                    Check(
                        protocol.lower(),
                        name,
                        Status.WARN,
                        f"{protocol} forced to version {version}: source-specific (SSM) joins "
                        "are not possible",
                        f"sysctl -w {key.format(name)}=0",
                    )
                )
            else:
                checks.append(Check(protocol.lower(), name, Status.OK, f"forced to v{version}"))
    return checks


def check_queriers(versions: dict[str, str], forced: dict[str, int]) -> list[Check]:
    """The IGMP version each link runs (/proc/net/igmp): an old querier rules out SSM.

    Interfaces whose version is forced (``forced``, from force_igmp_version) are reported
    by :func:`check_forced_versions` instead.
    """
    checks = []
    for name, version in sorted(versions.items()):
        if forced.get(name):
            continue
        if version in ("V1", "V2"):
            checks.append(
                Check(
                    "igmp",
                    name,
                    Status.WARN,
                    f"the link's querier runs IGMP{version.lower()}: source-specific joins "
                    "are reported as any-source",
                    "enable IGMPv3 on the link's querier (router or switch)",
                )
            )
        else:
            checks.append(Check("igmp", name, Status.OK, f"IGMP{version.lower()}"))
    return checks


def ttl_zero_rule() -> Check:
    """How Linux treats TTL 0 (measured; see :mod:`multicast.core.hostscope`)."""
    return Check(
        "ttl",
        "TTL 0",
        Status.INFO,
        "Linux keeps a multicast datagram sent with TTL (hop limit) 0 on this host only when "
        "the host is a member of its group on the interface it leaves by (IPv6: and loopback "
        "is on); otherwise it leaves with TTL 0 and the next host receives it. multicast's own "
        "senders join the group first (with loopback off they send nothing); other programs' "
        "TTL-0 datagrams may leave",
    )


def check_interface_local_route(
    routes: Sequence[dict[str, object]], group: IPv6Address = _ALL_NODES_INTERFACE_LOCAL
) -> Check | None:
    """A problem when no route of the local table (``ip -j -6 route show table local``)
    takes the interface-local ``group``'s prefix (its first 16 bits: ff01::/16 for the
    all-nodes group) to ``lo``: the kernel then delivers none of those groups there,
    whatever the firewall says. None when there is one."""
    for route in routes:
        destination = route.get("dst")
        if route.get("dev") != "lo" or not isinstance(destination, str):
            continue
        with contextlib.suppress(ValueError):
            if group in ip_network(destination, strict=False):
                return None
    prefix = ip_network(f"{group}/16", strict=False)
    return Check(
        "routes",
        f"lo {prefix}",
        Status.FAIL,
        f"interface-local IPv6 groups ({prefix}) on lo need a route in the local table and "
        "have none: the kernel delivers none of them on lo",
        f"ip -6 route add table local {prefix} dev lo",
    )


def lo_untestable(group: Group) -> Check | None:
    """An INFO check when ``group`` is an IPv6 group wider than interface-local: on ``lo``
    Linux delivers only interface-local IPv6 groups (ffx1::/16), so a self-test there
    would fail whatever the firewall says. None for any other group."""
    if group.family != socket.AF_INET6 or group.scope is Scope.INTERFACE_LOCAL:
        return None
    return Check(
        "self-test",
        f"lo {group.address}",
        Status.INFO,
        f"not tested on lo: Linux delivers only interface-local IPv6 groups (ffx1::/16) on "
        f"lo, and {group.address} is {group.scope.value}; the other interfaces test it",
    )


# ---------------------------------------------------------------------------------------------
# Gathering: files, commands and the self-test.


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _command(*args: str) -> str | None:
    """Output of a command, or None if it is not installed or fails."""
    if shutil.which(args[0]) is None:
        return None
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _sysctl_per_interface(directory: Path, name: str) -> dict[str, int]:
    values = {}
    for entry in sorted(directory.glob(f"*/{name}")):
        text = _read(entry)
        if text is not None and text.strip().lstrip("-").isdigit():
            values[entry.parent.name] = int(text)
    return values


def _route_checks(interfaces: Sequence[Interface]) -> list[Check]:
    output = _command("ip", "-j", "-4", "route", "show", "table", "all")
    if output is None:
        return [Check("routes", "ip", Status.INFO, "the ip command is missing: routes not checked")]
    checks = []
    listed = json.loads(output or "[]") + json.loads(
        _command("ip", "-j", "-6", "route", "show", "table", "all") or "[]"
    )
    for route in listed:
        # The kernel adds ff00::/8 to the local table of every interface by itself.
        if route.get("dst") in ("224.0.0.0/4", "ff00::/8") and route.get("table") != "local":
            table = route.get("table", "main")
            detail = f"{route['dst']} dev {route.get('dev', '?')} (table {table})"
            checks.append(Check("routes", route["dst"], Status.INFO, detail))
    candidate = next(
        (i.name for i in interfaces if i.up and i.multicast and not i.loopback), "IFACE"
    )
    for family, probe in _ROUTE_PROBES.items():
        version = "-4" if family == socket.AF_INET else "-6"
        prefix = "224.0.0.0/4" if family == socket.AF_INET else "ff00::/8"
        found = _command("ip", "-j", version, "route", "get", probe)
        routes = json.loads(found) if found else []
        device = routes[0].get("dev", "?") if routes else None
        capable = {i.name for i in interfaces if i.multicast}
        if device in capable:
            checks.append(
                Check("routes", prefix, Status.OK, f"groups like {probe} leave by {device}")
            )
        elif device is not None:
            checks.append(
                Check(
                    "routes",
                    prefix,
                    Status.WARN,
                    f"groups like {probe} are routed to {device}, which has no MULTICAST flag",
                    f"ip {version} route add {prefix} dev {candidate}",
                )
            )
        else:
            checks.append(
                Check(
                    "routes",
                    prefix,
                    Status.FAIL,
                    f"no route for {probe}: sending without an interface fails "
                    "(network unreachable)",
                    f"ip {version} route add {prefix} dev {candidate}",
                )
            )
    return checks


def _firewall(traffic: Traffic) -> list[Check]:
    checks = []
    ruleset = _command("nft", "-j", "list", "ruleset")
    if ruleset is not None:
        try:
            chains = nft_rules(ruleset)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            checks.append(
                Check("firewall", "nft", Status.INFO, f"cannot read nft's rule set: {error}")
            )
        else:
            checks.extend(firewall_checks(chains, "nft", traffic))
    for tool, version in (("iptables", 4), ("ip6tables", 6)):
        rules = _command(tool, "-S")
        if rules is not None:
            checks.extend(firewall_checks(iptables_rules(rules, version), tool, traffic))
    if not checks:
        checks.append(
            Check(
                "firewall",
                "rules",
                Status.INFO,
                "no readable nft or iptables rules (not installed, or no permission)",
            )
        )
    return checks


def self_test(
    interface: Interface,
    family: socket.AddressFamily,
    timeout: float = 0.5,
    *,
    group: Group | None = None,
    port: int = 0,
) -> Check:
    """Send one frame with TTL 0 to ``group`` (default: the all-hosts group of ``family``)
    and ``port`` (0: a free one) on ``interface``, and wait for it to come back."""
    group = group if group is not None else parse_group(SELF_TEST_GROUPS[family])
    family = group.family
    subject = f"{interface.name} {group.address}" + (f" port {port}" if port else "")
    sender_id = secrets.randbits(64)
    try:
        with (
            Receiver(port, family=family, blocking=False) as receiver,
            Sender(family, ttl=0, interface=interface, loopback=True) as sender,
        ):
            receiver.join(group.address, interface)
            sender.send(encode_frame(sender_id, 0), group.address, receiver.port)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                for datagram in receiver.receive_batch(timeout=left):
                    frame = parse_frame(datagram.payload)
                    if isinstance(frame, Frame) and frame.sender == sender_id:
                        return Check("self-test", subject, Status.OK, "a TTL-0 datagram came back")
    except (MulticastError, OSError) as error:
        fix = (
            f"wait until 'ip addr show dev {interface.name}' lists no tentative address"
            if getattr(error, "errno", None) == errno.EADDRNOTAVAIL
            else f"ip link set dev {interface.name} up multicast on"
        )
        return Check(
            "self-test", subject, Status.FAIL, f"cannot send or receive multicast: {error}", fix
        )
    return Check(
        "self-test",
        subject,
        Status.FAIL,
        f"a TTL-0 datagram did not come back within {timeout} s: a firewall or policy "
        "drops local multicast",
        f"look for rules dropping {group.address} in the output of 'nft list ruleset' or "
        "'iptables -S' (the firewall checks above name those found)",
    )


def run_doctor(
    *,
    run_self_test: bool = True,
    timeout: float = 0.5,
    listen: float = 0.0,
    group: Group | None = None,
    port: int | None = None,
) -> DoctorReport:
    """Check this host (this network namespace) and return every finding.

    ``listen`` seconds (with ``CAP_NET_RAW``) are spent listening for IGMP/MLD queriers. With
    ``group`` (and ``port``), the firewall is checked for datagrams to that group and port,
    and the self-test sends to them instead of the all-hosts groups.
    """
    from multicast.tools.doctor_queriers import querier_checks  # noqa: PLC0415 (it imports this)

    proc = Path("/proc")
    interfaces = list_interfaces()
    checks = check_interfaces(interfaces)
    checks += _route_checks(interfaces)
    checks += check_reverse_path(_sysctl_per_interface(proc / "sys/net/ipv4/conf", "rp_filter"))
    forced_igmp = _sysctl_per_interface(proc / "sys/net/ipv4/conf", "force_igmp_version")
    checks += check_forced_versions(
        forced_igmp, _sysctl_per_interface(proc / "sys/net/ipv6/conf", "force_mld_version")
    )
    memberships, versions = parse_igmp(_read(proc / "thread-self/net/igmp") or "")
    memberships += parse_igmp6(_read(proc / "thread-self/net/igmp6") or "")
    checks += check_queriers(versions, forced_igmp)
    checks += querier_checks(interfaces, versions, forced_igmp, listen)
    limit = _read(proc / "sys/net/ipv4/igmp_max_memberships")
    if limit is not None:
        checks.append(
            Check("igmp", "igmp_max_memberships", Status.INFO, f"{limit.strip()} groups per socket")
        )
    checks += _firewall(Traffic.to_group(group, port) if group else Traffic.multicast())
    checks.append(ttl_zero_rule())
    if run_self_test:
        checks += _self_tests(interfaces, timeout, group, port or 0)
    return DoctorReport(tuple(checks), tuple(memberships))


def _self_tests(
    interfaces: Sequence[Interface], timeout: float, group: Group | None, port: int
) -> list[Check]:
    families = [group.family] if group else [socket.AF_INET, socket.AF_INET6]
    checks = []
    for interface in interfaces:
        if not (interface.up and interface.multicast):
            continue
        for family in families:
            if not (interface.ipv4 if family == socket.AF_INET else interface.ipv6):
                continue
            tested = group or parse_group(SELF_TEST_GROUPS[family])
            if interface.loopback and (untestable := lo_untestable(tested)) is not None:
                checks.append(untestable)
                continue
            if interface.loopback and isinstance(tested.address, IPv6Address):
                listed = _command("ip", "-j", "-6", "route", "show", "table", "local")
                missing = check_interface_local_route(json.loads(listed or "[]"), tested.address)
                if missing is not None:
                    checks.append(missing)
                    continue
            checks.append(self_test(interface, family, timeout, group=group, port=port))
    return checks


class DoctorTool:
    """``multicast doctor``."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--no-self-test", action="store_true", help="skip the TTL-0 self-test per interface"
        )
        parser.add_argument(
            "--timeout",
            type=seconds_type,
            default=0.5,
            metavar="SECONDS",
            help="seconds each self-test waits for its datagram (default %(default)s)",
        )
        parser.add_argument(
            "--listen",
            type=timeout_type,
            default=0.0,
            metavar="SECONDS",
            help="listen this long for IGMP/MLD queriers on each interface (needs CAP_NET_RAW; "
            "default 0: the kernel's state only)",
        )
        parser.add_argument(
            "--group",
            type=group_type,
            default=None,
            metavar="GROUP",
            help="check the firewall for, and self-test with, your own group (default: "
            "multicast as a whole; the all-hosts groups for the self-test)",
        )
        parser.add_argument(
            "--port",
            type=port_type,
            default=None,
            metavar="PORT",
            help="your own UDP port, with --group (default: any port; a free one for the "
            "self-test, whose frame this host's receivers of that port also get)",
        )
        add_json(parser)

    def run(self, args: argparse.Namespace) -> int:
        if args.port is not None and args.group is None:
            raise UsageError("--port needs --group: the port of your own group")
        report = run_doctor(
            run_self_test=not args.no_self_test,
            timeout=args.timeout,
            listen=args.listen,
            group=args.group,
            port=args.port,
        )
        emit(report, args)
        return 1 if report.problems else 0


TOOL = DoctorTool()

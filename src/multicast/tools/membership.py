"""``multicast membership``: the IGMP and MLD messages on this host's links, and its own view.

On the wire (needs ``CAP_NET_RAW``): every report, leave and query seen on the interfaces,
incoming and outgoing, with who sent it, for which groups and sources, which version; at the
end, who is a member of what as reported, and the queriers heard. This is how to check that
a join left by the intended interface, and that a querier asks on the link.

The kernel's view (``--kernel``, and where no raw socket is allowed): the groups this host
has joined per interface, with their users and source filters, and the IGMP version in force,
from ``/proc/net/igmp``, ``/proc/net/mcfilter``, ``/proc/net/igmp6`` and
``/proc/net/mcfilter6`` (read through ``/proc/thread-self/net``: the calling thread's network
namespace).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from multicast.cliargs import group_type, interface_type
from multicast.core import (
    Closing,
    Group,
    Interface,
    InterfaceSpec,
    IPAddress,
    list_interfaces,
    parse_group,
    resolve_interface,
)
from multicast.exceptions import OptionError
from multicast.group_management.link import LinkListener, RawSocketPermissionError, listen
from multicast.group_management.observe import HeardQuerier, LinkObserver, Member, Observation
from multicast.tools.common import check_limits
from multicast.tools.doctor import GroupMembership, parse_igmp, parse_igmp6
from multicast.tools.options import add_duration, add_json, add_limit, emit

__all__ = [
    "TOOL",
    "KernelGroup",
    "KernelReport",
    "MembershipTool",
    "SourceFilter",
    "Watch",
    "WireReport",
    "hear_queriers",
    "kernel_view",
    "parse_mcfilter",
    "parse_mcfilter6",
    "run_membership",
]

_NET = Path("/proc/thread-self/net")


# ---------------------------------------------------------------------------------------------
# The wire.


@dataclass(frozen=True, slots=True)
class WireReport:
    """What ``multicast membership`` saw on the wire."""

    interfaces: tuple[str, ...]
    seconds: float
    interrupted: bool
    observations: tuple[Observation, ...]
    not_kept: int
    members: tuple[Member, ...]
    queriers: tuple[HeardQuerier, ...]
    problems: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return {
            "view": "wire",
            "interfaces": list(self.interfaces),
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "messages": [o.as_dict() for o in self.observations],
            "not_kept": self.not_kept,
            "members": [m.as_dict() for m in self.members],
            "queriers": [q.as_dict() for q in self.queriers],
            "problems": dict(self.problems),
        }

    def __str__(self) -> str:
        lines = [
            f"{len(self.observations) + self.not_kept} IGMP/MLD messages on "
            f"{', '.join(self.interfaces)} in {self.seconds:.1f} s",
            f"members as reported ({len(self.members)}):",
            *(f"  {member}" for member in self.members),
            f"queriers heard ({len(self.queriers)}):",
            *(f"  {querier}" for querier in self.queriers),
        ]
        if not self.queriers:
            lines.append(
                "  none (one asks every 125 s by default; on a link without one, snooping "
                "switches forget groups after about 260 s)"
            )
        lines += [f"ignored {count}: {problem}" for problem, count in self.problems.items()]
        return "\n".join(lines)


class Watch(Closing):
    """Listening to IGMP and MLD on ``interfaces`` (default: every multicast interface that
    is up, loopback aside), about ``groups`` only if given (general queries always); a
    context manager. Needs ``CAP_NET_RAW``."""

    def __init__(
        self,
        interfaces: Sequence[InterfaceSpec] | None = None,
        groups: Sequence[str | IPAddress | Group] | None = None,
    ) -> None:
        chosen = (
            [resolve_interface(spec) for spec in interfaces]
            if interfaces
            else [i for i in list_interfaces() if i.up and i.multicast and not i.loopback]
        )
        if not chosen:
            raise OptionError(
                "no multicast interface is up here besides loopback: name one with --iface"
            )
        self.interfaces = tuple(chosen)
        self.listeners: list[LinkListener] = []
        try:
            for interface in chosen:
                self.listeners.append(LinkListener(interface))
        except BaseException:
            self.close()
            raise
        watched = None if groups is None else [parse_group(group).address for group in groups]
        self.observer = LinkObserver(time.monotonic(), watched)

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()

    def run(
        self,
        *,
        duration: float | None = None,
        count: int | None = None,
        on_observation: Callable[[Observation], None] | None = None,
    ) -> WireReport:
        """Watch until ``duration`` seconds pass, ``count`` messages are seen, or Ctrl-C."""
        start = self.observer.start
        deadline = start + check_limits(duration, count)
        seen = 0
        interrupted = False
        try:
            while (count is None or seen < count) and (now := time.monotonic()) < deadline:
                for heard in listen(self.listeners, min(deadline - now, 1.0)):
                    observation = self.observer.account(heard)
                    if observation is None:
                        continue
                    seen += 1
                    if on_observation is not None:
                        on_observation(observation)
                    if count is not None and seen >= count:
                        break
        except KeyboardInterrupt:
            interrupted = True
        return self.report(time.monotonic() - start, interrupted=interrupted)

    def report(self, seconds: float, *, interrupted: bool = False) -> WireReport:
        observer = self.observer
        return WireReport(
            tuple(i.name for i in self.interfaces),
            seconds,
            interrupted,
            tuple(observer.observations),
            observer.not_kept,
            tuple(observer.members.values()),
            tuple(observer.queriers.values()),
            dict(observer.problems),
        )


def run_membership(
    interfaces: Sequence[InterfaceSpec] | None = None,
    *,
    groups: Sequence[str | IPAddress | Group] | None = None,
    duration: float | None = None,
    count: int | None = None,
    on_observation: Callable[[Observation], None] | None = None,
) -> WireReport:
    """Watch IGMP and MLD on ``interfaces`` (about ``groups`` only, if given) until
    ``duration``, ``count`` or Ctrl-C."""
    with Watch(interfaces, groups) as watch:
        return watch.run(duration=duration, count=count, on_observation=on_observation)


def hear_queriers(interfaces: Sequence[Interface], seconds: float) -> list[HeardQuerier]:
    """The queriers heard on ``interfaces`` within ``seconds`` (needs ``CAP_NET_RAW``)."""
    with Watch(interfaces) as watch:
        return list(watch.run(duration=seconds).queriers)


# ---------------------------------------------------------------------------------------------
# The kernel's view.


@dataclass(frozen=True, slots=True)
class SourceFilter:
    """A source of a group's filter on an interface: how many sockets include or exclude it."""

    index: int
    group: str
    source: str
    include: int
    exclude: int

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "include": self.include, "exclude": self.exclude}


def _mcfilter_lines(text: str, address: Callable[[str], str]) -> list[SourceFilter]:
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 6 or not fields[0].isdigit():
            continue
        index, _, group, source, include, exclude = fields
        try:
            found.append(
                SourceFilter(
                    int(index), address(group), address(source), int(include), int(exclude)
                )
            )
        except ValueError:
            continue  # not a line of the table
    return found


def _ipv4_hex(text: str) -> str:
    if not re.fullmatch(r"0x[0-9a-fA-F]{8}", text):
        raise ValueError(text)
    return str(IPv4Address(int(text, 16)))


def _ipv6_hex(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{32}", text):
        raise ValueError(text)
    return str(IPv6Address(bytes.fromhex(text)))


def parse_mcfilter(text: str) -> list[SourceFilter]:
    """``/proc/net/mcfilter``: ``Idx Device MCA SRC INC EXC``, addresses as 0x-hex in network
    order (the device name is cut to 6 characters: the index identifies the interface)."""
    return _mcfilter_lines(text, _ipv4_hex)


def parse_mcfilter6(text: str) -> list[SourceFilter]:
    """``/proc/net/mcfilter6``: the same for IPv6, addresses as 32 hex digits."""
    return _mcfilter_lines(text, _ipv6_hex)


@dataclass(frozen=True, slots=True)
class KernelGroup:
    """A group this host joined on an interface, with the sources its filter names."""

    interface: str
    group: str
    users: int
    sources: tuple[SourceFilter, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "interface": self.interface,
            "group": self.group,
            "users": self.users,
            "sources": [s.as_dict() for s in self.sources],
        }

    def __str__(self) -> str:
        sources = ", ".join(
            f"{s.source} (include {s.include}, exclude {s.exclude})" for s in self.sources
        )
        return f"{self.interface:10} {self.group}  users {self.users}" + (
            f"  sources: {sources}" if sources else ""
        )


@dataclass(frozen=True, slots=True)
class KernelReport:
    """This host's memberships as its kernel lists them, and the IGMP version per interface."""

    igmp_versions: dict[str, str]
    groups: tuple[KernelGroup, ...]
    note: str | None = None  # why the wire could not be watched, if that is why this is shown

    def as_dict(self) -> dict[str, object]:
        return {
            "view": "kernel",
            "note": self.note,
            "igmp_versions": dict(self.igmp_versions),
            "groups": [g.as_dict() for g in self.groups],
        }

    def __str__(self) -> str:
        versions = ", ".join(f"{name} {version}" for name, version in self.igmp_versions.items())
        lines = [self.note] if self.note else []
        lines.append(f"IGMP version in force: {versions or 'none'}")
        lines.append(f"groups joined ({len(self.groups)}):")
        lines.extend(f"  {group}" for group in self.groups)
        return "\n".join(lines)


def _with_sources(
    memberships: Sequence[GroupMembership], filters: Sequence[SourceFilter], names: dict[int, str]
) -> list[KernelGroup]:
    groups = []
    for membership in memberships:
        sources = tuple(
            f
            for f in filters
            if f.group == membership.group and names.get(f.index) == membership.interface
        )
        groups.append(
            KernelGroup(membership.interface, membership.group, membership.users, sources)
        )
    return groups


def kernel_view(
    note: str | None = None,
    interfaces: Sequence[InterfaceSpec] | None = None,
    groups: Sequence[str | IPAddress | Group] | None = None,
) -> KernelReport:
    """Read the memberships of the calling thread's namespace from ``/proc`` (on
    ``interfaces`` and of ``groups`` only, if given)."""

    def read(name: str) -> str:
        try:
            return (_NET / name).read_text()
        except OSError:
            return ""

    names = {i.index: i.name for i in list_interfaces()}
    ipv4, versions = parse_igmp(read("igmp"))
    joined = _with_sources(ipv4, parse_mcfilter(read("mcfilter")), names)
    joined += _with_sources(parse_igmp6(read("igmp6")), parse_mcfilter6(read("mcfilter6")), names)
    if interfaces:
        wanted = {resolve_interface(spec).name for spec in interfaces}
        joined = [group for group in joined if group.interface in wanted]
        versions = {name: version for name, version in versions.items() if name in wanted}
    if groups:
        chosen = {str(parse_group(group).address) for group in groups}
        joined = [group for group in joined if group.group in chosen]
    return KernelReport(versions, tuple(joined), note)


# ---------------------------------------------------------------------------------------------
# The command line.


class MembershipTool:
    """``multicast membership [--iface IFACE ...] [--kernel]``."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--iface",
            type=interface_type,
            action="append",
            default=[],
            metavar="IFACE",
            help="watch this interface (repeatable; default: every multicast interface)",
        )
        parser.add_argument(
            "--group",
            dest="groups",
            type=group_type,
            action="append",
            default=[],
            metavar="GROUP",
            help="show only messages about this group, and general queries (repeatable)",
        )
        view = parser.add_mutually_exclusive_group()
        view.add_argument(
            "--kernel",
            action="store_true",
            help="show this host's own memberships from /proc instead of the wire",
        )
        view.add_argument(
            "--wire",
            action="store_true",
            help="watch the wire or fail (default: fall back to --kernel without CAP_NET_RAW)",
        )
        add_duration(parser, "seconds to watch (default: until --count or Ctrl-C)")
        add_limit(parser, "stop after N messages, 0 for no limit (default 0)")
        add_json(parser)

    def run(self, args: argparse.Namespace) -> int:
        if args.kernel:
            emit(kernel_view(interfaces=args.iface, groups=args.groups), args)
            return 0
        try:
            watch = Watch(args.iface, args.groups or None)
        except RawSocketPermissionError as error:
            if args.wire:
                raise
            note = f"multicast membership: {error}; showing this host's own view (/proc)"
            if sys.stderr is not None:  # closed: the report still says it
                print(note, file=sys.stderr)
            emit(kernel_view(note, args.iface, args.groups), args)
            return 0
        with watch:
            show = None if args.json else _print_now
            report = watch.run(
                duration=args.duration, count=args.count or None, on_observation=show
            )
        emit(report, args)
        return 0


def _print_now(observation: Observation) -> None:
    print(observation, flush=True)


TOOL = MembershipTool()

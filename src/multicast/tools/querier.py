"""``multicast querier``: an IGMP and MLD querier for a link that lacks one.

A snooping switch (or a Linux bridge with ``mcast_snooping 1``) forwards a group only to the
ports whose hosts reported it, and forgets a port when no report refreshes it within the
membership interval (260 s by default). Hosts report again only when asked, by a querier:
on a link without a multicast router nobody asks, and a stream stops after about four
minutes. This tool asks.

:class:`Querier` is the thin I/O loop around the pure
:class:`~multicast.group_management.querier.QuerierState` (one per protocol): it sends what
the state says is due and feeds it what a
:class:`~multicast.group_management.link.LinkListener` hears. It needs ``CAP_NET_RAW``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from multicast.cliargs import interface_type
from multicast.core import Closing, InterfaceSpec, resolve_interface
from multicast.exceptions import InterfaceError, OptionError
from multicast.group_management.link import LinkListener, QuerySender
from multicast.group_management.messages import Protocol, Query
from multicast.group_management.observe import HeardQuerier
from multicast.group_management.querier import QuerierSettings, QuerierState, Role, RoleChange
from multicast.tools.common import check_limits
from multicast.tools.options import (
    add_duration,
    add_json,
    emit,
    live,
    positive_type,
    seconds_type,
)

__all__ = [
    "TOOL",
    "ProtocolReport",
    "Querier",
    "QuerierReport",
    "QuerierTool",
    "run_querier",
]

_QUERY_KINDS = ("general", "group-specific", "group-and-source-specific")
OnChange = Callable[[Protocol, RoleChange], None]


@dataclass(frozen=True, slots=True)
class ProtocolReport:
    """How the querier of one protocol fared."""

    settings: QuerierSettings
    address: str
    role: Role
    querier: str
    sent: dict[str, int]
    changes: tuple[RoleChange, ...]
    others: tuple[HeardQuerier, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "protocol": self.settings.protocol.value,
            "version": self.settings.sends,
            "address": self.address,
            "role": self.role.value,
            "querier": self.querier,
            "settings": self.settings.as_dict(),
            "sent": dict(self.sent),
            "changes": [change.as_dict() for change in self.changes],
            "others": [other.as_dict() for other in self.others],
        }

    def __str__(self) -> str:
        protocol = self.settings.protocol.name_of(self.settings.sends)
        sent = ", ".join(f"{count} {kind}" for kind, count in self.sent.items() if count)
        lines = [
            f"{protocol} from {self.address}: {self.role.value} (querier {self.querier}); "
            f"queries sent: {sent or 'none'}"
        ]
        lines += [f"  {c.at:8.3f} s  {c.role.value}: {c.reason}" for c in self.changes]
        lines += [f"  heard {other}" for other in self.others]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class QuerierReport:
    """The run of ``multicast querier`` on one interface."""

    interface: str
    seconds: float
    interrupted: bool
    protocols: tuple[ProtocolReport, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "interface": self.interface,
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "protocols": [protocol.as_dict() for protocol in self.protocols],
        }

    def __str__(self) -> str:
        ended = "interrupted" if self.interrupted else "done"
        head = f"querier on {self.interface}, {self.seconds:.1f} s ({ended})"
        return "\n".join([head, *(str(protocol) for protocol in self.protocols)])


@dataclass(slots=True)
class _Side:
    """One protocol's state, socket and counts."""

    state: QuerierState
    sender: QuerySender
    start: float
    sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_QUERY_KINDS, 0))
    others: dict[str, HeardQuerier] = field(default_factory=dict)
    reported: int = 1  # role changes handed to the caller so far (the start is not)

    def heard_query(self, interface: str, source: str, query: Query, at: float) -> None:
        other = self.others.get(source)
        if other is None:
            other = self.others[source] = HeardQuerier(interface, query.protocol.value, source)
        other.heard(query, at - self.start)

    def report(self) -> ProtocolReport:
        state = self.state
        changes = tuple(
            dataclasses.replace(c, at=round(c.at - self.start, 3)) for c in state.changes
        )
        return ProtocolReport(
            state.settings,
            str(state.address),
            state.role,
            str(state.querier),
            dict(self.sent),
            changes,
            tuple(self.others.values()),
        )


class Querier(Closing):
    """A querier on ``interface`` for each protocol in ``settings``; a context manager.

    Opening it opens the raw sockets, which raise
    :class:`~multicast.group_management.link.RawSocketPermissionError` without
    ``CAP_NET_RAW``; :meth:`run` queries until its limit.
    """

    def __init__(self, interface: InterfaceSpec, settings: Sequence[QuerierSettings]) -> None:
        protocols = [s.protocol for s in settings]
        if not protocols or len(set(protocols)) != len(protocols):
            raise OptionError("give the settings of IGMP, MLD or both, each once")
        self.interface = resolve_interface(interface)
        self._sides: dict[Protocol, _Side] = {}
        self.listener = LinkListener(self.interface)
        try:
            now = time.monotonic()
            for each in settings:
                sender = QuerySender(each.protocol, self.interface)
                state = QuerierState(each, sender.address, now)
                self._sides[each.protocol] = _Side(state, sender, now)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for side in self._sides.values():
            side.sender.close()
        self.listener.close()

    def _send_due(self, now: float) -> None:
        for side in self._sides.values():
            for outgoing in side.state.due(now):
                side.sender.send(outgoing)
                side.sent[outgoing.query.kind] += 1

    def _hear(self, timeout: float) -> None:
        for heard in self.listener.receive(timeout):
            packet = heard.packet
            if heard.outgoing or packet is None:
                continue
            side = self._sides.get(packet.protocol)
            if side is None:
                continue
            if isinstance(packet.message, Query) and packet.source != side.state.address:
                side.heard_query(heard.interface, str(packet.source), packet.message, heard.at)
            side.state.heard(packet.source, packet.message, heard.at)

    def _new_changes(self, on_change: OnChange | None) -> None:
        for protocol, side in self._sides.items():
            for change in side.state.changes[side.reported :]:
                if on_change is not None:
                    on_change(protocol, dataclasses.replace(change, at=change.at - side.start))
            side.reported = len(side.state.changes)

    def run(
        self,
        *,
        duration: float | None = None,
        on_change: OnChange | None = None,
    ) -> QuerierReport:
        """Query until ``duration`` seconds pass (or Ctrl-C); ``on_change`` hears each change
        of role after the start (its ``at`` in seconds since the start)."""
        start = time.monotonic()
        deadline = start + check_limits(duration, None)
        interrupted = False
        try:
            while (now := time.monotonic()) < deadline:
                self._send_due(now)
                self._new_changes(on_change)
                wake = min(side.state.next_wakeup() for side in self._sides.values())
                self._hear(min(wake, deadline, now + 1.0) - now)
                self._new_changes(on_change)
        except KeyboardInterrupt:
            interrupted = True
        return QuerierReport(
            self.interface.name,
            time.monotonic() - start,
            interrupted,
            tuple(side.report() for side in self._sides.values()),
        )


def run_querier(
    interface: InterfaceSpec,
    settings: Sequence[QuerierSettings] = (
        QuerierSettings(Protocol.IGMP),
        QuerierSettings(Protocol.MLD),
    ),
    *,
    duration: float | None = None,
    on_change: OnChange | None = None,
) -> QuerierReport:
    """Be the querier of ``interface`` (IGMPv3 and MLDv2 with the RFC defaults unless
    ``settings`` says otherwise) until ``duration`` seconds pass or Ctrl-C."""
    with Querier(interface, settings) as querier:
        return querier.run(duration=duration, on_change=on_change)


def _version_type(protocol: Protocol) -> Callable[[str], int | None]:
    choices = protocol.versions[-2:]

    def convert(text: str) -> int | None:
        if text == "off":
            return None
        if text.isdigit() and int(text) in choices:
            return int(text)
        allowed = ", ".join(str(v) for v in choices)
        raise argparse.ArgumentTypeError(
            f"{protocol.value} version {text!r}: choose {allowed} or off"
        )

    convert.__name__ = f"{protocol.value.lower()}_version"
    return convert


def _print_change(protocol: Protocol, change: RoleChange) -> None:
    print(f"{change.at:8.3f} s  {protocol.value} {change.role.value}: {change.reason}", flush=True)


class QuerierTool:
    """``multicast querier --iface IFACE``."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--iface",
            type=interface_type,
            required=True,
            metavar="IFACE",
            help="the link to query: interface name, index or address",
        )
        parser.add_argument(
            "--igmp",
            type=_version_type(Protocol.IGMP),
            default=3,
            metavar="VERSION",
            help="IGMP version of the queries: 2, 3 or off (default 3)",
        )
        parser.add_argument(
            "--mld",
            type=_version_type(Protocol.MLD),
            default=2,
            metavar="VERSION",
            help="MLD version of the queries: 1, 2 or off (default 2)",
        )
        timers = parser.add_argument_group("timers (RFC 3376 section 8, RFC 3810 section 9)")
        timers.add_argument(
            "--query-interval",
            type=seconds_type,
            default=125.0,
            metavar="SECONDS",
            help="between general queries, whole seconds (default %(default)g)",
        )
        timers.add_argument(
            "--response-interval",
            type=seconds_type,
            default=10.0,
            metavar="SECONDS",
            help="maximum response time of general queries (default %(default)g)",
        )
        timers.add_argument(
            "--robustness",
            type=positive_type,
            default=2,
            metavar="N",
            help="robustness variable, 1-7: tolerated losses + 1 (default %(default)s)",
        )
        timers.add_argument(
            "--last-member-interval",
            type=seconds_type,
            default=1.0,
            metavar="SECONDS",
            help="between the specific queries after a leave, and their response time "
            "(default %(default)g)",
        )
        timers.add_argument(
            "--last-member-count",
            type=positive_type,
            default=None,
            metavar="N",
            help="specific queries after a leave (default: the robustness)",
        )
        timers.add_argument(
            "--startup-interval",
            type=seconds_type,
            default=None,
            metavar="SECONDS",
            help="between the first general queries (default: a quarter of the query interval)",
        )
        timers.add_argument(
            "--startup-count",
            type=positive_type,
            default=None,
            metavar="N",
            help="general queries sent at the startup interval (default: the robustness)",
        )
        add_duration(parser, "seconds to run (default: until Ctrl-C)")
        add_json(parser)

    def run(self, args: argparse.Namespace) -> int:
        versions = {Protocol.IGMP: args.igmp, Protocol.MLD: args.mld}
        settings = [
            QuerierSettings(
                protocol,
                version,
                query_interval=args.query_interval,
                response_interval=args.response_interval,
                robustness=args.robustness,
                last_member_interval=args.last_member_interval,
                last_member_count=args.last_member_count,
                startup_interval=args.startup_interval,
                startup_count=args.startup_count,
            )
            for protocol, version in versions.items()
            if version is not None
        ]
        if not settings:
            raise OptionError("multicast querier: --igmp off and --mld off leave nothing to do")
        show = live() and not args.json
        try:
            opened = Querier(args.iface, settings)
        except InterfaceError as error:
            raise OptionError(
                f"multicast querier: {error}; --igmp off or --mld off leaves it out"
            ) from None
        with opened as querier:
            if show:
                print(f"querier on {querier.interface.name} (Ctrl-C ends)", flush=True)
            report = querier.run(
                duration=args.duration,
                on_change=_print_change if show else None,
            )
        emit(report, args)
        return 0


TOOL = QuerierTool()

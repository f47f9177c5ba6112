"""What the IGMP and MLD messages heard on links say: who is a member of what, who queries.

Pure accounting over :class:`~multicast.group_management.link.Heard` packets (no I/O):
:class:`LinkObserver` turns each into an :class:`Observation` (one line for people, a dict
for JSON) and keeps two tables up to date, the memberships each host reported (per
interface, sender and group, with its filter mode and sources) and the queriers heard
(address, version, response time, interval).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from multicast.core import IPAddress
from multicast.group_management.link import Heard
from multicast.group_management.messages import (
    Leave,
    Message,
    Query,
    RecordReport,
    RecordType,
    Report,
)
from multicast.group_management.packets import Packet

__all__ = [
    "HeardQuerier",
    "LinkObserver",
    "Member",
    "Observation",
    "ObservedRecord",
    "describe",
]

MAX_KEPT = 10_000  # observations a LinkObserver keeps for its report; later ones are counted


@dataclass(frozen=True, slots=True)
class ObservedRecord:
    """One group a message is about: what it says of it (``action``) and the sources."""

    group: str
    action: str  # report, leave, query, or an IGMPv3/MLDv2 record type (IS_EXCLUDE, BLOCK...)
    sources: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"group": self.group, "action": self.action, "sources": list(self.sources)}

    def __str__(self) -> str:
        sources = "{" + ", ".join(self.sources) + "}"
        if self.action in ("report", "leave", "query"):
            return self.group + (f" {sources}" if self.sources else "")
        return f"{self.action} {self.group} {sources}"


@dataclass(frozen=True, slots=True)
class Observation:
    """One IGMP or MLD message seen on a link (``at``: seconds since the watch began)."""

    at: float
    interface: str
    outgoing: bool
    sender: str
    destination: str
    protocol: str
    version: int
    kind: str  # query, report, leave
    records: tuple[ObservedRecord, ...]
    ttl: int
    router_alert: bool
    query: dict[str, object] | None = None  # a query's timers: response, interval, robustness

    def as_dict(self) -> dict[str, object]:
        return {
            "at": round(self.at, 3),
            "interface": self.interface,
            "direction": "out" if self.outgoing else "in",
            "sender": self.sender,
            "destination": self.destination,
            "protocol": self.protocol,
            "version": self.version,
            "kind": self.kind,
            "records": [record.as_dict() for record in self.records],
            "ttl": self.ttl,
            "router_alert": self.router_alert,
            "query": self.query,
        }

    def __str__(self) -> str:
        direction = "out" if self.outgoing else "in "
        what = f"{self.protocol}v{self.version} {self.kind}"
        if self.query is not None:
            what = (
                f"{self.protocol}v{self.version} {self.query['type']} query ({_timers(self.query)})"
            )
        detail = "; ".join(str(record) for record in self.records)
        flags = (
            ""
            if self.router_alert and self.ttl == 1
            else f" [ttl {self.ttl}" + ("]" if self.router_alert else ", no router alert]")
        )
        return (
            f"{self.at:8.3f} {self.interface} {direction} {self.sender} -> {self.destination} "
            f"{what}{': ' + detail if detail else ''}{flags}"
        )


def _timers(query: dict[str, object]) -> str:
    """``response 10 s, interval 125 s, QRV 2`` (and ``S`` when the flag is set)."""
    text = f"response {query['response']:g} s"
    if "interval" in query:
        text += f", interval {query['interval']:g} s, QRV {query['robustness']}"
        text += ", S" if query["suppress"] else ""
    return text


def _records(message: Message) -> tuple[ObservedRecord, ...]:
    if isinstance(message, RecordReport):
        return tuple(
            ObservedRecord(str(r.group), r.kind.name, tuple(str(s) for s in r.sources))
            for r in message.records
        )
    if isinstance(message, Query):
        if message.general:
            return ()
        return (
            ObservedRecord(str(message.group), "query", tuple(str(s) for s in message.sources)),
        )
    action = "report" if isinstance(message, Report) else "leave"
    return (ObservedRecord(str(message.group), action),)


def describe(packet: Packet, at: float, interface: str, outgoing: bool) -> Observation:
    """The observation of ``packet``, heard on ``interface`` at ``at``."""
    message = packet.message
    query = None
    if isinstance(message, Query):
        kind = "query"
        query = {
            "type": message.kind,
            "response": message.max_response,
        }
        if message.version == message.protocol.newest:
            query.update(
                interval=message.interval, robustness=message.robustness, suppress=message.suppress
            )
    else:
        kind = "leave" if isinstance(message, Leave) else "report"
    return Observation(
        at=at,
        interface=interface,
        outgoing=outgoing,
        sender=str(packet.source),
        destination=str(packet.destination),
        protocol=packet.protocol.value,
        version=message.version,
        kind=kind,
        records=_records(message),
        ttl=packet.ttl,
        router_alert=packet.router_alert,
        query=query,
    )


@dataclass(slots=True)
class Member:
    """What one host last reported about one group on one interface."""

    interface: str
    protocol: str
    sender: str
    group: str
    version: int
    mode: str  # include or exclude (an any-source join is exclude with no source)
    sources: tuple[str, ...]
    last_seen: float

    def as_dict(self) -> dict[str, object]:
        return {
            "interface": self.interface,
            "protocol": self.protocol,
            "sender": self.sender,
            "group": self.group,
            "version": self.version,
            "mode": self.mode,
            "sources": list(self.sources),
            "last_seen": round(self.last_seen, 3),
        }

    def __str__(self) -> str:
        if self.mode == "exclude" and not self.sources:
            what = "any source"
        else:
            what = f"{self.mode} {{{', '.join(self.sources)}}}"
        return (
            f"{self.interface} {self.sender} {self.protocol}v{self.version} {self.group} "
            f"{what} (last seen {self.last_seen:.3f})"
        )


@dataclass(slots=True)
class HeardQuerier:
    """A querier heard on an interface: its latest timers, and how often it asked."""

    interface: str
    protocol: str
    address: str
    version: int = 0
    queries: int = 0
    max_response: float = 0.0
    interval: float | None = None  # its QQI (IGMPv3, MLDv2), else the gap between its queries
    robustness: int | None = None
    last_heard: float = 0.0
    _last_general: float | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "interface": self.interface,
            "protocol": self.protocol,
            "address": self.address,
            "version": self.version,
            "queries": self.queries,
            "max_response": self.max_response,
            "interval": self.interval,
            "robustness": self.robustness,
            "last_heard": round(self.last_heard, 3),
        }

    def __str__(self) -> str:
        interval = f", interval {self.interval:g} s" if self.interval else ""
        return (
            f"{self.interface} {self.protocol}v{self.version} querier {self.address}: "
            f"{self.queries} queries, response {self.max_response:g} s{interval}"
        )

    def heard(self, query: Query, at: float) -> None:
        self.version, self.queries = query.version, self.queries + 1
        self.max_response, self.last_heard = query.max_response, at
        if query.version == query.protocol.newest:
            self.interval, self.robustness = query.interval or None, query.robustness or None
        if query.general:
            if self._last_general is not None and query.version != query.protocol.newest:
                self.interval = round(at - self._last_general, 3)
            self._last_general = at


class LinkObserver:
    """Accounting over heard packets: observations, memberships, queriers, problems.

    With ``groups``, only messages about those groups count (general queries always do),
    and only their memberships are tabled.
    """

    def __init__(self, start: float, groups: Iterable[IPAddress] | None = None) -> None:
        self.start = start
        self.groups = None if groups is None else frozenset(str(group) for group in groups)
        self.observations: list[Observation] = []
        self.not_kept = 0
        self.members: dict[tuple[str, str, str, str], Member] = {}
        self.queriers: dict[tuple[str, str, str], HeardQuerier] = {}
        self.problems: Counter[str] = Counter()

    def account(self, heard: Heard) -> Observation | None:
        """Take in one heard packet; its observation, or None if it was not IGMP/MLD or not
        about the groups watched."""
        if heard.packet is None:
            self.problems[heard.problem or "unknown"] += 1
            return None
        at = heard.at - self.start
        observation = describe(heard.packet, at, heard.interface, heard.outgoing)
        if not self._wanted(observation):
            return None
        if len(self.observations) < MAX_KEPT:
            self.observations.append(observation)
        else:
            self.not_kept += 1
        message = heard.packet.message
        if isinstance(message, Query):
            if not heard.outgoing:
                self._querier(heard.interface, heard.packet, message, at)
        else:
            self._membership(observation, message)
        return observation

    def _wanted(self, observation: Observation) -> bool:
        if self.groups is None or (observation.kind == "query" and not observation.records):
            return True
        return any(record.group in self.groups for record in observation.records)

    def _querier(self, interface: str, packet: Packet, query: Query, at: float) -> None:
        key = (interface, packet.protocol.value, str(packet.source))
        known = self.queriers.get(key)
        if known is None:
            known = self.queriers[key] = HeardQuerier(*key)
        known.heard(query, at)

    def _membership(self, observation: Observation, message: Message) -> None:
        base = (observation.interface, observation.protocol, observation.sender)
        for record in observation.records:
            if self.groups is not None and record.group not in self.groups:
                continue
            key = (*base, record.group)
            if isinstance(message, Leave):
                self.members.pop(key, None)
                continue
            known = self.members.get(key)
            mode, sources = _after(
                known.mode if known else None, set(known.sources) if known else set(), record
            )
            if mode is None:
                self.members.pop(key, None)
            else:
                self.members[key] = Member(
                    *base,
                    record.group,
                    observation.version,
                    mode,
                    tuple(sorted(sources)),
                    observation.at,
                )


def _after(
    mode: str | None, sources: set[str], record: ObservedRecord
) -> tuple[str | None, set[str]]:
    """A host's filter mode and sources for a group after ``record`` (mode None: not a member).

    The rules of RFC 3376 section 6.4, seen from the one host that sent the record.
    """
    listed = set(record.sources)
    if record.action == "report":
        return "exclude", set()
    kind = RecordType[record.action]
    if kind in (RecordType.IS_EXCLUDE, RecordType.TO_EXCLUDE):
        return "exclude", listed
    if kind in (RecordType.IS_INCLUDE, RecordType.TO_INCLUDE):
        return ("include", listed) if listed else (None, set())
    if kind is RecordType.ALLOW:
        if mode == "exclude":
            return "exclude", sources - listed
        return "include", sources | listed
    # BLOCK
    if mode == "exclude":
        return "exclude", sources | listed
    remaining = sources - listed
    return ("include", remaining) if remaining else (None, set())

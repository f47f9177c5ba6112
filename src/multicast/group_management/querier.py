"""A querier's timers and election as a pure state machine: time is an argument, no I/O.

RFC 3376 (IGMPv3, section 6 and 8) and RFC 3810 (MLDv2, section 7 and 9) give the rules, and
IGMPv2/MLDv1 queriers follow the same ones:

* A querier starts by sending [startup count] general queries [startup interval] apart,
  then one every [query interval].
* Election: hearing a query from a lower address (IPv6: a lower link-local address) makes it
  a non-querier, which sends nothing; every such query restarts the other-querier-present
  timer ([robustness] x [query interval] + [response interval] / 2, from the QRV and QQIC
  of the querier heard where it sends them). When that timer runs out, it is the querier
  again and sends a general query at once.
* A host that leaves (IGMPv2 leave, MLDv1 done, an IGMPv3/MLDv2 record changing to include
  mode) gets [last member count] group-specific queries [last member interval] apart, with
  that interval as their response time; a record blocking sources gets
  group-and-source-specific queries the same way. A snooping switch that hears nobody
  answer them forgets the group on that port.

Only queries are sent: this querier keeps no membership table, since its job is to keep
hosts reporting to the snooping switches of a link that has no multicast router.

>>> from ipaddress import IPv4Address as A
>>> settings = QuerierSettings(Protocol.IGMP, query_interval=20, response_interval=2)
>>> state = QuerierState(settings, A("198.18.1.2"), now=0.0)
>>> [o.query.kind for o in state.due(0.0)], state.next_wakeup()
(['general'], 5.0)
>>> state.heard(A("198.18.1.1"), Query(Protocol.IGMP, 3, A(0), 2.0, robustness=2, interval=20), 1.0)
>>> state.role, state.querier, state.next_wakeup()  # 1 + 2 x 20 + 2 / 2
(<Role.NON_QUERIER: 'non-querier'>, IPv4Address('198.18.1.1'), 42.0)
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from ipaddress import IPv4Address

from multicast.core import IPAddress
from multicast.exceptions import OptionError
from multicast.group_management.messages import (
    Leave,
    Message,
    Protocol,
    Query,
    RecordReport,
    RecordType,
    max_response_limit,
)

__all__ = ["Outgoing", "QuerierSettings", "QuerierState", "Role", "RoleChange"]

_MAX_QUERY_INTERVAL = 31744  # seconds: the largest an 8-bit QQIC carries
_MAX_COUNT = 255  # a bound on startup and last-member query counts


def _check_seconds(name: str, value: float, low: float, high: float) -> None:
    if not (math.isfinite(value) and low <= value <= high):
        raise OptionError(f"{name} {value} s is outside {low:g}-{high:g} s")


def _check_count(name: str, value: int, high: int = _MAX_COUNT) -> None:
    if not 1 <= value <= high:
        raise OptionError(f"{name} {value} is outside 1-{high}")


@dataclass(frozen=True, slots=True)
class QuerierSettings:
    """The querier's variables (RFC 3376 section 8, RFC 3810 section 9); None: the default.

    ``version`` is what the querier sends: IGMP 2 or 3, MLD 1 or 2 (default the newest).
    ``last_member_count`` and ``startup_count`` default to ``robustness``,
    ``startup_interval`` to a quarter of ``query_interval``. Every value is checked when
    the settings are made: :class:`~multicast.exceptions.OptionError` names the one at fault.
    """

    protocol: Protocol
    version: int | None = None
    query_interval: float = 125.0
    response_interval: float = 10.0
    robustness: int = 2
    last_member_interval: float = 1.0
    last_member_count: int | None = None
    startup_interval: float | None = None
    startup_count: int | None = None

    def __post_init__(self) -> None:
        sendable = self.protocol.versions[-2:]
        if self.sends not in sendable:
            choices = " or ".join(str(v) for v in sendable)
            raise OptionError(
                f"{self.protocol.value} version {self.sends} cannot be sent; choose {choices}"
            )
        _check_seconds("query interval", self.query_interval, 1, _MAX_QUERY_INTERVAL)
        if self.query_interval != int(self.query_interval):
            raise OptionError(
                f"query interval {self.query_interval} s is not whole seconds (QQIC counts seconds)"
            )
        low, high = max_response_limit(self.protocol, self.sends)
        name = self.protocol.name_of(self.sends)
        _check_seconds(f"response interval ({name})", self.response_interval, low, high)
        if self.response_interval >= self.query_interval:
            raise OptionError(
                f"response interval {self.response_interval} s must be below the query "
                f"interval {self.query_interval} s"
            )
        _check_seconds(f"last member interval ({name})", self.last_member_interval, low, high)
        _check_count("robustness", self.robustness, 7)  # QRV is 3 bits
        _check_count("last member count", self.last_member_queries)
        _check_count("startup count", self.startup_queries)
        _check_seconds("startup interval", self.startup_spacing, 0.001, self.query_interval)

    @property
    def sends(self) -> int:
        return self.protocol.newest if self.version is None else self.version

    @property
    def last_member_queries(self) -> int:
        return self.robustness if self.last_member_count is None else self.last_member_count

    @property
    def startup_queries(self) -> int:
        return self.robustness if self.startup_count is None else self.startup_count

    @property
    def startup_spacing(self) -> float:
        return self.query_interval / 4 if self.startup_interval is None else self.startup_interval

    @property
    def membership_interval(self) -> float:
        """How long hosts' reports keep a group alive: robustness x interval + response."""
        return self.robustness * self.query_interval + self.response_interval

    def as_dict(self) -> dict[str, object]:
        return {
            "protocol": self.protocol.value,
            "version": self.sends,
            "query_interval": self.query_interval,
            "response_interval": self.response_interval,
            "robustness": self.robustness,
            "last_member_interval": self.last_member_interval,
            "last_member_count": self.last_member_queries,
            "startup_interval": self.startup_spacing,
            "startup_count": self.startup_queries,
        }


class Role(enum.Enum):
    QUERIER = "querier"
    NON_QUERIER = "non-querier"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A query to send now, and where to: the all-hosts group or the group it asks about."""

    query: Query
    destination: IPAddress


@dataclass(frozen=True, slots=True)
class RoleChange:
    """The querier took or gave up the role at ``at``; ``querier`` is the querier after it."""

    at: float
    role: Role
    querier: IPAddress
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "at": self.at,
            "role": self.role.value,
            "querier": str(self.querier),
            "reason": self.reason,
        }


@dataclass(slots=True)
class _Pending:
    """Specific queries still to send for one group (and sources)."""

    due: float
    left: int


def _may_be_elected(source: IPAddress) -> bool:
    """Whether a query from ``source`` takes part in the election.

    A snooping switch that asks on behalf of a missing querier sends from 0.0.0.0 (RFC 4541)
    and stands aside in the election; MLD queries must come from a link-local address
    (RFC 3810 section 5.1.14) and are ignored otherwise.
    """
    if isinstance(source, IPv4Address):
        return not source.is_unspecified
    return source.is_link_local


class QuerierState:
    """One querier on one link for one protocol, started at ``now``. Feed it what is heard;
    ask it what is due.

    ``address`` is the source address of its queries (IPv6: the link-local one), compared
    with other queriers' in the election. :attr:`changes` lists every change of role.
    """

    def __init__(self, settings: QuerierSettings, address: IPAddress, now: float) -> None:
        self.settings = settings
        self.address = address
        self.role = Role.QUERIER
        self.querier = address
        self.changes = [RoleChange(now, Role.QUERIER, address, "started")]
        self._next_general = now
        self._startup_left = settings.startup_queries
        self._other_expires = math.inf
        self._pending: dict[tuple[IPAddress, tuple[IPAddress, ...]], _Pending] = {}

    def heard(self, source: IPAddress, message: Message, now: float) -> None:
        """Account for ``message``, sent by ``source`` on the link, heard at ``now``."""
        if message.protocol is not self.settings.protocol or source == self.address:
            return
        if isinstance(message, Query):
            if _may_be_elected(source):
                self._heard_query(source, message, now)
        elif self.role is Role.QUERIER:
            for group, sources in self._asked_about(message):
                self._pending.setdefault(
                    (group, sources), _Pending(now, self.settings.last_member_queries)
                )

    def _heard_query(self, source: IPAddress, query: Query, now: float) -> None:
        if int(source) > int(self.address):
            return  # it stands down when it hears ours
        robustness, interval = self.settings.robustness, self.settings.query_interval
        if query.version == query.protocol.newest:  # adopt the querier's QRV and QQIC (if set)
            robustness = query.robustness or robustness
            interval = query.interval or interval
        self._other_expires = now + robustness * interval + self.settings.response_interval / 2
        if self.role is Role.QUERIER or int(source) < int(self.querier):
            name = query.protocol.name_of(query.version)
            self.changes.append(
                RoleChange(
                    now, Role.NON_QUERIER, source, f"{name} querier {source} has a lower address"
                )
            )
        self.role, self.querier = Role.NON_QUERIER, min(source, self.querier, key=int)
        self._pending.clear()

    def _asked_about(self, message: Message) -> list[tuple[IPAddress, tuple[IPAddress, ...]]]:
        """The (group, sources) that a leave in ``message`` calls for specific queries about."""
        newest = self.settings.sends == self.settings.protocol.newest
        if isinstance(message, Leave):
            return [(message.group, ())]
        if not (isinstance(message, RecordReport) and newest):
            return []  # an older querier's hosts send leaves, not records
        asked: list[tuple[IPAddress, tuple[IPAddress, ...]]] = []
        for record in message.records:
            if record.kind is RecordType.TO_INCLUDE:
                asked.append((record.group, ()))
            elif record.kind is RecordType.BLOCK and record.sources:
                asked.append((record.group, tuple(sorted(set(record.sources)))))
        return asked

    def due(self, now: float) -> list[Outgoing]:
        """The queries to send at ``now`` (taking the role back first if the other went quiet)."""
        if self.role is Role.NON_QUERIER and now >= self._other_expires:
            self.changes.append(
                RoleChange(now, Role.QUERIER, self.address, f"querier {self.querier} went quiet")
            )
            self.role, self.querier = Role.QUERIER, self.address
            self._next_general, self._other_expires = now, math.inf
        if self.role is not Role.QUERIER:
            return []
        settings = self.settings
        protocol, version = settings.protocol, settings.sends
        newest = version == protocol.newest
        out = []
        if now >= self._next_general:
            general = Query(
                protocol,
                version,
                protocol.unspecified,
                settings.response_interval,
                robustness=settings.robustness if newest else 0,
                interval=settings.query_interval if newest else 0.0,
            )
            out.append(Outgoing(general, protocol.all_hosts))
            self._startup_left = max(0, self._startup_left - 1)
            step = settings.startup_spacing if self._startup_left else settings.query_interval
            self._next_general = now + step
        for (group, sources), pending in list(self._pending.items()):
            if now < pending.due:
                continue
            specific = Query(
                protocol,
                version,
                group,
                settings.last_member_interval,
                sources,
                robustness=settings.robustness if newest else 0,
                interval=settings.query_interval if newest else 0.0,
            )
            out.append(Outgoing(specific, group))
            pending.left -= 1
            pending.due = now + settings.last_member_interval
            if not pending.left:
                del self._pending[group, sources]
        return out

    def next_wakeup(self) -> float:
        """When :meth:`due` next has something to do."""
        if self.role is Role.NON_QUERIER:
            return self._other_expires
        return min([self._next_general, *(p.due for p in self._pending.values())])

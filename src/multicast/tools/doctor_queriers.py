"""The doctor's querier checks: per interface, was a querier heard, and the snooping hazard.

On a link without an IGMP/MLD querier, hosts report their groups only when they join: a
snooping switch forgets them after its membership interval (260 s by default) and their
streams stop. ``multicast doctor`` says so per interface and protocol, from a short listen
(``--listen SECONDS``, with ``CAP_NET_RAW``) or else from the kernel's state: the IGMP
version it runs (below v3 only after hearing such a querier) and the MLD queries each
interface received since it came up (``/proc/net/dev_snmp6/NAME``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from multicast.core import Interface
from multicast.group_management.link import RawSocketPermissionError
from multicast.group_management.observe import HeardQuerier
from multicast.tools.doctor import Check, Status

__all__ = ["KernelState", "check_querier_presence", "parse_mld_queries", "querier_checks"]

_DEV_SNMP6 = Path("/proc/thread-self/net/dev_snmp6")  # the calling thread's namespace
_USUAL_INTERVAL = 125.0  # seconds between general queries (RFC 3376, RFC 3810 default)
_FIX = (
    "run 'multicast querier --iface {name}' on one host of the link, or turn on the querier "
    "of its switch or router (a Linux bridge: ip link set BRIDGE type bridge mcast_querier 1)"
)
_HAZARD = (
    "without a querier, a snooping switch forgets this host's groups after its membership "
    "interval (260 s by default) and their streams stop"
)


def parse_mld_queries(text: str) -> int | None:
    """MLD queries an interface received, from its ``/proc/net/dev_snmp6/NAME``."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "Icmp6InGroupMembQueries" and fields[1].isdigit():
            return int(fields[1])
    return None


def _from_listen(
    name: str, protocol: str, heard: Sequence[HeardQuerier], listened: float
) -> list[Check]:
    subject = f"{name} {protocol}"
    found = [q for q in heard if q.interface == name and q.protocol == protocol]
    if found:
        return [Check("querier", subject, Status.OK, f"heard {querier}") for querier in found]
    detail = f"no {protocol} querier heard in {listened:g} s"
    if listened < _USUAL_INTERVAL:
        detail += (
            f" (queriers ask every {_USUAL_INTERVAL:g} s by default: listen longer to be sure)"
        )
    return [Check("querier", subject, Status.WARN, f"{detail}: {_HAZARD}", _FIX.format(name=name))]


@dataclass(frozen=True, slots=True)
class KernelState:
    """What the kernel says about queriers: the IGMP version it runs per interface
    (``/proc/net/igmp``), the versions forced (``force_igmp_version``, which set it instead),
    and the MLD queries each interface received (``/proc/net/dev_snmp6``)."""

    igmp_versions: dict[str, str]
    forced_igmp: dict[str, int]
    mld_queries: dict[str, int]


def _from_kernel(name: str, protocol: str, kernel: KernelState) -> list[Check]:
    subject = f"{name} {protocol}"
    if protocol == "IGMP":
        version = kernel.igmp_versions.get(name, "V3")
        forced = kernel.forced_igmp.get(name)
        if forced:
            detail = (
                f"IGMP is forced to v{forced} on {name}, so the kernel's state does "
                "not tell whether a querier is present: 'multicast doctor --listen 130' listens"
            )
            return [Check("querier", subject, Status.INFO, detail)]
        if version in ("V1", "V2"):
            detail = f"an IGMP{version.lower()} querier is present (the kernel runs {version})"
            return [Check("querier", subject, Status.OK, detail)]
        detail = (
            f"the kernel runs IGMP{version.lower()}, which does not tell whether a querier is "
            "present: 'multicast doctor --listen 130' listens for one"
        )
        return [Check("querier", subject, Status.INFO, detail)]
    count = kernel.mld_queries.get(name)
    if count is None:
        return []
    if count:
        return [
            Check("querier", subject, Status.OK, f"{count} MLD queries received since it came up")
        ]
    detail = f"no MLD query received since {name} came up: {_HAZARD}"
    return [Check("querier", subject, Status.WARN, detail, _FIX.format(name=name))]


def check_querier_presence(
    interfaces: Iterable[Interface],
    kernel: KernelState,
    heard: Sequence[HeardQuerier] | None,
    listened: float,
) -> list[Check]:
    """Per multicast interface and protocol: a querier heard (``heard``, from a listen of
    ``listened`` seconds; None: no listen, the ``kernel``'s state instead), or the hazard."""
    checks = []
    for interface in interfaces:
        if not (interface.up and interface.multicast) or interface.loopback:
            continue
        for protocol, present in (("IGMP", interface.ipv4), ("MLD", interface.ipv6)):
            if not present:
                continue
            if heard is not None:
                checks += _from_listen(interface.name, protocol, heard, listened)
            else:
                checks += _from_kernel(interface.name, protocol, kernel)
    return checks


def querier_checks(
    interfaces: Sequence[Interface],
    igmp_versions: dict[str, str],
    forced_igmp: dict[str, int],
    listen: float,
) -> list[Check]:
    """Listen ``listen`` seconds (0: not at all) and check; without ``CAP_NET_RAW``, say so
    and check from the kernel's state."""
    from multicast.tools.membership import hear_queriers  # noqa: PLC0415 (it imports doctor)

    mld_queries = {}
    for interface in interfaces:
        try:
            count = parse_mld_queries((_DEV_SNMP6 / interface.name).read_text())
        except OSError:
            continue
        if count is not None:
            mld_queries[interface.name] = count
    checks = []
    heard = None
    candidates = [i for i in interfaces if i.up and i.multicast and not i.loopback]
    if listen > 0 and candidates:
        try:
            heard = hear_queriers(candidates, listen)
        except RawSocketPermissionError as error:
            checks.append(
                Check("querier", "listen", Status.INFO, f"{error}; the kernel's state follows")
            )
    kernel = KernelState(igmp_versions, forced_igmp, mld_queries)
    return checks + check_querier_presence(interfaces, kernel, heard, listen)

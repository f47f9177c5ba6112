"""Which firewall rules drop multicast (or one group and port), by comparing address ranges.

Pure: it reads the rule set that ``nft -j list ruleset`` prints (JSON) or that
``iptables -S`` / ``ip6tables -S`` print, turns each rule into its selectors (destination
address ranges, destination ports, packet type, layer-4 protocol, anything else) and its
verdict, and walks each chain in order with the traffic in question: every IPv4 and IPv6
multicast address (224.0.0.0/4, ff00::/8), or one group and port. A rule that drops part
of what is still unaccepted at that point is a finding, with the part it drops; a chain
hooked where datagrams arrive whose policy drops what no rule accepted is one too.

A rule whose other selectors (a source, an input interface, a connection state...) cannot be
judged here may match: it is reported when its destination selectors overlap the traffic.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv6Address,
    ip_address,
    ip_network,
    summarize_address_range,
)
from typing import Any

from multicast.core import Group
from multicast.tools.checks import Check, Status

__all__ = [
    "Chain",
    "Finding",
    "Rule",
    "Traffic",
    "findings",
    "firewall_checks",
    "iptables_rules",
    "nft_rules",
]

Intervals = tuple[tuple[int, int], ...]
"""Closed integer intervals, sorted and disjoint: addresses or ports."""

_ADDRESS_SPACE = {4: (0, 2**32 - 1), 6: (0, 2**128 - 1)}
_PORT_SPACE: Intervals = ((0, 65535),)
_MULTICAST = {4: ip_network("224.0.0.0/4"), 6: ip_network("ff00::/8")}
# Hooks where datagrams that reach this host's sockets pass (output: the loopback copy).
_ARRIVAL_HOOKS = frozenset({"ingress", "prerouting", "input", "output"})
_POLICY_HOOKS = frozenset({"ingress", "prerouting", "input"})


def _normalized(pieces: Iterable[tuple[int, int]]) -> Intervals:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(pieces):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return tuple(merged)


def _intersect(a: Intervals, b: Intervals) -> Intervals:
    return _normalized(
        (max(x[0], y[0]), min(x[1], y[1]))
        for x in a
        for y in b
        if max(x[0], y[0]) <= min(x[1], y[1])
    )


def _complement(a: Intervals, space: tuple[int, int]) -> Intervals:
    pieces, start = [], space[0]
    for low, high in a:
        if low > start:
            pieces.append((start, low - 1))
        start = high + 1
    if start <= space[1]:
        pieces.append((start, space[1]))
    return tuple(pieces)


def _subtract(a: Intervals, b: Intervals, space: tuple[int, int]) -> Intervals:
    return _intersect(a, _complement(b, space))


def _describe(version: int, ranges: Intervals) -> str:
    """Ranges as a network each where they are one (``239.0.0.0/8``), else ``low-high``."""
    kind = IPv4Address if version == 4 else IPv6Address
    texts = []
    for low, high in ranges:
        blocks = list(summarize_address_range(kind(low), kind(high)))
        if low == high:
            texts.append(str(kind(low)))
        else:
            texts.append(str(blocks[0]) if len(blocks) == 1 else f"{kind(low)}-{kind(high)}")
    return ", ".join(texts)


@dataclass(frozen=True, slots=True)
class Traffic:
    """The datagrams in question: destination ranges per IP version, and a port (None: any)."""

    addresses: Mapping[int, Intervals]
    port: int | None = None
    label: str = "multicast"

    @classmethod
    def multicast(cls) -> Traffic:
        """Every multicast datagram, IPv4 and IPv6."""
        ranges = {
            v: ((int(n.network_address), int(n.broadcast_address)),) for v, n in _MULTICAST.items()
        }
        return cls(ranges)

    def dropped(self, version: int, ranges: Intervals) -> str:
        """What dropping ``ranges`` of this traffic means, in words."""
        if self.label == "multicast":
            return f"drops multicast to {_describe(version, ranges)}"
        return f"drops datagrams to {self.label}"

    @classmethod
    def to_group(cls, group: Group, port: int | None) -> Traffic:
        """Datagrams to ``group`` (and ``port``, if given)."""
        value = int(group.address)
        label = f"{group.address}" + (f" port {port}" if port is not None else "")
        return cls({group.address.version: ((value, value),)}, port, label)


@dataclass(slots=True)
class Rule:
    """A rule as its selectors and verdict (``drop``, ``accept`` or None for anything else);
    the readers fill it one selector at a time."""

    where: str  # "inet filter input", for the report
    text: str = ""
    verdict: str | None = None
    versions: frozenset[int] = frozenset({4, 6})  # the IP versions it can apply to
    destinations: Mapping[int, Intervals] | None = None  # None: any destination
    ports: Intervals | None = None  # destination ports; None: any
    udp: bool = True  # False when it selects another layer-4 protocol
    membership_reports: bool = False  # selects IGMP or MLD (joins and queries)
    multicast_type: bool | None = None  # packet type selected: multicast (True), other (False)
    unknown: bool = False  # selects by something judged nowhere here


@dataclass(frozen=True, slots=True)
class Chain:
    """A chain: where it hooks (None: reached by a jump only), its policy, its rules."""

    where: str
    hook: str | None
    policy: str | None
    versions: frozenset[int] = frozenset({4, 6})  # the IP versions its rules see
    rules: list[Rule] = field(default_factory=list)


_MLD_TYPES = frozenset({"mld-listener-query", "mld-listener-report", "mld2-listener-report"})
_MLD_NUMBERS = frozenset({"130", "131", "143"})


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule or policy that drops (part of) the traffic in question."""

    tool: str
    text: str
    what: str
    policy: bool = False


def _selects(rule: Rule, traffic: Traffic, version: int, left: Intervals) -> tuple[Intervals, bool]:
    """What part of ``left`` (addresses of ``version``) ``rule`` can match, and whether it
    matches that part surely (no selector it was unsure about)."""
    if version not in rule.versions or not rule.udp or rule.multicast_type is False:
        return (), False
    sure = not rule.unknown
    part = left
    if rule.destinations is not None:
        part = _intersect(left, rule.destinations.get(version, ()))
    if rule.ports is not None:
        if traffic.port is None:
            sure = sure and rule.ports == _PORT_SPACE
        elif not _intersect(rule.ports, ((traffic.port, traffic.port),)):
            return (), False
    return part, sure


def _aims(rule: Rule, traffic: Traffic) -> bool:
    """Whether the rule selects the traffic by what it is sent to (not only by other things)."""
    return (
        rule.destinations is not None
        or rule.multicast_type is True
        or (rule.ports is not None and traffic.port is not None)
    )


def findings(chains: Iterable[Chain], traffic: Traffic, tool: str) -> list[Finding]:
    """Each rule and policy of ``chains`` that drops some of ``traffic``."""
    found: list[Finding] = []
    for chain in chains:
        if chain.hook is not None and chain.hook not in _ARRIVAL_HOOKS:
            continue
        left = {v: r for v, r in traffic.addresses.items() if v in chain.versions}
        for rule in chain.rules:
            if rule.verdict is None:
                continue
            if rule.membership_reports and rule.verdict == "drop":
                found.append(
                    Finding(
                        tool,
                        f"{rule.where}: {rule.text}",
                        "drops IGMP or MLD: queries go unanswered, so routers and switches "
                        "stop forwarding groups to this host after a few minutes",
                    )
                )
            for version, space in list(left.items()):
                part, sure = _selects(rule, traffic, version, space)
                if not part or not _aims(rule, traffic):
                    continue
                if rule.verdict == "drop":
                    found.append(
                        Finding(
                            tool,
                            f"{rule.where}: {rule.text}",
                            traffic.dropped(version, part)
                            + ("" if sure else " (when its other conditions hold)"),
                        )
                    )
                if sure or rule.verdict == "accept":
                    left[version] = _subtract(space, part, _ADDRESS_SPACE[version])
        if chain.policy == "drop" and chain.hook in _POLICY_HOOKS:
            for version, space in left.items():
                if space:
                    found.append(
                        Finding(
                            tool,
                            f"{chain.where}: policy drop",
                            f"{traffic.dropped(version, space)}: no rule accepts it",
                            policy=True,
                        )
                    )
    return found


def firewall_checks(chains: Sequence[Chain], tool: str, traffic: Traffic) -> list[Check]:
    """A check for each rule or policy of ``chains`` (read from ``tool``) that drops some of
    ``traffic``, or one that says none does."""
    checks = []
    for finding in findings(chains, traffic, tool):
        chain = finding.text.split(":")[0]
        if not finding.policy:
            fix = f"remove or narrow this {tool} rule, or accept {traffic.label} before it"
        elif tool == "nft":
            accept = (
                "meta pkttype multicast"
                if traffic.label == "multicast"
                else traffic_selector(traffic)
            )
            fix = f"nft insert rule {chain} {accept} accept"
        else:
            fix = f"{tool} -I {chain} -m pkttype --pkt-type multicast -j ACCEPT"
        checks.append(Check("firewall", tool, Status.WARN, f"{finding.text} {finding.what}", fix))
    if not checks:
        checks.append(
            Check("firewall", tool, Status.OK, f"no rule found that drops {traffic.label}")
        )
    return checks


def traffic_selector(traffic: Traffic) -> str:
    """The nft selector of the datagrams to one group (and port)."""
    ((version, ((low, _),)),) = traffic.addresses.items()
    address = IPv4Address(low) if version == 4 else IPv6Address(low)
    selector = f"{'ip' if version == 4 else 'ip6'} daddr {address}"
    return selector + (f" udp dport {traffic.port}" if traffic.port is not None else "")


# --- nft -j list ruleset ---------------------------------------------------------------------

_FAMILY_VERSIONS = {
    "ip": frozenset({4}),
    "ip6": frozenset({6}),
    "inet": frozenset({4, 6}),
    "netdev": frozenset({4, 6}),
}
_VERDICTS = {"drop": "drop", "reject": "drop", "accept": "accept"}


def _render(value: Any) -> str:
    if isinstance(value, dict):
        key, inner = next(iter(value.items()))
        if key == "prefix":
            return f"{inner['addr']}/{inner['len']}"
        if key == "range":
            return f"{_render(inner[0])}-{_render(inner[1])}"
        if key == "set":
            return "{ " + ", ".join(_render(item) for item in inner) + " }"
        if key == "payload":
            return f"{inner.get('protocol', '?')} {inner.get('field', '?')}"
        if key in ("meta", "ct"):
            return f"{key} {inner.get('key', '?')}"
        return str(key)
    return str(value)


def _values(right: Any, sets: Mapping[str, list[Any]]) -> Iterator[Any]:
    """The single values, prefixes and ranges a match compares with (named sets resolved)."""
    if isinstance(right, str) and right.startswith("@"):
        yield from sets.get(right[1:], [])
    elif isinstance(right, dict) and "set" in right:
        for item in right["set"]:
            yield from _values(item, sets)
    else:
        yield right


def _address_intervals(right: Any, sets: Mapping[str, list[Any]], version: int) -> Intervals:
    pieces = []
    for value in _values(right, sets):
        if isinstance(value, dict) and "prefix" in value:
            network = ip_network(
                f"{value['prefix']['addr']}/{value['prefix']['len']}", strict=False
            )
            pieces.append((int(network.network_address), int(network.broadcast_address)))
        elif isinstance(value, dict) and "range" in value:
            low, high = value["range"]
            pieces.append((int(ip_address(low)), int(ip_address(high))))
        elif isinstance(value, str):
            try:
                address = ip_address(value)
            except ValueError:
                continue
            pieces.append((int(address), int(address)))
    return _normalized(p for p in pieces if p[1] <= _ADDRESS_SPACE[version][1])


def _port_intervals(right: Any, sets: Mapping[str, list[Any]]) -> Intervals | None:
    pieces = []
    for value in _values(right, sets):
        if isinstance(value, int):
            pieces.append((value, value))
        elif isinstance(value, dict) and "range" in value:
            pieces.append((int(value["range"][0]), int(value["range"][1])))
        else:
            return None  # a named service or something else: cannot be judged
    return _normalized(pieces)


def _nft_match(rule: Rule, match: Mapping[str, Any], sets: Mapping[str, list[Any]]) -> str:
    """Note what one ``match`` expression selects in ``rule``; returns its text."""
    left, right, negated = match["left"], match["right"], match.get("op") == "!="
    payload = left.get("payload", {}) if isinstance(left, dict) else {}
    meta = left.get("meta", {}).get("key") if isinstance(left, dict) and "meta" in left else None
    protocol, name = payload.get("protocol"), payload.get("field")
    if name == "daddr" and protocol in ("ip", "ip6"):
        version = 4 if protocol == "ip" else 6
        rule.versions = rule.versions & {version}
        chosen = _address_intervals(right, sets, version)
        if negated:
            chosen = _complement(chosen, _ADDRESS_SPACE[version])
        rule.destinations = {version: chosen}
    elif name == "dport" and protocol in ("udp", "th"):
        found = _port_intervals(right, sets)
        if found is None:
            rule.unknown = True
        else:
            rule.ports = _complement(found, _PORT_SPACE[0]) if negated else found
    elif protocol == "icmpv6" and name == "type":
        rule.udp = False
        reports = {str(v) for v in _values(right, sets)} & (_MLD_TYPES | _MLD_NUMBERS)
        rule.membership_reports = bool(reports) and not negated
    elif name == "dport" or protocol in ("tcp", "icmp", "icmpv6", "sctp"):
        rule.udp = False
    elif meta == "pkttype":
        rule.multicast_type = (right == "multicast") != negated
    elif meta == "l4proto" or name in ("protocol", "nexthdr"):
        rule.udp = (right in {"udp", 17}) != negated
        rule.membership_reports = right in {"igmp", 2} and not negated
    elif meta == "nfproto" and str(right) in ("ipv4", "ipv6"):
        wanted = 4 if right == "ipv4" else 6
        rule.versions = rule.versions - {wanted} if negated else rule.versions & {wanted}
    else:
        rule.unknown = True
    return f"{_render(left)} {'!= ' if negated else ''}{_render(right)}"


def _nft_rule(where: str, family: str, exprs: list[Any], sets: Mapping[str, list[Any]]) -> Rule:
    rule = Rule(where, versions=_FAMILY_VERSIONS.get(family, frozenset()))
    words = []
    for expr in exprs:
        key, body = next(iter(expr.items()))
        if key == "match":
            words.append(_nft_match(rule, body, sets))
            continue
        words.append(key)
        if key in _VERDICTS:
            rule.verdict = _VERDICTS[key]
        elif key in ("jump", "goto", "return"):
            rule.verdict = None
    rule.text = " ".join(words)
    return rule


def nft_rules(text: str) -> list[Chain]:
    """The chains of ``nft -j list ruleset`` output, each with its rules in order."""
    items = json.loads(text).get("nftables", [])
    sets = {
        f"{s['family']} {s['table']} {s['name']}": s.get("elem", [])
        for item in items
        if (s := item.get("set"))
    }
    chains: dict[str, Chain] = {}
    for item in items:
        if chain := item.get("chain"):
            where = f"{chain['family']} {chain['table']} {chain['name']}"
            versions = _FAMILY_VERSIONS.get(chain["family"], frozenset())
            chains[where] = Chain(where, chain.get("hook"), chain.get("policy"), versions)
    for item in items:
        if (rule := item.get("rule")) and rule["family"] in _FAMILY_VERSIONS:
            where = f"{rule['family']} {rule['table']} {rule['chain']}"
            prefix = f"{rule['family']} {rule['table']} "
            named = {
                name[len(prefix) :]: elem for name, elem in sets.items() if name.startswith(prefix)
            }
            if where in chains:
                chains[where].rules.append(_nft_rule(where, rule["family"], rule["expr"], named))
    return [chain for chain in chains.values() if chain.versions]


# --- iptables -S / ip6tables -S --------------------------------------------------------------

_IPTABLES_HOOKS = {"INPUT": "input", "PREROUTING": "prerouting", "OUTPUT": "output"}
_IPTABLES_VERDICTS = {"DROP": "drop", "REJECT": "drop", "ACCEPT": "accept"}


def _iptables_rule(where: str, version: int, words: list[str]) -> Rule:
    rule = Rule(where, " ".join(words), versions=frozenset({version}))
    negated = False
    position = 2
    while position < len(words):
        word = words[position]
        value = words[position + 1] if position + 1 < len(words) else ""
        position += 2
        if word == "!":
            negated, position = True, position - 1
            continue
        if word in ("-d", "--destination"):
            network = ip_network(value, strict=False)
            chosen: Intervals = ((int(network.network_address), int(network.broadcast_address)),)
            if negated:
                chosen = _complement(chosen, _ADDRESS_SPACE[version])
            rule.destinations = {version: chosen}
        elif word in ("-p", "--protocol"):
            rule.udp = (value == "udp") != negated
            rule.membership_reports = value == "igmp" and not negated
        elif word == "--icmpv6-type":
            rule.membership_reports = value.split("/")[0] in _MLD_TYPES | _MLD_NUMBERS
        elif word in ("--dport", "--destination-port"):
            low, _, high = value.partition(":")
            found = _normalized([(int(low or 0), int(high or low or 65535))])
            rule.ports = _complement(found, _PORT_SPACE[0]) if negated else found
        elif word in ("--pkt-type", "--dst-type"):
            rule.multicast_type = (value.lower() == "multicast") != negated
        elif word in ("-j", "--jump"):
            rule.verdict = _IPTABLES_VERDICTS.get(value)
        elif word != "-m":  # -m names a match module; its own options follow
            rule.unknown = True
        negated = False
    return rule


def iptables_rules(text: str, version: int) -> list[Chain]:
    """The chains of ``iptables -S`` (``version`` 4) or ``ip6tables -S`` (6) output."""
    chains: dict[str, Chain] = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) < 2:
            continue
        name = words[1]
        if name not in chains:
            policy = words[2].lower() if words[0] == "-P" and len(words) > 2 else None
            hook = _IPTABLES_HOOKS.get(name, None if words[0] == "-N" else "other")
            chains[name] = Chain(name, hook, policy, frozenset({version}))
        if words[0] == "-A":
            chains[name].rules.append(_iptables_rule(name, version, words))
    return list(chains.values())

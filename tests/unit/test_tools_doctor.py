"""``multicast doctor``'s parsers and checks on captured kernel output."""

from __future__ import annotations

import json
import sys

import pytest

from multicast.core import Interface, parse_group
from multicast.tools.doctor import (
    Check,
    GroupMembership,
    Status,
    check_forced_versions,
    check_interface_local_route,
    check_interfaces,
    check_queriers,
    check_reverse_path,
    parse_igmp,
    parse_igmp6,
    ttl_zero_rule,
)
from multicast.tools.firewall import Traffic, firewall_checks, iptables_rules, nft_rules

little_endian = pytest.mark.skipif(sys.byteorder != "little", reason="sample from x86")


IGMP = """\
Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter
1\tlo        :     1      V3
\t\t\t\t010000E0     1 0:00000000\t\t0
3\teth0      :     2      V2
\t\t\t\t030201EF     2 0:00000000\t\t1
\t\t\t\t010000E0     1 0:00000000\t\t0
"""


IGMP6 = """\
1    lo              ff020000000000000000000000000001     1 0000000C 0
3    eth0            ff0200000000000000000001ffb43b03     1 00000004 0
3    eth0            ff3e0000000000000000000000008001     2 00000004 0
"""


IPTABLES = """\
-P INPUT DROP
-P FORWARD DROP
-P OUTPUT ACCEPT
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -d 224.0.0.0/4 -p udp -j DROP
"""


def nft(*items: dict[str, object]) -> str:
    """``nft -j list ruleset`` output holding ``items`` (captured from nft 1.0.6)."""
    return json.dumps({"nftables": [{"metainfo": {"json_schema_version": 1}}, *items]})


def chain(name: str, hook: str | None = "input", policy: str = "drop") -> dict[str, object]:
    found: dict[str, object] = {"family": "inet", "table": "filter", "name": name, "handle": 1}
    if hook is not None:
        found |= {"type": "filter", "hook": hook, "prio": 0, "policy": policy}
    return {"chain": found}


def rule(*expr: dict[str, object], chain: str = "input", family: str = "inet") -> dict[str, object]:
    return {"rule": {"family": family, "table": "filter", "chain": chain, "expr": list(expr)}}


def match(left: dict[str, object], right: object, op: str = "==") -> dict[str, object]:
    return {"match": {"op": op, "left": left, "right": right}}


def daddr(version: int = 4) -> dict[str, object]:
    return {"payload": {"protocol": "ip" if version == 4 else "ip6", "field": "daddr"}}


UDP_DPORT = {"payload": {"protocol": "udp", "field": "dport"}}
PKTTYPE = {"meta": {"key": "pkttype"}}
ESTABLISHED = match({"ct": {"key": "state"}}, "established", "in")
DROP: dict[str, object] = {"drop": None}
ACCEPT: dict[str, object] = {"accept": None}
NFT_OPEN = nft(chain("input"), rule(ESTABLISHED, ACCEPT), rule(match(PKTTYPE, "multicast"), ACCEPT))
DROP_239 = rule(match(daddr(), {"prefix": {"addr": "239.0.0.0", "len": 8}}), DROP)


def by_subject(checks: list[Check]) -> dict[str, Check]:
    return {check.subject: check for check in checks}


@little_endian
def test_parse_igmp() -> None:
    memberships, versions = parse_igmp(IGMP)
    assert memberships == [
        GroupMembership("lo", "224.0.0.1", 1),
        GroupMembership("eth0", "239.1.2.3", 2),
        GroupMembership("eth0", "224.0.0.1", 1),
    ]
    assert versions == {"lo": "V3", "eth0": "V2"}
    assert parse_igmp("") == ([], {})
    assert parse_igmp("header\ngarbage : here\n\t\tZZZZ 1\n") == ([], {})


def test_parse_igmp6() -> None:
    assert parse_igmp6(IGMP6) == [
        GroupMembership("lo", "ff02::1", 1),
        GroupMembership("eth0", "ff02::1:ffb4:3b03", 1),
        GroupMembership("eth0", "ff3e::8001", 2),
    ]
    assert parse_igmp6("1 lo nothex 1\n\n") == []


def test_interfaces_without_multicast_flag() -> None:
    checks = by_subject(
        check_interfaces(
            [
                Interface("lo", 1, up=True, loopback=True, multicast=False, mtu=65536),
                Interface("eth0", 2, up=True, loopback=False, multicast=False, mtu=1500),
                Interface("eth1", 3, up=False, loopback=False, multicast=False, mtu=1500),
            ]
        )
    )
    assert checks["lo"].status is Status.OK  # loopback works without the flag for IPv4
    assert checks["eth0"].fix == "ip link set dev eth0 multicast on"
    assert checks["eth1"].status is Status.OK  # down: nothing to say about it here


def test_reverse_path_takes_the_larger_of_all_and_the_interface() -> None:
    checks = by_subject(check_reverse_path({"all": 1, "default": 1, "lo": 0, "eth0": 2}))
    assert set(checks) == {"lo", "eth0"}
    assert checks["lo"].status is Status.WARN
    assert "net.ipv4.conf.lo.rp_filter=2" in (checks["lo"].fix or "")
    assert (checks["eth0"].status, checks["eth0"].detail) == (Status.OK, "loose")


def test_forced_versions_and_queriers() -> None:
    checks = check_forced_versions({"eth0": 2, "eth1": 0, "eth2": 3}, {"eth0": 1})
    problems = [(c.area, c.subject, c.fix) for c in checks if c.problem]
    assert problems == [
        ("igmp", "eth0", "sysctl -w net.ipv4.conf.eth0.force_igmp_version=0"),
        ("mld", "eth0", "sysctl -w net.ipv6.conf.eth0.force_mld_version=0"),
    ]
    queriers = by_subject(check_queriers({"eth0": "V2", "eth1": "V2", "lo": "V3"}, {"eth0": 2}))
    assert set(queriers) == {"eth1", "lo"}  # eth0's forced version is reported elsewhere
    assert queriers["eth1"].status is Status.WARN
    assert queriers["lo"].status is Status.OK


def test_firewall_rules_of_iptables() -> None:
    (found,) = firewall_checks(iptables_rules(IPTABLES, 4), "iptables", Traffic.multicast())
    assert found.status is Status.WARN
    assert found.detail == (
        "INPUT: -A INPUT -d 224.0.0.0/4 -p udp -j DROP drops multicast to 224.0.0.0/4"
    )
    narrow = IPTABLES.replace("-d 224.0.0.0/4", "-d 239.0.0.0/8")
    found, policy = firewall_checks(iptables_rules(narrow, 4), "iptables", Traffic.multicast())
    assert found.detail.endswith("drops multicast to 239.0.0.0/8")
    assert policy.detail == (
        "INPUT: policy drop drops multicast to 224.0.0.0-238.255.255.255: no rule accepts it"
    )
    assert policy.fix == "iptables -I INPUT -m pkttype --pkt-type multicast -j ACCEPT"


def nft_details(text: str, traffic: Traffic | None = None) -> list[str]:
    checks = firewall_checks(nft_rules(text), "nft", traffic or Traffic.multicast())
    return [check.detail for check in checks]


def test_firewall_rules_of_nft_compare_address_ranges() -> None:
    assert nft_details(NFT_OPEN) == ["no rule found that drops multicast"]
    ruleset = nft(chain("input", policy="accept"), DROP_239)
    assert nft_details(ruleset) == [
        "inet filter input: ip daddr 239.0.0.0/8 drop drops multicast to 239.0.0.0/8"
    ]
    group = Traffic.to_group(parse_group("239.1.2.3"), 5000)
    assert nft_details(ruleset, group) == [
        "inet filter input: ip daddr 239.0.0.0/8 drop drops datagrams to 239.1.2.3 port 5000"
    ]
    other = Traffic.to_group(parse_group("238.1.2.3"), None)
    assert nft_details(ruleset, other) == ["no rule found that drops 238.1.2.3"]
    ipv6 = Traffic.to_group(parse_group("ff0e::1"), 5000)
    assert nft_details(ruleset, ipv6) == ["no rule found that drops ff0e::1 port 5000"]


def test_nft_rules_in_order_ports_sets_and_negations() -> None:
    sets = {
        "set": {
            "family": "inet",
            "name": "blocked",
            "table": "filter",
            "elem": [{"prefix": {"addr": "10.0.0.0", "len": 8}}, "239.9.9.9"],
        }
    }
    by_port = rule(
        match(daddr(), {"range": ["224.0.0.1", "224.0.0.255"]}),
        match(UDP_DPORT, {"set": [5000, {"range": [6000, 6010]}]}),
        {"reject": {"type": "icmp", "expr": "port-unreachable"}},
    )
    ruleset = nft(
        sets,
        chain("input", policy="accept"),
        rule(match(daddr(6), {"prefix": {"addr": "ff00::", "len": 8}}, "!="), DROP),
        by_port,
        rule(match(daddr(), "@blocked"), DROP),
        rule(match(PKTTYPE, "multicast"), ACCEPT),
        DROP_239,  # too late: every multicast datagram was accepted before it
    )
    assert nft_details(ruleset) == [
        "inet filter input: ip daddr 224.0.0.1-224.0.0.255 udp dport { 5000, 6000-6010 } "
        "reject drops multicast to 224.0.0.1-224.0.0.255 (when its other conditions hold)",
        "inet filter input: ip daddr @blocked drop drops multicast to 239.9.9.9",
    ]
    assert nft_details(ruleset, Traffic.to_group(parse_group("224.0.0.9"), 6001)) == [
        "inet filter input: ip daddr 224.0.0.1-224.0.0.255 udp dport { 5000, 6000-6010 } "
        "reject drops datagrams to 224.0.0.9 port 6001"
    ]
    assert nft_details(ruleset, Traffic.to_group(parse_group("224.0.0.9"), 6011)) == [
        "no rule found that drops 224.0.0.9 port 6011"
    ]


def test_nft_policy_and_membership_reports() -> None:
    igmp = rule(match({"payload": {"protocol": "ip", "field": "protocol"}}, "igmp"), DROP)
    closed = nft(chain("input"), rule(ESTABLISHED, ACCEPT), igmp)
    checks = firewall_checks(nft_rules(closed), "nft", Traffic.multicast())
    assert [check.detail for check in checks] == [
        "inet filter input: ip protocol igmp drop drops IGMP or MLD: queries go unanswered, so "
        "routers and switches stop forwarding groups to this host after a few minutes",
        "inet filter input: policy drop drops multicast to 224.0.0.0/4: no rule accepts it",
        "inet filter input: policy drop drops multicast to ff00::/8: no rule accepts it",
    ]
    assert checks[1].fix == "nft insert rule inet filter input meta pkttype multicast accept"
    group = Traffic.to_group(parse_group("239.1.2.3"), 5000)
    (policy,) = firewall_checks(nft_rules(nft(chain("input"))), "nft", group)
    assert (
        policy.fix == "nft insert rule inet filter input ip daddr 239.1.2.3 udp dport 5000 accept"
    )
    # Chains hooked where datagrams do not arrive for this host are not read.
    forward = nft(
        chain("fwd", hook="forward"), rule(match(PKTTYPE, "multicast"), DROP, chain="fwd")
    )
    assert nft_details(forward) == ["no rule found that drops multicast"]


def test_interface_local_groups_on_lo_need_a_local_route() -> None:
    kernel_only = [{"type": "local", "dst": "::1", "dev": "lo", "protocol": "kernel"}]
    missing = check_interface_local_route(kernel_only)
    assert missing is not None and missing.status is Status.FAIL
    assert missing.fix == "ip -6 route add table local ff01::/16 dev lo"
    assert "firewall" not in missing.detail
    routed = [*kernel_only, {"dst": "ff01::/16", "dev": "lo", "metric": 1024}]
    assert check_interface_local_route(routed) is None
    assert check_interface_local_route([{"dst": "ff01::/16", "dev": "eth0"}]) is not None


def test_the_ttl_0_rule_is_explained() -> None:
    check = ttl_zero_rule()
    assert (check.area, check.status) == ("ttl", Status.INFO)
    assert "only when the host is a member of its group" in check.detail

"""The membership table: what is joined, what waits for its interface, the IPv6 arrival filter.

Plain data, no socket: interface indexes and names are made up, and the callable that looks
a name up is a dictionary.
"""

from __future__ import annotations

from ipaddress import ip_address

from multicast.core import Datagram, Membership, MembershipTable, parse_group

V6 = parse_group("ff0e::5:1")
V4 = parse_group("239.5.5.1")


def _arrival(group: str, interface: int) -> Datagram:
    return Datagram(b"x", ("2001:db8::9", 4446), group=group, interface=interface)


def test_an_ipv6_group_joined_on_one_interface_keeps_only_what_arrived_there() -> None:
    table = MembershipTable()
    table.add(Membership(V6, 2), "eth1")
    arrived = [_arrival("ff0e::5:1", 2), _arrival("ff0e::5:1", 3), _arrival("ff0e::5:2", 3)]
    assert table.keep(arrived) == [arrived[0], arrived[2]]  # another group is not filtered
    assert table.wrong_interface == 1
    assert not table.accepts(_arrival("ff0e::5:1", 3))
    assert table.wrong_interface == 2


def test_a_group_joined_where_the_kernel_chose_or_on_ipv4_is_not_filtered() -> None:
    table = MembershipTable()
    table.add(Membership(V6, 2), "eth1")
    table.add(Membership(V6, 0))
    table.add(Membership(V4, 2), "eth1")
    arrived = [_arrival("ff0e::5:1", 3), _arrival("239.5.5.1", 3)]
    assert table.keep(arrived) == arrived
    assert table.wrong_interface == 0


def test_leaving_the_last_interface_of_a_group_ends_its_filter() -> None:
    table = MembershipTable()
    table.add(Membership(V6, 2), "eth1")
    table.remove(Membership(V6, 2))
    assert table.joined == [] and table.name_of(Membership(V6, 2)) is None
    assert table.accepts(_arrival("ff0e::5:1", 3))


def test_memberships_of_a_deleted_or_renumbered_interface_are_displaced() -> None:
    table = MembershipTable()
    on_eth1, on_eth2, routed = Membership(V6, 2), Membership(V6, 3), Membership(V4, 0)
    table.add(on_eth1, "eth1")
    table.add(on_eth2, "eth2")
    table.add(routed)
    now = {"eth1": 2, "eth2": 7}  # eth2 was made again under a new index
    assert table.displaced([], now.get) == [on_eth2]
    assert table.displaced([2], now.get) == [on_eth1, on_eth2]
    assert table.routed_groups() == {V4}


def test_a_waiting_membership_is_due_again_on_its_interface_name_and_keeps_it() -> None:
    table = MembershipTable()
    joined = Membership(V6, 2, ip_address("2001:db8::1"))
    table.add(joined, "eth1")
    table.suspend([joined])
    assert (table.joined, table.waiting) == ([], [joined])
    assert table.accepts(_arrival("ff0e::5:1", 9))  # nothing joined: nothing to filter

    assert table.due({}.get) == []  # no eth1 yet: it keeps waiting
    ((waiting, fresh),) = table.due({"eth1": 5}.get)
    assert (waiting, fresh) == (joined, Membership(V6, 5, joined.source))
    table.restore(waiting, fresh)
    assert (table.joined, table.waiting) == ([fresh], [])
    assert table.name_of(fresh) == "eth1" and table.name_of(joined) is None
    assert not table.accepts(_arrival("ff0e::5:1", 2))  # the old index is no longer joined


def test_a_routed_membership_waits_and_comes_back_where_the_kernel_chooses() -> None:
    table = MembershipTable()
    routed = Membership(V4, 0)
    table.add(routed)
    table.add(Membership(V4, 2), "eth1")
    table.suspend_routed(V4)
    assert table.waiting == [routed] and table.joined == [Membership(V4, 2)]
    assert table.due({}.get) == [(routed, routed)]


def test_a_leave_finds_the_waiting_membership_by_interface_name() -> None:
    table = MembershipTable()
    named, routed = Membership(V6, 2), Membership(V4, 0)
    table.add(named, "eth1")
    table.add(routed)
    table.suspend([named, routed])
    assert table.waiting_as(Membership(V6, 6), "eth1") == named  # eth1 is back as index 6
    assert table.waiting_as(Membership(V6, 6), "eth2") is None
    assert table.waiting_as(Membership(V4, 0), None) == routed
    assert table.waiting_as(Membership(V4, 3), None) is None  # an unnamed interface: no match
    table.remove(named)
    assert table.waiting == [routed]

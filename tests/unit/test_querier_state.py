"""The querier's timers and election, driven by a clock given as an argument: no socket."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from multicast.exceptions import OptionError
from multicast.group_management.messages import (
    GroupRecord,
    Leave,
    Protocol,
    Query,
    RecordReport,
    RecordType,
    Report,
)
from multicast.group_management.querier import (
    Outgoing,
    QuerierSettings,
    QuerierState,
    Role,
)

A4 = IPv4Address
ME = A4("198.18.1.5")
LOWER, HIGHER = A4("198.18.1.2"), A4("198.18.1.9")
ANY4 = A4("0.0.0.0")
GROUP = A4("239.1.2.3")

FAST = QuerierSettings(Protocol.IGMP, query_interval=4, response_interval=1, robustness=2)


def general(version: int = 3, interval: float = 4.0, robustness: int = 2) -> Query:
    if version == 3:
        return Query(Protocol.IGMP, 3, ANY4, 1.0, robustness=robustness, interval=interval)
    return Query(Protocol.IGMP, version, ANY4, 1.0)


def sent_at(state: QuerierState, times: list[float]) -> list[tuple[float, str]]:
    """Ask the state at each time; (time, query kind) of what it sends."""
    return [(now, o.query.kind) for now in times for o in state.due(now)]


def test_startup_sends_robustness_queries_a_quarter_interval_apart_then_one_per_interval() -> None:
    state = QuerierState(FAST, ME, now=100.0)
    times = [100.0, 100.5, 101.0, 101.9, 102.0, 104.9, 105.0, 108.9]
    assert sent_at(state, times) == [(100.0, "general"), (101.0, "general"), (105.0, "general")]
    assert state.next_wakeup() == 109.0


def test_startup_count_and_interval_can_be_set() -> None:
    settings = QuerierSettings(
        Protocol.IGMP, query_interval=10, response_interval=1, startup_count=3, startup_interval=0.5
    )
    state = QuerierState(settings, ME, now=0.0)
    times = [0.0, 0.5, 1.0, 1.5, 10.9, 11.0]
    assert [t for t, _ in sent_at(state, times)] == [0.0, 0.5, 1.0, 11.0]


def test_general_queries_carry_the_settings() -> None:
    settings = QuerierSettings(
        Protocol.IGMP, query_interval=30, response_interval=2.5, robustness=3
    )
    (outgoing,) = QuerierState(settings, ME, now=0.0).due(0.0)
    assert outgoing == Outgoing(
        Query(Protocol.IGMP, 3, ANY4, 2.5, robustness=3, interval=30.0), A4("224.0.0.1")
    )
    old = QuerierSettings(Protocol.IGMP, 2, query_interval=30, response_interval=2.5)
    (outgoing,) = QuerierState(old, ME, now=0.0).due(0.0)
    assert outgoing.query == Query(Protocol.IGMP, 2, ANY4, 2.5)


def test_mld_general_queries_go_to_all_nodes() -> None:
    settings = QuerierSettings(Protocol.MLD, 1, query_interval=10, response_interval=1)
    (outgoing,) = QuerierState(settings, IPv6Address("fe80::5"), now=0.0).due(0.0)
    assert outgoing.destination == IPv6Address("ff02::1")
    assert outgoing.query == Query(Protocol.MLD, 1, IPv6Address("::"), 1.0)


def test_a_lower_querier_makes_it_stand_down_and_its_silence_brings_it_back() -> None:
    state = QuerierState(FAST, ME, now=0.0)
    state.due(0.0)
    state.heard(LOWER, general(), now=2.0)
    assert (state.role, state.querier) == (Role.NON_QUERIER, LOWER)
    # other querier present interval: 2 x 4 + 1 / 2 = 8.5 s after the last query heard
    assert state.next_wakeup() == 10.5
    state.heard(LOWER, general(), now=6.0)
    assert sent_at(state, [6.0, 10.0, 14.0]) == []
    assert sent_at(state, [14.5]) == [(14.5, "general")]
    assert (state.role, state.querier) == (Role.QUERIER, ME)
    assert [(c.at, c.role) for c in state.changes] == [
        (0.0, Role.QUERIER),
        (2.0, Role.NON_QUERIER),
        (14.5, Role.QUERIER),
    ]
    assert "went quiet" in state.changes[-1].reason
    assert sent_at(state, [18.4, 18.5]) == [(18.5, "general")]  # no second startup


def test_a_higher_querier_is_ignored_and_so_is_its_own_echo() -> None:
    state = QuerierState(FAST, ME, now=0.0)
    state.heard(HIGHER, general(), now=1.0)
    state.heard(ME, general(), now=1.0)
    assert state.role is Role.QUERIER and len(state.changes) == 1


def test_the_other_queriers_qrv_and_qqic_set_how_long_it_is_awaited() -> None:
    state = QuerierState(FAST, ME, now=0.0)
    state.heard(LOWER, general(interval=20.0, robustness=3), now=1.0)
    assert state.next_wakeup() == 1.0 + 3 * 20 + 0.5
    state.heard(LOWER, general(version=2), now=2.0)  # IGMPv2: the querier's own settings
    assert state.next_wakeup() == 2.0 + 2 * 4 + 0.5


def test_a_snooping_switch_asking_from_0_0_0_0_does_not_take_part_in_the_election() -> None:
    state = QuerierState(FAST, ME, now=0.0)
    state.heard(ANY4, general(), now=1.0)
    assert state.role is Role.QUERIER


def test_an_mld_query_from_a_global_address_is_not_an_election_candidate() -> None:
    settings = QuerierSettings(Protocol.MLD, query_interval=4, response_interval=1)
    state = QuerierState(settings, IPv6Address("fe80::5"), now=0.0)
    query = Query(Protocol.MLD, 2, IPv6Address("::"), 1.0, robustness=2, interval=4.0)
    state.heard(IPv6Address("2001:db8::1"), query, now=1.0)
    assert state.role is Role.QUERIER
    state.heard(IPv6Address("fe80::1"), query, now=1.0)
    assert (state.role, state.querier) == (Role.NON_QUERIER, IPv6Address("fe80::1"))


def test_the_lowest_of_two_other_queriers_is_the_one_reported() -> None:
    state = QuerierState(FAST, ME, now=0.0)
    state.heard(A4("198.18.1.4"), general(), now=1.0)
    state.heard(LOWER, general(), now=1.1)
    state.heard(A4("198.18.1.4"), general(), now=1.2)
    assert state.querier == LOWER
    assert [c.querier for c in state.changes] == [ME, A4("198.18.1.4"), LOWER]


def test_a_leave_gets_last_member_count_group_specific_queries() -> None:
    settings = QuerierSettings(
        Protocol.IGMP, 2, query_interval=100, response_interval=1, last_member_interval=0.5
    )
    state = QuerierState(settings, ME, now=0.0)
    state.due(0.0)
    state.heard(A4("198.18.1.7"), Leave(Protocol.IGMP, 2, GROUP), now=3.0)
    state.heard(A4("198.18.1.8"), Leave(Protocol.IGMP, 2, GROUP), now=3.1)  # no second round
    assert state.next_wakeup() == 3.0
    sent = [(t, o) for t in (3.0, 3.4, 3.5, 4.0) for o in state.due(t)]
    assert [t for t, _ in sent] == [3.0, 3.5]
    assert all(o == Outgoing(Query(Protocol.IGMP, 2, GROUP, 0.5), GROUP) for _, o in sent)
    assert state.next_wakeup() == 25.0  # the second startup query


def test_igmpv3_records_get_group_and_group_and_source_specific_queries() -> None:
    settings = QuerierSettings(
        Protocol.IGMP, query_interval=100, response_interval=1, last_member_count=1
    )
    state = QuerierState(settings, ME, now=0.0)
    state.due(0.0)
    source, other = A4("198.18.1.1"), A4("198.18.1.3")
    report = RecordReport(
        Protocol.IGMP,
        3,
        (
            GroupRecord(RecordType.TO_INCLUDE, GROUP),
            GroupRecord(RecordType.BLOCK, A4("232.1.1.1"), (other, source, other)),
            GroupRecord(RecordType.BLOCK, A4("232.1.1.2")),
            GroupRecord(RecordType.IS_EXCLUDE, A4("239.9.9.9")),
            GroupRecord(RecordType.ALLOW, A4("232.1.1.3"), (source,)),
        ),
    )
    state.heard(A4("198.18.1.7"), report, now=1.0)
    queries = [o.query for o in state.due(1.0)]
    assert [(q.group, q.sources, q.max_response) for q in queries] == [
        (GROUP, (), 1.0),
        (A4("232.1.1.1"), (source, other), 1.0),
    ]
    assert all(q.robustness == 2 and q.interval == 100.0 and not q.suppress for q in queries)
    assert state.due(1.0) == []


def test_an_igmpv2_querier_ignores_igmpv3_records_and_reports() -> None:
    settings = QuerierSettings(Protocol.IGMP, 2, query_interval=100, response_interval=1)
    state = QuerierState(settings, ME, now=0.0)
    state.due(0.0)
    leave = RecordReport(Protocol.IGMP, 3, (GroupRecord(RecordType.TO_INCLUDE, GROUP),))
    state.heard(A4("198.18.1.7"), leave, now=1.0)
    state.heard(A4("198.18.1.7"), Report(Protocol.IGMP, 2, GROUP), now=1.0)
    assert state.due(1.0) == []


def test_a_non_querier_sends_no_specific_query_and_forgets_pending_ones() -> None:
    state = QuerierState(FAST, ME, now=0.0)
    state.due(0.0)
    state.heard(A4("198.18.1.7"), Leave(Protocol.IGMP, 2, GROUP), now=1.0)
    state.heard(LOWER, general(), now=1.0)
    state.heard(A4("198.18.1.7"), Leave(Protocol.IGMP, 2, GROUP), now=1.5)
    assert state.due(1.5) == []


def test_messages_of_the_other_protocol_are_ignored() -> None:
    state = QuerierState(FAST, ME, now=0.0)
    state.heard(IPv6Address("fe80::1"), Query(Protocol.MLD, 1, IPv6Address("::"), 1.0), now=1.0)
    assert state.role is Role.QUERIER


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"version": 1}, "IGMP version 1 cannot be sent; choose 2 or 3"),
        ({"query_interval": 0.5}, "query interval 0.5 s is outside"),
        ({"query_interval": 10.5}, "not whole seconds"),
        ({"query_interval": 40000}, "outside 1-31744"),
        ({"response_interval": 125}, "must be below the query interval"),
        ({"version": 2, "response_interval": 30}, "response interval \\(IGMPv2\\) 30 s"),
        ({"robustness": 8}, "robustness 8 is outside 1-7"),
        ({"robustness": 0}, "robustness 0"),
        ({"last_member_interval": 0.01}, "last member interval"),
        ({"last_member_count": 0}, "last member count 0"),
        ({"startup_count": 0}, "startup count 0"),
        ({"startup_interval": 200.0}, "startup interval 200.0 s"),
    ],
)
def test_settings_out_of_range_are_refused_naming_the_value(
    options: dict[str, float], error: str
) -> None:
    with pytest.raises(OptionError, match=error):
        QuerierSettings(Protocol.IGMP, **options)  # type: ignore[arg-type]


def test_mldv1_allows_a_response_time_igmpv2_cannot_carry() -> None:
    assert QuerierSettings(Protocol.MLD, 1, response_interval=60).response_interval == 60
    with pytest.raises(OptionError, match="MLD version 3"):
        QuerierSettings(Protocol.MLD, 3)


def test_settings_derive_their_defaults_from_robustness_and_interval() -> None:
    settings = QuerierSettings(Protocol.IGMP, robustness=3)
    assert (settings.startup_queries, settings.last_member_queries) == (3, 3)
    assert settings.startup_spacing == 125 / 4
    assert settings.membership_interval == 3 * 125 + 10
    assert settings.as_dict()["version"] == 3

"""IGMP and MLD, the protocols by which hosts tell routers and snooping switches their groups.

Pure layers first: :mod:`~multicast.group_management.messages` encodes and decodes the
messages, :mod:`~multicast.group_management.packets` finds them in whole IP packets,
:mod:`~multicast.group_management.querier` is a querier's timers and election with time as
an argument, and :mod:`~multicast.group_management.observe` tables what heard messages say
(memberships, queriers). :mod:`~multicast.group_management.link` holds the raw sockets at
the edge (they need ``CAP_NET_RAW``). The ``querier``, ``membership`` and ``doctor`` tools
are faces over them.
"""

"""The core layer: addresses, interfaces and multicast sockets.

Everything else in the package is a face over these names; none of it sets a multicast
socket option itself. Each truth has one module:

- :mod:`~multicast.core.addresses`: groups, sources, ports, TTLs, zones, wildcards, families;
- :mod:`~multicast.core.interfaces`: interfaces by name, index or address;
- :mod:`~multicast.core.datagram`: what a received datagram carries (pure);
- :mod:`~multicast.core.options`: every socket option, and the bind;
- :mod:`~multicast.core.membership`: joins, leaves and the membership table with its filter;
- :mod:`~multicast.core.io` and :mod:`~multicast.core.batch`: sending and receiving, batched
  by the C extension ``_fastio`` where it is built (:data:`IO_BACKEND` says), else by ctypes;
- :mod:`~multicast.core.hostscope`: TTL 0 kept on this host, whatever the kernel would do;
- :mod:`~multicast.core.endpoints`: the receiving recipe, :class:`Receiver`, :class:`Sender`;
- :mod:`~multicast.core.spread`: memberships spread over sockets past the kernel's limits;
- :mod:`~multicast.core.watch`: interface changes, from netlink;
- :mod:`~multicast.core.raw`: raw and packet sockets and their kernel filters (its names are
  imported from it, not from here).
"""

from multicast.core.addresses import (
    MAX_CHANNELS,
    Channel,
    Group,
    GroupSpec,
    IPAddress,
    Scope,
    common_family,
    family_of,
    parse_address,
    parse_channel_lines,
    parse_channels,
    parse_group,
    parse_port,
    parse_ttl,
    parse_whole,
    split_zone,
    wildcard_host,
)
from multicast.core.batch import IO_BACKEND
from multicast.core.datagram import (
    Datagram,
    Payload,
    check_payload_size,
    parse_ancillary,
    reply_address,
)
from multicast.core.endpoints import (
    Closing,
    Receiver,
    ReceiverOptions,
    Sender,
    SenderOptions,
    configure_receiving,
    follow_interfaces,
    open_receiver,
)
from multicast.core.interfaces import (
    Interface,
    InterfaceSpec,
    interface_index,
    list_interfaces,
    multicast_interfaces,
    resolve_interface,
    routed_interface,
)
from multicast.core.io import (
    TRANSIENT_SEND_ERRORS,
    receive_batch,
    receive_datagram,
    receive_ready,
    send_datagram,
    send_many,
    send_replies,
    send_reply,
    send_to,
    socket_drops,
)
from multicast.core.membership import (
    Membership,
    MembershipTable,
    arrived_as_joined,
    interfaces_by_group,
    join_all,
    join_group,
    leave_group,
)
from multicast.core.options import (
    bind_socket,
    enable_receive_metadata,
    new_socket,
    request_receive_buffer,
    request_send_buffer,
    set_broadcast,
    set_busy_poll,
    set_isolation,
    set_loopback,
    set_reuse,
    set_send_interface,
    set_ttl,
    set_unicast_ttl,
)
from multicast.core.watch import InterfaceChanges, InterfaceWatcher, LinkChange

__all__ = [
    "IO_BACKEND",
    "MAX_CHANNELS",
    "TRANSIENT_SEND_ERRORS",
    "Channel",
    "Closing",
    "Datagram",
    "Group",
    "GroupSpec",
    "IPAddress",
    "Interface",
    "InterfaceChanges",
    "InterfaceSpec",
    "InterfaceWatcher",
    "LinkChange",
    "Membership",
    "MembershipTable",
    "Payload",
    "Receiver",
    "ReceiverOptions",
    "Scope",
    "Sender",
    "SenderOptions",
    "arrived_as_joined",
    "bind_socket",
    "check_payload_size",
    "common_family",
    "configure_receiving",
    "enable_receive_metadata",
    "family_of",
    "follow_interfaces",
    "interface_index",
    "interfaces_by_group",
    "join_all",
    "join_group",
    "leave_group",
    "list_interfaces",
    "multicast_interfaces",
    "new_socket",
    "open_receiver",
    "parse_address",
    "parse_ancillary",
    "parse_channel_lines",
    "parse_channels",
    "parse_group",
    "parse_port",
    "parse_ttl",
    "parse_whole",
    "receive_batch",
    "receive_datagram",
    "receive_ready",
    "reply_address",
    "request_receive_buffer",
    "request_send_buffer",
    "resolve_interface",
    "routed_interface",
    "send_datagram",
    "send_many",
    "send_replies",
    "send_reply",
    "send_to",
    "set_broadcast",
    "set_busy_poll",
    "set_isolation",
    "set_loopback",
    "set_reuse",
    "set_send_interface",
    "set_ttl",
    "set_unicast_ttl",
    "socket_drops",
    "split_zone",
    "wildcard_host",
]

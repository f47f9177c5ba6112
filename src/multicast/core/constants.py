"""Linux socket constants that Python's :mod:`socket` module lacks, defined once.

Values come from the Linux UAPI headers (``linux/in.h``, ``linux/in6.h``,
``asm-generic/socket.h``). Where a newer Python defines a name, its value wins.
"""

from __future__ import annotations

import socket
import sys

LINUX = sys.platform.startswith("linux")

IP_PKTINFO: int = getattr(socket, "IP_PKTINFO", 8)
IP_RECVTTL: int = getattr(socket, "IP_RECVTTL", 12)
IP_TTL: int = socket.IP_TTL
IP_MULTICAST_ALL: int = getattr(socket, "IP_MULTICAST_ALL", 49)
IPV6_MULTICAST_ALL: int = getattr(socket, "IPV6_MULTICAST_ALL", 29)
IPV6_RECVPKTINFO: int = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO: int = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_RECVHOPLIMIT: int = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT: int = getattr(socket, "IPV6_HOPLIMIT", 52)
SO_RXQ_OVFL: int = getattr(socket, "SO_RXQ_OVFL", 40)
SO_RCVBUFFORCE: int = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_BUSY_POLL: int = getattr(socket, "SO_BUSY_POLL", 46)
# recvmmsg flag (linux/socket.h): block for the first datagram only, then take what is queued.
MSG_WAITFORONE: int = getattr(socket, "MSG_WAITFORONE", 0x10000)
# The receive flags as plain ints: IntFlag arithmetic costs microseconds per datagram.
MSG_TRUNC = int(socket.MSG_TRUNC)
MSG_DONTWAIT = int(socket.MSG_DONTWAIT)

# RFC 3678 protocol-independent membership options: one code path for both families.
MCAST_JOIN_GROUP: int = getattr(socket, "MCAST_JOIN_GROUP", 42)
MCAST_BLOCK_SOURCE: int = getattr(socket, "MCAST_BLOCK_SOURCE", 43)
MCAST_UNBLOCK_SOURCE: int = getattr(socket, "MCAST_UNBLOCK_SOURCE", 44)
MCAST_LEAVE_GROUP: int = getattr(socket, "MCAST_LEAVE_GROUP", 45)
MCAST_JOIN_SOURCE_GROUP: int = getattr(socket, "MCAST_JOIN_SOURCE_GROUP", 46)
MCAST_LEAVE_SOURCE_GROUP: int = getattr(socket, "MCAST_LEAVE_SOURCE_GROUP", 47)

# ioctl requests for interface flags and MTU (linux/sockios.h) and the flags we read (linux/if.h).
SIOCGIFFLAGS = 0x8913
SIOCGIFMTU = 0x8921
SIOCGIFNAME = 0x8910  # interface name of an index
SIOCGIFINDEX = 0x8933  # interface index of a name
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_RUNNING = 0x40  # operationally up: carrier and the link watcher agree
IFF_MULTICAST = 0x1000
MAX_INTERFACE_NAME = 15  # longest interface name: IFNAMSIZ (16) less its terminating NUL

# Largest UDP payload: 65535 less the IPv4 (20) and UDP (8) headers; IPv6 has no IP header
# inside its 65535-byte payload length, so only the UDP header counts (jumbograms aside).
MAX_PAYLOAD = {socket.AF_INET: 65507, socket.AF_INET6: 65527}
# Room for a whole datagram of either family.
MAX_DATAGRAM = 65535

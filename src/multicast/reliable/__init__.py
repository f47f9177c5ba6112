"""Reliable multicast file transfer: every receiver gets every file whole, over a lossy network.

The sender multicasts numbered blocks of symbols at a rate; receivers ask only for what they
miss, with NACKs multicast to the group after a random back-off (a receiver that hears
another's NACK for the same blocks keeps quiet); the sender repairs each block once per
round, whoever asked, with new parity symbols (Reed-Solomon, ``zfec``), so one repair serves
every receiver whatever each lost. Sessions are open (a carousel late joiners catch up on) or
closed (N receivers, done when all N confirm); files are checked (SHA-256) before they are
renamed into place and partial files resume; with a key every packet is authenticated, and
optionally encrypted.

Layers (h11-style: pure state, I/O at the edge):

- :mod:`~multicast.reliable.wire`: the packet codec (bounds-checked, never raises);
- :mod:`~multicast.reliable.protection`: HMAC tags and AES-GCM with the package's keys;
- :mod:`~multicast.reliable.blocks`, :mod:`~multicast.reliable.fec`: files as blocks of
  symbols, and the Reed-Solomon parity code that repairs them (zfec's code, computed by the
  small C helper :mod:`~multicast.reliable._gf256` where it is built);
- :mod:`~multicast.reliable.sender_state`, :mod:`~multicast.reliable.receiver_state`
  (with :mod:`~multicast.reliable.receiving`: its settings, storage interface and counts,
  and :mod:`~multicast.reliable.assembly`: its block buffers, rebuilding and hashing),
  :mod:`~multicast.reliable.rate`: the protocol, with time as an argument;
- :mod:`~multicast.reliable.storage`: safe names, partial files, resume, digest check;
- :mod:`~multicast.reliable.transfer`: the socket loops (:func:`send_files`,
  :func:`receive_files` and their asyncio forms);
- :mod:`~multicast.reliable.commands`: ``multicast send-file`` and ``multicast receive-file``.

Needs the ``files`` extra (``pip install 'multicast[files]'``): ``zfec`` for the parity code,
and ``cryptography`` for encryption and the faster GMAC tags (without it, keys use HMAC).
"""

from multicast.reliable.receiving import ReceiverConfig
from multicast.reliable.report import ReceiveReport, SendReport
from multicast.reliable.sender_state import SenderConfig
from multicast.reliable.transfer import (
    receive_files,
    receive_files_async,
    send_files,
    send_files_async,
)

__all__ = [
    "ReceiveReport",
    "ReceiverConfig",
    "SendReport",
    "SenderConfig",
    "receive_files",
    "receive_files_async",
    "send_files",
    "send_files_async",
]

"""Packet protection with the package's shared keys: tags (GMAC or HMAC) or AES-GCM. Pure code.

The key is the one the other tools load (``--key-file``/``--key-env``, at least 16 bytes).
A key per use is derived from it, so that no key serves two purposes::

    key(use) = HMAC-SHA256(key, "multicast reliable v1 " + use)   use: hmac, gmac, encryption

- ``GMAC`` (authentication, the default with a key when ``cryptography`` is installed): a
  16-byte AES-256-GCM tag over the whole packet, nothing encrypted (NIST SP 800-38D's GMAC).
  It costs a quarter of an HMAC-SHA256 per packet on a CPU with AES instructions.
- ``HMAC`` (authentication without ``cryptography``): HMAC-SHA256 cut to 16 bytes.
- ``ENCRYPTED``: the body is AES-256-GCM ciphertext, the header its associated data.

GCM's nonce is the header's origin (8 random bytes per run) and packet counter (4 bytes):
no nonce repeats while an origin sends fewer than 2**32 packets (it stops before). A receiver
with the key accepts any of the three, and never an unprotected packet.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Sequence
from typing import Protocol

from multicast.exceptions import AuthKeyError, UnsupportedError

__all__ = ["HEADER_SIZE", "TAG_SIZE", "Protection", "Protector", "Reason", "make_protector"]

TAG_SIZE = 16
HEADER_SIZE = 20  # the packet header (see wire.py): associated data, nonce at bytes 8-20
_MIN_KEY = 16
_NEEDS_CRYPTOGRAPHY = "needs the cryptography package: pip install 'multicast[files]'"


class Protection(enum.IntEnum):
    """How a packet is protected (the header's protection byte)."""

    NONE = 0
    HMAC = 1
    ENCRYPTED = 2
    GMAC = 3


# The protection byte's values as plain ints: compared once a packet, cheaper than the enum's.
_NONE = int(Protection.NONE)
_HMAC = int(Protection.HMAC)
_ENCRYPTED = int(Protection.ENCRYPTED)
_GMAC = int(Protection.GMAC)


class Reason(enum.Enum):
    """Why a datagram is dropped: counted by reason, never raised."""

    FOREIGN = "foreign"  # too short, or not our magic: some other protocol
    UNSUPPORTED = "unsupported"  # our magic, a version or kind this code does not speak
    MALFORMED = "malformed"  # fields or lengths that do not add up
    UNAUTHENTICATED = "unauthenticated"  # unprotected, and a key is in use
    NEEDS_KEY = "needs-key"  # protected, and no key was given
    NEEDS_CRYPTOGRAPHY = "needs-cryptography"  # GCM, and the cryptography package is missing
    FORGED = "forged"  # the tag does not verify (or decryption fails) under our key
    OTHER_SESSION = "other-session"  # a well-formed packet of another session
    OUT_OF_RANGE = "out-of-range"  # names a block, file or symbol the session does not have


Bytes = bytes | bytearray | memoryview


class _Cipher(Protocol):
    def encrypt(self, nonce: Bytes, data: Bytes, associated_data: Bytes | None) -> bytes: ...

    def decrypt(self, nonce: Bytes, data: Bytes, associated_data: Bytes | None) -> bytes: ...


class Protector:
    """Seals outgoing packets and opens incoming ones under one key (or none).

    ``mode`` is what :meth:`seal` applies; :meth:`open` accepts what the key allows.
    """

    def __init__(
        self,
        mode: Protection,
        hmac_key: bytes | None = None,
        gmac: _Cipher | None = None,
        cipher: _Cipher | None = None,
    ) -> None:
        self.mode = mode
        self._hmac_key = hmac_key
        self._gmac = gmac
        self._cipher = cipher

    @property
    def accepts_plain(self) -> bool:
        """Whether unprotected packets are accepted (no key is in use)."""
        return self._hmac_key is None

    @property
    def overhead(self) -> int:
        """Bytes a sealed packet carries beyond its header and body."""
        return 0 if self.mode is Protection.NONE else TAG_SIZE

    def seal(self, prefix: bytes, payload: Bytes = b"") -> bytes:
        """The packet on the wire: ``prefix`` (the 20-byte header, then the start of the body)
        and ``payload`` (the rest of the body), protected as :attr:`mode` says."""
        mode = self.mode
        if mode is Protection.NONE:
            return prefix + payload
        if mode is Protection.GMAC:
            assert self._gmac is not None
            data = prefix + payload
            return data + self._gmac.encrypt(prefix[8:HEADER_SIZE], b"", data)
        if mode is Protection.HMAC:
            assert self._hmac_key is not None
            data = prefix + payload
            return data + hmac.digest(self._hmac_key, data, "sha256")[:TAG_SIZE]
        assert self._cipher is not None
        head = prefix[:HEADER_SIZE]
        return head + self._cipher.encrypt(head[8:], prefix[HEADER_SIZE:] + payload, head)

    def seal_slots(self, slots: Sequence[memoryview], length: int) -> list[Bytes]:
        """Data packets built in place: each of ``slots`` holds a packet's first ``length``
        bytes (header and body), then exactly :attr:`overhead` bytes of room for the tag;
        the datagrams to send.

        Tags are written into the slots themselves; encrypted packets are new buffers (the
        slots keep the plain text, which repairs send again)."""
        mode = self.mode
        if mode is Protection.NONE:  # no room for a tag: each slot is the packet
            return list(slots)
        if mode is Protection.GMAC:
            assert self._gmac is not None
            tag_of = self._gmac.encrypt
            for slot in slots:
                slot[length:] = tag_of(slot[8:HEADER_SIZE], b"", slot[:length])
            return list(slots)
        if mode is Protection.HMAC:
            assert self._hmac_key is not None
            key = self._hmac_key
            for slot in slots:
                slot[length:] = hmac.digest(key, slot[:length], "sha256")[:TAG_SIZE]
            return list(slots)
        assert self._cipher is not None
        encrypt = self._cipher.encrypt
        return [
            bytes(slot[:HEADER_SIZE])
            + encrypt(slot[8:HEADER_SIZE], slot[HEADER_SIZE:length], slot[:HEADER_SIZE])
            for slot in slots
        ]

    def open(self, protection: int, packet: memoryview) -> memoryview | Reason:
        """The plain body of ``packet`` (header included, declaring ``protection``), or the
        :class:`Reason` it is refused. Never raises. (Per packet: plain ints, no enum look-up.)"""
        if protection == _NONE:
            return packet[HEADER_SIZE:] if self._hmac_key is None else Reason.UNAUTHENTICATED
        if self._hmac_key is None:
            return Reason.NEEDS_KEY
        cut = len(packet) - TAG_SIZE
        if cut < HEADER_SIZE:
            return Reason.MALFORMED
        if protection == _GMAC:
            if self._gmac is None:
                return Reason.NEEDS_CRYPTOGRAPHY
            try:
                self._gmac.decrypt(packet[8:HEADER_SIZE], packet[cut:], packet[:cut])
            except Exception:  # cryptography's InvalidTag: forged, or another key
                return Reason.FORGED
            return packet[HEADER_SIZE:cut]
        if protection == _ENCRYPTED:
            if self._cipher is None:
                return Reason.NEEDS_CRYPTOGRAPHY
            head = packet[:HEADER_SIZE]
            try:
                return memoryview(self._cipher.decrypt(head[8:], packet[HEADER_SIZE:], head))
            except Exception:  # as above
                return Reason.FORGED
        if protection == _HMAC:
            tag = hmac.digest(self._hmac_key, packet[:cut], "sha256")[:TAG_SIZE]
            if not hmac.compare_digest(tag, packet[cut:]):
                return Reason.FORGED
            return packet[HEADER_SIZE:cut]
        return Reason.UNSUPPORTED


def _derive(key: bytes, use: bytes) -> bytes:
    return hmac.digest(key, b"multicast reliable v1 " + use, hashlib.sha256)


def _aes_gcm(key: bytes) -> _Cipher | None:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415
    except ImportError:
        return None
    cipher: _Cipher = AESGCM(key)
    return cipher


def make_protector(key: bytes | None, *, encrypt: bool = False) -> Protector:
    """A :class:`Protector` for ``key``: tags with a key, AES-GCM encryption with ``encrypt``.

    Raises :class:`AuthKeyError` for a short key or ``encrypt`` without a key, and
    :class:`UnsupportedError` for ``encrypt`` without the ``cryptography`` package.
    """
    if key is None:
        if encrypt:
            raise AuthKeyError("encryption needs a key: give --key-file or --key-env")
        return Protector(Protection.NONE)
    if len(key) < _MIN_KEY:
        raise AuthKeyError(f"the shared key has {len(key)} bytes; at least {_MIN_KEY} needed")
    gmac = _aes_gcm(_derive(key, b"gmac"))
    cipher = _aes_gcm(_derive(key, b"encryption"))
    if encrypt and cipher is None:
        raise UnsupportedError(f"encryption {_NEEDS_CRYPTOGRAPHY}")
    if encrypt:
        mode = Protection.ENCRYPTED
    else:
        mode = Protection.GMAC if gmac is not None else Protection.HMAC
    return Protector(mode, _derive(key, b"hmac"), gmac, cipher)

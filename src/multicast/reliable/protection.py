"""Packet protection with the package's shared keys: HMAC-SHA256 tags or AES-256-GCM. Pure code.

The key is the one the other tools load (``--key-file``/``--key-env``, at least 16 bytes).
Two keys are derived from it, one per use, so that a tag key is never an encryption key::

    tag key        = HMAC-SHA256(key, "multicast reliable v1 tag")
    encryption key = HMAC-SHA256(key, "multicast reliable v1 encryption")   (AES-256)

- ``AUTHENTICATED``: a 16-byte tag (HMAC-SHA256 cut to 128 bits) over the whole packet.
- ``ENCRYPTED``: the body is AES-256-GCM ciphertext; the header is the associated data; the
  nonce is the header's origin (8 random bytes per run) and packet counter (4 bytes), so no
  nonce repeats while an origin sends fewer than 2**32 packets (it stops before).

Encryption needs the ``cryptography`` package (``pip install 'multicast[files]'``); without it
only :class:`Protection.ENCRYPTED` is refused, with one line saying so.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from typing import Protocol

from multicast.exceptions import AuthKeyError, UnsupportedError

__all__ = ["TAG_SIZE", "Protection", "Protector", "Reason", "make_protector"]

TAG_SIZE = 16
_MIN_KEY = 16


class Protection(enum.IntEnum):
    """How a packet is protected (the header's protection byte)."""

    NONE = 0
    AUTHENTICATED = 1
    ENCRYPTED = 2


class Reason(enum.Enum):
    """Why a datagram is dropped: counted by reason, never raised."""

    FOREIGN = "foreign"  # too short, or not our magic: some other protocol
    UNSUPPORTED = "unsupported"  # our magic, a version or kind this code does not speak
    MALFORMED = "malformed"  # fields or lengths that do not add up
    UNAUTHENTICATED = "unauthenticated"  # unprotected, and a key is in use
    NEEDS_KEY = "needs-key"  # protected, and no key was given
    NEEDS_CRYPTOGRAPHY = "needs-cryptography"  # encrypted, and the cryptography package is missing
    FORGED = "forged"  # the tag does not verify (or decryption fails) under our key
    OTHER_SESSION = "other-session"  # a well-formed packet of another session
    OUT_OF_RANGE = "out-of-range"  # names a block, file or symbol the session does not have


class _Cipher(Protocol):
    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


class Protector:
    """Seals outgoing packets and opens incoming ones under one key (or none).

    ``mode`` is what :meth:`seal` applies. :meth:`open` accepts what the key allows: with a
    key, authenticated or encrypted packets (never unprotected ones); without, only
    unprotected packets.
    """

    def __init__(self, mode: Protection, tag_key: bytes | None, cipher: _Cipher | None) -> None:
        self.mode = mode
        self._tag_key = tag_key
        self._cipher = cipher

    @property
    def overhead(self) -> int:
        """Bytes a sealed packet carries beyond its header and body."""
        return 0 if self.mode is Protection.NONE else TAG_SIZE

    @property
    def keyed(self) -> bool:
        return self._tag_key is not None

    def seal(self, header: bytes | bytearray | memoryview, body: bytes | memoryview) -> bytes:
        """The packet on the wire: ``header`` (whose nonce is at bytes 8-20) then the body,
        protected as :attr:`mode` says."""
        if self.mode is Protection.NONE:
            return bytes(header) + body
        if self.mode is Protection.AUTHENTICATED:
            assert self._tag_key is not None
            data = bytes(header) + body
            return data + hmac.digest(self._tag_key, data, "sha256")[:TAG_SIZE]
        assert self._cipher is not None
        head = bytes(header)
        return head + self._cipher.encrypt(head[8:20], bytes(body), head)

    def open(
        self, protection: int, header: memoryview, rest: memoryview
    ) -> memoryview | bytes | Reason:
        """The plain body of a packet whose ``header`` declares ``protection``, or the
        :class:`Reason` it is refused. Never raises."""
        if protection == Protection.NONE:
            return rest if self._tag_key is None else Reason.UNAUTHENTICATED
        if self._tag_key is None:
            return Reason.NEEDS_KEY
        if len(rest) < TAG_SIZE:
            return Reason.MALFORMED
        if protection == Protection.AUTHENTICATED:
            cut = len(rest) - TAG_SIZE
            signed = bytes(header) + rest[:cut]
            tag = hmac.digest(self._tag_key, signed, "sha256")[:TAG_SIZE]
            if not hmac.compare_digest(tag, rest[cut:]):
                return Reason.FORGED
            return rest[:cut]
        if protection == Protection.ENCRYPTED:
            if self._cipher is None:
                return Reason.NEEDS_CRYPTOGRAPHY
            head = bytes(header)
            try:
                return self._cipher.decrypt(head[8:20], bytes(rest), head)
            except Exception:  # cryptography's InvalidTag: forged, or another key
                return Reason.FORGED
        return Reason.MALFORMED


def _derive(key: bytes, use: bytes) -> bytes:
    return hmac.digest(key, b"multicast reliable v1 " + use, hashlib.sha256)


def _aes_gcm(key: bytes) -> _Cipher | None:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        return None
    cipher: _Cipher = AESGCM(key)
    return cipher


def make_protector(key: bytes | None, *, encrypt: bool = False) -> Protector:
    """A :class:`Protector` for ``key``: tags with a key, AES-GCM too with ``encrypt``.

    Raises :class:`AuthKeyError` for a short key or ``encrypt`` without a key, and
    :class:`UnsupportedError` for ``encrypt`` without the ``cryptography`` package.
    """
    if key is None:
        if encrypt:
            raise AuthKeyError("encryption needs a key: give --key-file or --key-env")
        return Protector(Protection.NONE, None, None)
    if len(key) < _MIN_KEY:
        raise AuthKeyError(f"the shared key has {len(key)} bytes; at least {_MIN_KEY} needed")
    cipher = _aes_gcm(_derive(key, b"encryption"))
    if encrypt and cipher is None:
        raise UnsupportedError(
            "encryption needs the cryptography package: pip install 'multicast[files]'"
        )
    mode = Protection.ENCRYPTED if encrypt else Protection.AUTHENTICATED
    return Protector(mode, _derive(key, b"tag"), cipher)

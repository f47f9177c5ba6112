"""The ``MULTICAST_*`` environment variables: the defaults of the command line and the API.

The package reads them once, silently, when it is imported: an invalid value leaves the
built-in default. :func:`load_config` reads them again and warns (``UserWarning``) about each
invalid value; the command line calls it at start and shows each warning as one line.

=========================  ==========================  ==========================================
variable                   default                     valid values
=========================  ==========================  ==========================================
``MULTICAST_PORT``         59259                       49152-65535 (the dynamic port range)
``MULTICAST_GROUP``        224.0.0.1                   a multicast IP literal (IPv4 or IPv6)
``MULTICAST_GROUPS``       none                        multicast IP literals separated by spaces;
                                                       invalid entries are skipped
``MULTICAST_TTL``          1                           1-126
``MULTICAST_BIND_ADDR``    none: chosen from the       an IP literal (``0.0.0.0`` binds every
                           groups joined               address)
``MULTICAST_BUFFER_SIZE``  1316                        1-65507: bytes per datagram of
                                                       ``SAY --pipe``
=========================  ==========================  ==========================================

Names are never looked up in DNS: a group or address must be an IP literal.

One more is read by the core itself, which imports nothing above it: ``MULTICAST_IO``
(``ctypes`` forces the fallback of the batched I/O; ``extension``, ``auto`` or unset use the
C extension where it is built; any other value warns), in :mod:`multicast.core.batch`.

>>> validate_port(59259), validate_port(1024), validate_ttl(126), validate_ttl(127)
(True, False, True, False)
>>> validate_multicast_address("ff02::1"), validate_multicast_address("localhost")
(True, False)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from typing import Final, TypedDict, TypeVar

from multicast.core import IPAddress, parse_address, parse_group, parse_ttl, parse_whole
from multicast.core.constants import MAX_PAYLOAD
from multicast.exceptions import MulticastError, OptionError

__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_GROUP",
    "DEFAULT_PORT",
    "DEFAULT_TTL",
    "Config",
    "load_TTL",
    "load_buffer_size",
    "load_config",
    "load_group",
    "load_port",
    "validate_buffer_size",
    "validate_multicast_address",
    "validate_port",
    "validate_ttl",
    "whole_number",
]

DEFAULT_PORT: Final = 59259
DEFAULT_GROUP: Final = "224.0.0.1"
DEFAULT_TTL: Final = 1
DEFAULT_BUFFER_SIZE: Final = 1316  # bytes: an MPEG-TS-sized datagram (7 x 188)
_MAX_BUFFER_SIZE: Final = min(MAX_PAYLOAD.values())  # fits one datagram of either family
_T = TypeVar("_T")


class Config(TypedDict):
    """What :func:`load_config` returns."""

    port: int
    group: str
    groups: list[str]  # MULTICAST_GROUPS, the group and a multicast bind address; sorted
    ttl: int
    bind_addr: str | None  # None: one IPv4 group is bound itself, else every address is
    buffer_size: int


def whole_number(value: object, what: str | None = None) -> int:
    """``value`` (an ``int``, or its ASCII digits with spaces around) as an ``int``; the
    :class:`~multicast.exceptions.OptionError` (a ``ValueError``) names ``what`` and the value.

    The one whole-number reading of the variables here and of the command-line options: the
    core's :func:`~multicast.core.parse_whole`.
    """
    return parse_whole(value, what)


def validate_buffer_size(size: object) -> bool:
    """Whether ``size`` is a datagram size from 1 to 65507; ``ValueError`` if not a number."""
    return 0 < whole_number(size) <= _MAX_BUFFER_SIZE


def validate_port(port: object) -> bool:
    """Whether ``port`` is in the dynamic range 49152-65535; ``ValueError`` if not a number."""
    return 49152 <= whole_number(port) <= 65535


_REFERENCE_TTLS: Final = range(1, 127)  # MULTICAST_TTL as the reference documents it


def validate_ttl(ttl: object) -> bool:
    """Whether ``ttl`` is a TTL from 1 to 126; ``ValueError`` if not a number.

    What makes a TTL is the core's rule (:func:`~multicast.core.parse_ttl`, 0-255); this
    answer is narrower because it is the reference's check of ``MULTICAST_TTL``, documented
    as 1-126 (the reference also used that value as a socket timeout in seconds, where 0
    would mean none), and callers of the reference API rely on it.
    """
    number = whole_number(ttl)
    try:
        parse_ttl(number)
    except OptionError:
        return False
    return number in _REFERENCE_TTLS


def validate_multicast_address(address: object) -> bool:
    """Whether ``address`` is a multicast IP literal (never raises, never looks up DNS)."""
    try:
        parse_group(str(address))
    except MulticastError:
        return False
    return True


def _checked(check: Callable[[object], bool], rule: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not check(text):
            raise ValueError(f"{text!r} is not {rule}")
        return whole_number(text)

    return parse


_port = _checked(validate_port, "a dynamic port (49152-65535)")
_ttl = _checked(validate_ttl, "a TTL from 1 to 126")
_size = _checked(validate_buffer_size, f"a datagram size from 1 to {_MAX_BUFFER_SIZE}")


def _group(text: str) -> str:
    return str(parse_group(text))


def _address(text: str) -> str | None:  # (None is the default of MULTICAST_BIND_ADDR)
    return str(parse_address(text, what="bind address"))


def _read(
    environ: Mapping[str, str], name: str, default: _T, parse: Callable[[str], _T]
) -> tuple[_T, list[str]]:
    """The value of ``name`` (``default`` when unset or empty) and the complaint if invalid."""
    text = environ.get(name, "").strip()
    if not text:
        return default, []
    try:
        return parse(text), []
    except ValueError as error:
        return default, [f"{name}: {error}; using the default {default!r}"]


def _read_config(environ: Mapping[str, str]) -> tuple[Config, list[str]]:
    """The configuration and a complaint per invalid value, in the reference's load order."""
    port, complaints = _read(environ, "MULTICAST_PORT", DEFAULT_PORT, _port)
    group, more = _read(environ, "MULTICAST_GROUP", DEFAULT_GROUP, _group)
    complaints += more
    ttl, more = _read(environ, "MULTICAST_TTL", DEFAULT_TTL, _ttl)
    complaints += more
    buffer_size, more = _read(environ, "MULTICAST_BUFFER_SIZE", DEFAULT_BUFFER_SIZE, _size)
    complaints += more
    bind_addr, more = _read(environ, "MULTICAST_BIND_ADDR", None, _address)
    complaints += more
    groups = {group}
    for entry in environ.get("MULTICAST_GROUPS", "").split():
        try:
            groups.add(_group(entry))
        except ValueError as error:
            complaints.append(f"MULTICAST_GROUPS: skipping {entry!r}: {error}")
    if bind_addr is not None and validate_multicast_address(bind_addr):
        groups.add(bind_addr)
    config = Config(
        port=port,
        group=group,
        groups=sorted(groups),
        ttl=ttl,
        bind_addr=bind_addr,
        buffer_size=buffer_size,
    )
    return config, complaints


def load_config(*, warn: bool = True) -> Config:
    """Read every ``MULTICAST_*`` variable; warn (``UserWarning``) about each invalid one."""
    config, complaints = _read_config(os.environ)
    if warn:
        for complaint in complaints:
            warnings.warn(complaint, UserWarning, stacklevel=2)
    return config


def load_port() -> int:
    """``MULTICAST_PORT``, or 59259 (with a warning if the value is invalid)."""
    return _load("MULTICAST_PORT", DEFAULT_PORT, _port)


def load_group() -> IPAddress:
    """``MULTICAST_GROUP`` as an address, or 224.0.0.1 (with a warning if invalid)."""
    return parse_group(_load("MULTICAST_GROUP", DEFAULT_GROUP, _group)).address


def load_TTL() -> int:
    """``MULTICAST_TTL``, or 1 (with a warning if the value is invalid)."""
    return _load("MULTICAST_TTL", DEFAULT_TTL, _ttl)


def load_buffer_size() -> int:
    """``MULTICAST_BUFFER_SIZE``, or 1316 (with a warning if the value is invalid)."""
    return _load("MULTICAST_BUFFER_SIZE", DEFAULT_BUFFER_SIZE, _size)


def _load(name: str, default: _T, parse: Callable[[str], _T]) -> _T:
    value, complaints = _read(os.environ, name, default, parse)
    for complaint in complaints:
        warnings.warn(complaint, UserWarning, stacklevel=3)
    return value

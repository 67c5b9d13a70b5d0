"""Node addresses: ``HOST:PORT`` (or ``[v6]:PORT``) parsed with readable errors."""

from __future__ import annotations


def split_address(address: str, default_port: int | None = None) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) as a tuple; ``ValueError`` with a readable message."""
    host, sep, port = address.rpartition(":")
    if not sep:
        if default_port is None:
            raise ValueError(f"address {address!r} must be HOST:PORT")
        host, port = address, str(default_port)
    host = host.strip("[]")
    if not host:
        raise ValueError(f"address {address!r} has no host")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"address {address!r} has a port that is not a number") from None
    if not 0 < number < 65536:
        raise ValueError(f"address {address!r} has a port outside 1-65535")
    return host, number

"""Free loopback ports for the servers a test starts."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(n: int) -> int:
    """A first port such that the next `n` are free too (the brokers' ports)."""
    for _ in range(50):
        first = free_port()
        try:
            held = []
            for p in range(first, first + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                held.append(s)
            for s in held:
                s.close()
            return first
        except OSError:
            for s in held:
                s.close()
    raise RuntimeError("no block of free ports on 127.0.0.1")

"""Tokens and token ranges on the Murmur3 ring.

A token is a signed 64-bit int in ``[MIN_TOKEN, MAX_TOKEN]``. The token space is a circle: after
``MAX_TOKEN`` comes ``MIN_TOKEN``.

A :class:`Range` is the half-open interval ``(start, end]`` walking clockwise from ``start``, as
Cassandra's ``Range<Token>``:

- ``start < end``: the ordinary interval, ``start < t <= end``;
- ``start > end``: it wraps past ``MAX_TOKEN``: ``t > start or t <= end``;
- ``start == end``: the whole ring (what a single-token ring owns).
"""

from __future__ import annotations

import random
from bisect import insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ringd.dht.murmur3 import MAX_TOKEN, MIN_TOKEN

__all__ = [
    "MAX_TOKEN",
    "MIN_TOKEN",
    "RING_SIZE",
    "Range",
    "allocate_tokens",
    "check_token",
    "random_tokens",
]

#: Number of distinct tokens on the ring (2**64).
RING_SIZE: int = 1 << 64


def check_token(token: int) -> int:
    """Return ``token`` if it is a valid token, else raise ``ValueError``."""
    if type(token) is not int:
        if isinstance(token, bool) or not isinstance(token, int):
            raise ValueError(f"token must be an integer, got {type(token).__name__}")
        token = int(token)
    if not MIN_TOKEN <= token <= MAX_TOKEN:
        raise ValueError(f"token {token} is outside [{MIN_TOKEN}, {MAX_TOKEN}]")
    return token


@dataclass(frozen=True, slots=True, order=True)
class Range:
    """The token range ``(start, end]``, wrapping past ``MAX_TOKEN`` when ``start >= end``."""

    start: int
    end: int

    def __post_init__(self) -> None:
        check_token(self.start)
        check_token(self.end)

    @classmethod
    def full(cls, at: int = MIN_TOKEN) -> Range:
        """The range covering the whole ring (``(at, at]``)."""
        return cls(at, at)

    @property
    def is_full(self) -> bool:
        return self.start == self.end

    @property
    def wraps(self) -> bool:
        """True when the range crosses from ``MAX_TOKEN`` to ``MIN_TOKEN`` (or is the full ring)."""
        return self.start >= self.end

    def contains(self, token: int) -> bool:
        """Whether ``token`` lies in ``(start, end]`` (clockwise, wrapping)."""
        start = self.start
        end = self.end
        if start < end:
            return start < token <= end
        return token > start or token <= end

    __contains__ = contains

    @property
    def width(self) -> int:
        """Number of tokens in the range (``RING_SIZE`` for the full ring)."""
        return (self.end - self.start) % RING_SIZE or RING_SIZE

    @property
    def fraction(self) -> float:
        """Share of the whole token space this range covers, in ``(0, 1]``."""
        return self.width / RING_SIZE

    def intervals(self) -> list[tuple[int, int]]:
        """The tokens of the range as sorted, disjoint, *inclusive* ``(lo, hi)`` intervals.

        This is the form a storage scan wants (``lo <= token <= hi``): one interval for an
        ordinary range, two for a wrapping one, ``[(MIN_TOKEN, MAX_TOKEN)]`` for the full ring.
        """
        start = self.start
        end = self.end
        if start < end:
            return [(start + 1, end)]
        if start == end:
            return [(MIN_TOKEN, MAX_TOKEN)]
        out = [(MIN_TOKEN, end)]
        if start < MAX_TOKEN:
            out.append((start + 1, MAX_TOKEN))
        return out

    def split(self, parts: int) -> list[Range]:
        """Cut into ``parts`` contiguous sub-ranges of (nearly) equal width, in clockwise order.

        Fewer pieces are returned when the range holds fewer than ``parts`` tokens.
        """
        if parts < 1:
            raise ValueError(f"parts must be >= 1, got {parts}")
        width = self.width
        parts = min(parts, width)
        if parts == 1:
            return [self]
        bounds = [self.start]
        for i in range(1, parts):
            offset = width * i // parts
            bounds.append(_wrap_token(self.start + offset))
        bounds.append(self.end)
        return [Range(bounds[i], bounds[i + 1]) for i in range(parts)]

    def __str__(self) -> str:
        return f"({self.start}, {self.end}]"


def _wrap_token(value: int) -> int:
    """Map any integer onto the signed 64-bit token circle."""
    return (value - MIN_TOKEN) % RING_SIZE + MIN_TOKEN


def random_tokens(n: int, rng: random.Random, exclude: Iterable[int] = ()) -> list[int]:
    """Return ``n`` distinct random tokens, none in ``exclude`` and none equal to ``MIN_TOKEN``.

    Like ``Murmur3Partitioner.getRandomToken``, ``MIN_TOKEN`` is never chosen (it is the token of
    the empty key, and a node owning it would own an empty range at the ring's edge).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    taken = set(exclude)
    out: list[int] = []
    randint = rng.randint
    while len(out) < n:
        token = randint(MIN_TOKEN + 1, MAX_TOKEN)
        if token not in taken:
            taken.add(token)
            out.append(token)
    return out


def allocate_tokens(n: int, ring: Mapping[int, str], rng: random.Random) -> list[int]:
    """``n`` tokens for a node joining a ring of ``token -> owner`` so that ownership evens out.

    A greedy in the spirit of Cassandra's token allocation: the new node should end up owning
    ``1 / (nodes + 1)`` of the ring. Each of its tokens splits the largest range (``(prev, t]``)
    of the currently most-loaded node: the new token is placed inside that range so the new
    node takes the part before it — its remaining share spread over its remaining tokens, but
    no more than the range (less one token) and no more than that node has above the mean
    (or half the range, if more). Taking from the most-loaded node first pulls
    every node towards the mean. A little jitter keeps two nodes that join at once from picking
    the same tokens. With an empty ring the tokens are random (the first node has no one to
    balance against).
    """
    if not ring:
        return random_tokens(n, rng)
    owners = dict(ring)
    tokens = sorted(owners)

    def width(i: int) -> int:
        return (tokens[i] - tokens[i - 1]) % RING_SIZE or RING_SIZE

    load: dict[str, int] = {}
    for i, t in enumerate(tokens):
        load[owners[t]] = load.get(owners[t], 0) + width(i)
    target = RING_SIZE // (len(load) + 1)
    mine = 0
    out: list[int] = []
    for left in range(n, 0, -1):
        heavy = max(load, key=lambda h: (load[h], h))
        i = max((j for j, t in enumerate(tokens) if owners[t] == heavy), key=width)
        w = width(i)
        take = min(w - 1, max(target - mine, 0) // left, max(load[heavy] - target, w // 2))
        take = max(1, int(take * rng.uniform(0.97, 1.0)))
        token = _wrap_token(tokens[i - 1] + take)
        if token in owners or token == MIN_TOKEN or take >= w:
            token = random_tokens(1, rng, exclude=owners)[0]
            take = 0  # ownership unknown without recomputing; rare
        owners[token] = ""
        insort(tokens, token)
        load[heavy] -= take
        mine += take
        out.append(token)
    return out

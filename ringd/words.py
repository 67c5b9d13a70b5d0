"""Counts in messages for people: ``1 replica``, ``2 replicas``."""

from __future__ import annotations


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``n`` and the noun, singular for exactly 1 (``nouns`` when the plural is irregular)."""
    return f"{n} {noun}" if n == 1 else f"{n} {nouns or noun + 's'}"

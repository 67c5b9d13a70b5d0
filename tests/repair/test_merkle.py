"""Merkle trees: equal data gives equal trees in any order; each difference shows up in exactly
the leaf that holds it; equal content under different keys is never mistaken for equal data."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from ringd.dht.murmur3 import token_for
from ringd.dht.tokens import MAX_TOKEN, MIN_TOKEN, Range
from ringd.repair.merkle import MAX_DEPTH, MerkleTree, depth_for, diff_rows

tokens = st.integers(MIN_TOKEN, MAX_TOKEN)
ranges = st.builds(Range, tokens, tokens)


def digest(content: bytes) -> bytes:
    return hashlib.blake2b(content, digest_size=16).digest()


def tree_of(rows: dict[bytes, bytes], rng: Range = Range.full(), depth: int = 6) -> MerkleTree:
    tree = MerkleTree(rng, depth)
    for key, content in rows.items():
        token = token_for(key)
        if token in rng:
            tree.add(token, key, digest(content))
    return tree


def test_the_xor_trap_equal_rows_under_different_keys_differ() -> None:
    a = tree_of({b"k1": b"same", b"k2": b"other"})
    b = tree_of({b"k1": b"other", b"k2": b"same"})  # contents swapped between the keys
    assert a.root != b.root
    c = tree_of({b"k1": b"same", b"k2": b"same"})
    d = tree_of({b"k3": b"same", b"k4": b"same"})  # the same rows under other keys
    assert c.root != d.root
    assert tree_of({}).root != tree_of({b"k1": b"x", b"k2": b"x"}).root  # pairs do not cancel


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.binary(min_size=1, max_size=8), st.binary(max_size=8), max_size=60))
def test_insertion_order_does_not_matter(rows: dict[bytes, bytes]) -> None:
    forward = tree_of(rows)
    backward = tree_of(dict(reversed(list(rows.items()))))
    assert forward.root == backward.root
    assert forward.differences(backward) == []


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.binary(min_size=1, max_size=8), st.binary(max_size=8), max_size=60),
    st.binary(min_size=1, max_size=8),
    st.binary(max_size=8),
    st.integers(0, 8),
)
def test_one_difference_shows_in_exactly_its_leaf(
    rows: dict[bytes, bytes], key: bytes, content: bytes, depth: int
) -> None:
    changed = dict(rows)
    changed[key] = content + b"!" if rows.get(key) == content else content
    a, b = tree_of(rows, depth=depth), tree_of(changed, depth=depth)
    leaf = a.leaf_of(token_for(key))
    assert a.differences(b) == [leaf]
    assert b.differences(a) == [leaf]
    assert token_for(key) in a.leaf_range(leaf)


@settings(max_examples=200, deadline=None)
@given(ranges, st.integers(0, MAX_DEPTH), st.data())
def test_leaves_tile_the_range(rng: Range, depth: int, data: st.DataObject) -> None:
    tree = MerkleTree(rng, depth)
    token = data.draw(tokens.filter(lambda t: t in rng))
    leaf = tree.leaf_of(token)
    assert 0 <= leaf < tree.leaves
    assert token in tree.leaf_range(leaf)
    first, last = tree.leaf_range(0), tree.leaf_range(tree.leaves - 1)
    assert first.start == rng.start and last.end == rng.end


def test_wire_round_trip_and_validation() -> None:
    tree = tree_of({b"a": b"1", b"b": b"2"}, depth=3)
    again = MerkleTree.from_wire(tree.to_wire())
    assert again.root == tree.root and again.differences(tree) == []
    bad = tree.to_wire()
    bad["counts"] = [0]
    try:
        MerkleTree.from_wire(bad)
    except ValueError:
        pass
    else:
        raise AssertionError("a tree whose leaves do not match its depth was accepted")


def test_depth_adapts_to_rows_and_is_capped() -> None:
    assert depth_for(0) == 0
    assert depth_for(1000) == 5
    assert depth_for(10**9) == MAX_DEPTH


def test_diff_rows_moves_only_what_differs() -> None:
    mine = [(b"k%d" % i, digest(b"v")) for i in range(1000)]
    theirs = list(mine)
    theirs[500] = (b"k500", digest(b"newer"))
    theirs.append((b"extra", digest(b"x")))
    send, fetch = diff_rows(mine, theirs)
    assert send == [b"k500"]
    assert fetch == [b"extra", b"k500"]

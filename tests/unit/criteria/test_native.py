"""The C helpers of the trigger index (_native.c) on their own: the edges the brute-force
tests of test_index.py reach only by chance (wide sets past the stack buffer, bad arguments)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from crmflow.criteria import index

native = pytest.importorskip("crmflow.criteria._native")


class _Prop:
    """Stands in for index._Prop: and_steps only calls ``nf`` on a miss."""

    def __init__(self, masks: dict[Any, int]) -> None:
        self.masks = masks
        self.calls: list[Any] = []

    def nf(self, v: Any, t: float) -> int:
        self.calls.append(v)
        return self.masks[v]


def _step(prop: _Prop, name: str, cache: dict[Any, int]) -> tuple[Any, ...]:
    return (prop, name, 0, cache, {}, {}, None, None, (), 0, {})


@pytest.mark.parametrize("width", [5, 30, 31, 64, 7_000, 40_000])
def test_and_steps_ands_every_mask_and_keeps_computed_ones(width: int) -> None:
    rng = random.Random(width)
    x = rng.getrandbits(width) | 1 << (width - 1)
    masks = [rng.getrandbits(width) | rng.getrandbits(width) for _ in range(4)]
    props = [_Prop({"v": m}) for m in masks]
    # two cached by value, two computed by nf (a miss)
    steps = [_step(p, f"p{i}", {"v": masks[i]} if i % 2 else {}) for i, p in enumerate(props)]
    record = {f"p{i}": "v" for i in range(4)}
    seen: dict[Any, int] = {}
    got = native.and_steps(x, steps, record, {}, seen, 0.0, -1, ("none",))
    want = x
    for m in masks:
        want &= m
    assert got == want
    # the masks nf computed are kept for the event's later calls; cached ones need not be
    assert seen == {props[0]: masks[0], props[2]: masks[2]}
    assert [len(p.calls) for p in props] == [1, 0, 1, 0]


def test_and_steps_skips_changed_properties_and_reuses_seen() -> None:
    a, b = _Prop({"v": 0b0110}), _Prop({"v": 0b0011})
    steps = [_step(a, "a", {}), _step(b, "b", {})]
    seen = {b: 0b1111}  # already known: not recomputed
    got = native.and_steps(0b1111, steps, {"a": "v", "b": "v"}, {"a": 1}, seen, 0.0, -1, ())
    assert got == 0b1111 and a.calls == [] and b.calls == []


def test_and_steps_stops_early_once_few_terms_are_left() -> None:
    first, second = _Prop({"v": 0b11}), _Prop({"v": 0b01})
    steps = [_step(first, "f", {}), _step(second, "s", {})]
    got = native.and_steps(0b1111, steps, {"f": "v", "s": "v"}, {}, {}, 0.0, 2, ())
    assert got == 0b11 and second.calls == []  # two left after the first: stopped


@pytest.mark.parametrize("seed", range(6))
def test_per_term_end_gives_the_same_terms_as_and_ing_every_mask(seed: int) -> None:
    """Below ``small`` terms the loop tests each term on the properties it reads: the answer
    must be what and-ing every step would give (a term's bit is only cleared in the masks of
    properties it has conditions on, as in the index)."""
    rng = random.Random(seed)
    width, nprops = rng.choice([(12, 5), (90, 9), (700, 12)])
    reads = [tuple(sorted(rng.sample(range(nprops), rng.randint(1, 4)))) for _ in range(width)]
    universe = (1 << width) - 1
    masks = []
    for pid in range(nprops):
        fails = sum(1 << b for b in range(width) if pid in reads[b] and rng.random() < 0.3)
        masks.append(universe ^ fails)
    props = [_Prop({"v": m}) for m in masks]
    # half the properties cached, half computed by nf; one of them changed (skipped)
    steps = [
        (p, f"p{i}", 0, {"v": masks[i]} if i % 2 else {}, {}, {}, None, None, (), i, {})
        for i, p in enumerate(props)
    ]
    record = {f"p{i}": "v" for i in range(nprops)}
    changed = {"p1": "v"}
    x = rng.getrandbits(width)
    want = x
    for i, m in enumerate(masks):
        if i != 1:
            want &= m
    for small in (-1, 0, 3, 8, width):
        seen: dict[Any, int] = {}
        got = native.and_steps(x, steps, record, changed, seen, 0.0, small, (), reads, steps)
        assert got == want, small
        # the changed property skipped by id instead of by name
        got = native.and_steps(x, steps, record, {}, {}, 0.0, small, (), reads, steps, [1])
        assert got == want, small
    # no step at all: every term is tested on its own properties
    got = native.and_steps(x, [], record, changed, {}, 0.0, width, (), reads, steps)
    assert got == want


def test_per_term_refuses_bits_without_terms_and_bad_ids() -> None:
    step = (_Prop({"v": 1}), "a", 0, {"v": 1}, {}, {}, None, None, (), 0, {})
    with pytest.raises(IndexError):
        native.and_steps(1 << 5, [], {"a": "v"}, {}, {}, 0.0, 8, (), [(0,)], [step])
    with pytest.raises(IndexError):
        native.and_steps(1, [], {"a": "v"}, {}, {}, 0.0, 8, (), [(3,)], [step])
    with pytest.raises(TypeError, match="lists"):
        native.and_steps(1, [], {"a": "v"}, {}, {}, 0.0, 8, (), ((0,),), [step])


def test_and_steps_refuses_negative_masks_and_bad_steps() -> None:
    neg = _Prop({"v": -1})
    with pytest.raises(TypeError, match="non-negative"):
        native.and_steps(3, [_step(neg, "n", {})], {"n": "v"}, {}, {}, 0.0, -1, ())
    with pytest.raises(TypeError, match="non-negative"):
        native.and_steps(-3, [], {}, {}, {}, 0.0, -1, ())
    with pytest.raises(TypeError, match="11-tuple"):
        native.and_steps(3, [("short",)], {}, {}, {}, 0.0, -1, ())


@pytest.mark.parametrize("width", [1, 30, 31, 1_000, 20_000])
def test_bits_and_from_bits_round_trip(width: int) -> None:
    rng = random.Random(width)
    for k in (0, 1, 3, 50):
        bits = sorted(rng.sample(range(width), min(k, width)))
        x = native.from_bits(list(bits))
        assert x == sum(1 << b for b in bits)
        assert native.bits(x) == bits
    with pytest.raises(ValueError):
        native.from_bits([-1])


def test_the_index_uses_the_c_helpers_when_built() -> None:
    assert index.NATIVE is native


def _decide(x: int, nfo: int, sure: set[str] | None = None) -> tuple[set[str], set[str]]:
    """Keys 'a' (one exact term), 'b' (two exact terms), 'c' (an exact term and a loose one),
    'd' (a loose term); no property conditions, so the other terms that pass ``nfo`` (the
    old values) held on the old record."""
    term_key = ["a", "b", "b", "c", "c", "d"]
    term_kbits = [(0,), (1, 2), (1, 2), (3, 4), (3, 4), (5,)]  # bit -> its key's bits
    exact = [True, True, True, True, False, False]
    out: set[str] = set()
    flipped: set[str] = set()
    pids: list[tuple[int, ...]] = [()] * 6
    native.decide(
        x,
        nfo,
        term_key,
        term_kbits,
        exact,
        out,
        sure,
        flipped,
        [],
        {},
        {},
        {},
        0.0,
        8,
        (),
        pids,
        [],
    )
    return out, flipped


def test_decide_classifies_each_key() -> None:
    x = 1 << 0 | 1 << 1 | 1 << 3 | 1 << 5  # the flipped terms
    sure: set[str] = set()
    # b's other term held on the old record; c's loose one may have
    out, flipped = _decide(x, 1 << 2 | 1 << 4, sure)
    assert out == {"a", "c", "d"}  # b matched already
    assert sure == {"a", "c"}  # an exact term holds on the new record
    assert flipped == {"a"}  # c has a loose term in play, d is loose
    # c's loose term failed on the old record: c flipped
    out, flipped = _decide(x, 1 << 2)
    assert flipped == {"a", "c"}
    # nothing else held: b flipped too
    assert _decide(x, 0)[1] == {"a", "b", "c"}


def test_decide_refuses_bits_without_terms() -> None:
    def call(x: int, term_kbits: list[tuple[int, ...]]) -> None:
        native.decide(
            x,
            0,
            ["a"],
            term_kbits,
            [True],
            set(),
            None,
            set(),
            [],
            {},
            {},
            {},
            0.0,
            8,
            (),
            [()],
            [],
        )

    with pytest.raises(IndexError):
        call(1 << 7, [(0,)])  # past the terms
    with pytest.raises(IndexError):
        call(1, [()])  # a freed bit
    with pytest.raises(IndexError):
        call(1, [(0, 9)])  # a key's bit past the terms


def test_flip_keeps_the_terms_that_fail_an_old_value_and_pass_every_new_one() -> None:
    """flip works out TransitionIndex.rising's changed-property step: candidates ``x`` that
    read a changed property (``touched``) failed one of its old values and pass every new
    one; those reading one loosely need only pass the new ones. ``nfo``: the old values'
    masks together."""
    rng = random.Random(5)
    width = 200
    full = (1 << width) - 1
    a_masks = {"o": rng.getrandbits(width), "n": rng.getrandbits(width)}
    b_masks = {"o": rng.getrandbits(width), "n": rng.getrandbits(width)}
    a, b = _Prop(a_masks), _Prop(b_masks)
    # a's masks come from its cache, b's from nf (a miss)
    moved = [(_step(a, "a", dict(a_masks)), "o", "n"), (_step(b, "b", {}), "o", "n")]
    x, touched, loose = rng.getrandbits(width), rng.getrandbits(width), rng.getrandbits(width)
    got, nfo = native.flip(x, touched, loose, full, moved, 0.0, ())
    want_nfo = full & a_masks["o"] & b_masks["o"]
    nfn = full & a_masks["n"] & b_masks["n"]
    assert nfo == want_nfo
    assert got == ((x & touched & ~want_nfo) | (x & loose)) & nfn
    assert b.calls == ["o", "n"] and a.calls == []
    with pytest.raises(TypeError):
        native.flip(x, touched, loose, full, [(moved[0][0], "o")], 0.0, ())


def test_warm_reads_any_record_and_changes_nothing() -> None:
    record = {"a": 1, "b": "x", "c": [1, 2], "d": None}
    before = dict(record)
    assert native.warm(record) is None and record == before
    assert native.warm({}) is None and native.warm(["not", "a", "dict"]) is None

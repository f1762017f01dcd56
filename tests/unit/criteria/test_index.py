"""The transition index never misses a criteria flip (checked against brute force)."""

from __future__ import annotations

import importlib.util
import os
import random
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from crmflow.criteria import compile_group
from crmflow.criteria.index import TransitionIndex, norm_eq, terms_of
from crmflow.criteria.operators import Predicate, get_operator
from crmflow.criteria.values import equal
from crmflow.model.criteria import FilterGroup, PropertyFilter

NOW = datetime(2026, 6, 1, tzinfo=UTC)
_MS = int(NOW.timestamp() * 1000)
_DAY = 86_400_000
# "amount" and "seen_at" only ever get ordered / relative-date / known conditions: their masks
# are cached by region among the thresholds, the path the C loop takes for ints (_native.c)
PROPS = ["stage", "score", "city", "tags", "created", "owner", "amount", "seen_at", "labels"]
VALUES: dict[str, list[Any]] = {
    "stage": ["lead", "customer", "mql", None, ""],
    "score": [0, 5, 10, 50, "7", None, 99.5],
    "city": ["Aarhus", "Odense", "aalborg", None, "København"],
    "tags": [["a", "b"], "a;c", [], None, "b"],
    # read only as a set ("has any of" / "has none of" / known): lists are cached by their
    # items, whatever the order, repeats or case; non-string items are not
    "labels": [
        ["a", "b"],
        ["b", "a"],
        ["a", "b", "a"],
        ["A", "c"],
        ["c"],
        [1, "b"],
        [1.0, "b"],
        [True],
        [1],
        [],
        None,
        "a;b",
        "b",
    ],
    "created": [
        "2026-05-30",
        "2026-01-01T10:00:00Z",
        None,
        "2025-12-31",
        "2026-06-05",
        1780300800000,
        "2026-05-31T00:00:00Z",
        # boundaries of the relative-date operators: now, now - 7 days, now + 7 days
        "2026-06-01T00:00:00Z",
        "2026-05-25T00:00:00Z",
        "2026-06-08",
    ],
    "owner": ["u1", "u2", None],
    "amount": [0, 5, 10, 50, 49, 51, 4.5, 10.0, "10", -3, None, 2**60, 2**53 + 1],
    # epoch milliseconds on, beside and between the relative-date boundaries (0, 1, 7 and
    # 200 days either side of now), a date string, a float
    "seen_at": [
        *(
            _MS + sign * days * _DAY + delta
            for sign in (-1, 1)
            for days in (0, 1, 7, 200)
            for delta in (-1, 0, 1)
        ),
        _MS - 3 * _DAY,
        _MS + 30 * _DAY,
        "2026-05-30",
        float(_MS - _DAY),
        None,
        2**53 + 1,  # past exact double arithmetic: the C loop leaves these to nf
        2**70,
    ],
}


def random_filter(rng: random.Random) -> PropertyFilter:
    prop = rng.choice(PROPS)
    if prop == "amount":
        op = rng.choice(["gt", "gte", "lt", "lte", "between", "is_known", "is_unknown"])
        if op == "between":
            return PropertyFilter(
                property=prop, operator=op, values=sorted(rng.sample([0, 5, 10, 50], 2))
            )
        if op in ("is_known", "is_unknown"):
            return PropertyFilter(property=prop, operator=op)
        return PropertyFilter(property=prop, operator=op, value=rng.choice([0, 5, 10, 50, 4.5]))
    if prop == "labels":
        op = rng.choice(["in", "not_in", "is_known", "is_unknown"])
        if op in ("is_known", "is_unknown"):
            return PropertyFilter(property=prop, operator=op)
        return PropertyFilter(
            property=prop, operator=op, values=rng.sample(["a", "b", "c", "1", "true"], 2)
        )
    if prop == "seen_at":
        op = rng.choice(
            ["after", "before", "within_last_days", "within_next_days", "more_than_days_ago"]
        )
        if op in ("after", "before"):
            return PropertyFilter(
                property=prop, operator=op, value=rng.choice(["2026-05-25", _MS - 3 * _DAY])
            )
        return PropertyFilter(property=prop, operator=op, value=rng.choice([0, 1, 7, 200]))
    vals = [v for v in VALUES[prop] if v not in (None, "", [])]
    op = rng.choice(
        [
            "eq",
            "neq",
            "in",
            "not_in",
            "is_known",
            "is_unknown",
            "contains",
            "starts_with",
            "gt",
            "gte",
            "lt",
            "lte",
            "between",
            "after",
            "before",
            "within_last_days",
            "within_next_days",
            "more_than_days_ago",
            "has_all",
            "not_contains",
            "ends_with",
        ]
    )
    if op in ("gt", "gte", "lt", "lte", "between"):
        prop = "score"
        if op == "between":
            return PropertyFilter(
                property=prop, operator=op, values=sorted(rng.sample([0, 5, 10, 50], 2))
            )
        return PropertyFilter(property=prop, operator=op, value=rng.choice([0, 5, 10, 50]))
    if op in ("after", "before"):
        return PropertyFilter(
            property="created", operator=op, value=rng.choice(["2026-01-01", "2026-05-30"])
        )
    if op in ("within_last_days", "within_next_days", "more_than_days_ago"):
        return PropertyFilter(property="created", operator=op, value=rng.choice([0, 1, 7, 200]))
    if op in ("in", "not_in", "has_all"):
        flat = [x for v in vals for x in (v if isinstance(v, list) else [v])]
        return PropertyFilter(
            property=prop, operator=op, values=rng.sample(flat, min(2, len(flat))) or ["a"]
        )
    if op in ("is_known", "is_unknown"):
        return PropertyFilter(property=prop, operator=op)
    v = rng.choice(vals)
    if op in ("contains", "starts_with", "not_contains", "ends_with"):
        v = str(v if not isinstance(v, list) else "a")[:2]
    return PropertyFilter(property=prop, operator=op, value=v)


def random_group(rng: random.Random, depth: int = 0) -> FilterGroup:
    conj = rng.choice(["CONJUNCTION_AND", "CONJUNCTION_OR"])
    filters = [random_filter(rng) for _ in range(rng.randint(0 if depth else 1, 3))]
    groups = [random_group(rng, depth + 1) for _ in range(rng.randint(0, 2 if depth < 2 else 0))]
    return FilterGroup.model_validate({"conjunction": conj, "filters": filters, "groups": groups})


def random_record(rng: random.Random) -> dict[str, Any]:
    return {p: rng.choice(VALUES[p]) for p in PROPS if rng.random() < 0.8}


def random_value(rng: random.Random, prop: str) -> Any:
    """Mostly the property's own values; sometimes the values operators tell apart in odd
    ways (NaN, bools, 1 vs 1.0, numeric and date strings, epoch milliseconds, lists)."""
    if rng.random() < 0.85:
        return rng.choice(VALUES[prop])
    return rng.choice(ODD)


ODD: list[Any] = [
    "nan",
    float("nan"),
    True,
    False,
    1,
    1.0,
    "1",
    " 5 ",
    "5.0",
    [],
    [1, "a"],
    "A;B",
    "",
    "2026-05-31T23:00:00Z",
    1780000000000,
    "2026-06-03",
    "true",
]


def _source_module() -> ModuleType:
    """``index.py`` itself, loaded under another name: with the mypyc build installed, the
    import system serves the extension, so the pure module is tested from its source."""
    import crmflow.criteria.index as installed

    path = Path(installed.__file__).with_name("index.py")
    spec = importlib.util.spec_from_file_location("crmflow.criteria._index_source", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the body runs
    spec.loader.exec_module(module)
    assert not module.compiled()
    return module


@pytest.fixture(scope="module", params=["installed", "source", "python-loops"])
def index_module(request: pytest.FixtureRequest) -> ModuleType:
    """Every build of the index: what the install serves (the mypyc extension where it was
    compiled, with the C loop of _native.c, setup.py), the ``.py`` it is compiled from, and
    that ``.py`` with its own Python loops instead of the C ones."""
    if request.param != "installed":
        module = _source_module()
        if request.param == "python-loops":
            module.NATIVE = None
        return module
    import crmflow.criteria.index as installed

    return installed


def test_the_install_serves_the_compiled_index() -> None:
    """``make test`` expects the mypyc build (CRMFLOW_EXPECT_COMPILED): a failed compilation
    falls back to Python with only a warning at install time, and this is where it shows (a
    stale build stops the session: tests/conftest.py)."""
    import crmflow.criteria.index as installed

    if not os.environ.get("CRMFLOW_EXPECT_COMPILED"):
        pytest.skip("CRMFLOW_EXPECT_COMPILED is not set (only `make unit` / `make test` set it)")
    assert installed.compiled(), f"{installed.__file__} is not the mypyc extension"
    assert installed.NATIVE is not None, "the C loop (crmflow.criteria._native) is not built"


@pytest.mark.parametrize("cache_cap", [1, 128])
@pytest.mark.parametrize("seed", range(6))
def test_rising_and_falling_match_brute_force(
    seed: int, cache_cap: int, monkeypatch: pytest.MonkeyPatch, index_module: ModuleType
) -> None:
    """Against brute force on random criteria, records and changes (with keys removed and
    re-added on the way, so freed term bits are reused): the terms the bitsets find true are
    exactly the terms whose filters all hold; rising/falling never miss a flip and report
    exactly the flips for keys without loose terms (``flipped``); ``sure`` keys match.
    ``cache_cap`` 1: false masks recomputed on nearly every lookup (the cache is no crutch)."""
    monkeypatch.setattr(index_module, "CACHE_CAP", cache_cap)
    build = index_module.TransitionIndex  # the class of the build under test
    rng = random.Random(seed)
    groups = {i: random_group(rng) for i in range(150)}
    matchers = {i: compile_group(g) for i, g in groups.items()}
    idx: TransitionIndex[int] = build(max_terms=8)
    for i, g in groups.items():
        idx.add(i, g, matches_empty=matchers[i]({}, NOW, {}))
    flips = sures = 0
    for step in range(300):
        if step % 25 == 24:  # churn: a key removed, another replaced
            gone = rng.choice(list(groups))
            idx.remove(gone)
            del groups[gone], matchers[gone]
            k = max(groups) + 1
            groups[k] = random_group(rng)
            matchers[k] = compile_group(groups[k])
            idx.add(k, groups[k], matches_empty=matchers[k]({}, NOW, {}))
        old = {p: random_value(rng, p) for p in PROPS if rng.random() < 0.8}
        new = dict(old)
        changes = []
        for p in rng.sample(PROPS, rng.randint(1, 3)):
            n = random_value(rng, p)
            changes.append((p, old.get(p), n))
            new[p] = n
        for rec in (old, new):
            assert idx.true_terms(rec, NOW) == brute_true_terms(idx, groups, rec)
        # a few keys' terms tested on their own (the per-term path), every third step: exact
        # keys match iff one of their terms holds
        some = rng.sample(sorted(groups), 5) if step % 3 == 0 else []
        mask, all_exact = idx.key_mask(some)
        assert all_exact == all(not loose(groups[k]) for k in some)
        for rec in (old, new) if some else ():
            assert idx.holding(mask, rec, NOW) == brute_true_terms(idx, groups, rec) & mask
            for k in some:
                if not loose(groups[k]):
                    kmask, _ = idx.key_mask([k])
                    assert bool(idx.holding(kmask, rec, NOW)) == matchers[k](rec, NOW, {})
        want_up = {i for i, m in matchers.items() if m(new, NOW, {}) and not m(old, NOW, {})}
        want_down = {i for i, m in matchers.items() if m(old, NOW, {}) and not m(new, NOW, {})}
        sure: set[int] = set()
        flipped: set[int] = set()
        got_up = idx.rising(changes, NOW, new=new, sure=sure, flipped=flipped)
        # "sure" keys skip the caller's evaluation on the new record: they must match it
        assert sure <= got_up and all(matchers[i](new, NOW, {}) for i in sure)
        # keys without loose terms are decided on both states: exactly the flips
        exact = {i for i, g in groups.items() if not loose(g)}  # (memoised per group)
        assert got_up & exact == want_up & exact == flipped, (changes, flipped ^ want_up)
        sure_down: set[int] = set()
        gone: set[int] = set()
        got_down = idx.falling(changes, NOW, old=old, sure=sure_down, flipped=gone)
        assert all(matchers[i](old, NOW, {}) for i in sure_down)
        assert got_down & exact == want_down & exact == gone, (changes, gone ^ want_down)
        sures += len(sure)
        assert want_up <= idx.rising(changes, NOW)  # without the new record: a superset
        assert want_up <= got_up, (changes, want_up - got_up)
        assert want_down <= got_down, (changes, want_down - got_down)
        flips += len(want_up) + len(want_down)
        created = {i for i, m in matchers.items() if m(new, NOW, {})}
        got_created = idx.rising([(p, None, v) for p, v in new.items()], NOW, created=True, new=new)
        assert created <= got_created
    assert flips > 0  # the random workload does exercise flips
    assert sures > 0  # and the "decided on the new record" fast path


def loose(group: FilterGroup) -> bool:
    return any(t.loose for t in _terms(group))


_TERMS: dict[int, tuple[FilterGroup, list[Any]]] = {}


def _terms(group: FilterGroup) -> list[Any]:
    """terms_of(group, 8), worked out once per group object (the oracle asks every step)."""
    hit = _TERMS.get(id(group))
    if hit is None or hit[0] is not group:
        hit = _TERMS[id(group)] = (group, terms_of(group, 8))
    return hit[1]


def brute_true_terms(
    idx: TransitionIndex[int], groups: dict[int, FilterGroup], rec: dict[str, Any]
) -> int:
    """The bits of the terms whose required filters all hold on ``rec``, filter by filter
    with the operators' own predicates."""
    out = 0
    for key, group in groups.items():
        for (bit, _conds), term in zip(idx._terms_of[key], _terms(group), strict=True):
            if all(_pred(f)(rec.get(f.property), NOW) for f in term.required):
                out |= 1 << bit
    return out


_PREDS: dict[tuple[str, str, str], Predicate] = {}


def _pred(f: PropertyFilter) -> Predicate:
    sig = (f.operator, repr(f.value), repr(f.values))
    if sig not in _PREDS:
        _PREDS[sig] = get_operator(f.operator).make(f)
    return _PREDS[sig]


def test_index_is_selective() -> None:
    idx: TransitionIndex[int] = TransitionIndex()
    for i in range(1000):
        idx.add(
            i,
            FilterGroup(
                filters=[
                    PropertyFilter(property="stage", operator="eq", value=f"s{i % 100}"),
                    PropertyFilter(property="score", operator="gt", value=i),
                ]
            ),
        )
    got = idx.rising([("stage", "s1", "s2")], NOW)
    assert got == {i for i in range(1000) if i % 100 == 2}
    got = idx.rising([("score", 10, 12)], NOW)
    assert got == {10, 11}


def test_remove_and_replace() -> None:
    idx: TransitionIndex[str] = TransitionIndex()
    g = FilterGroup(filters=[PropertyFilter(property="stage", operator="eq", value="lead")])
    idx.add("a", g)
    idx.add("b", g)
    idx.remove("a")
    assert idx.rising([("stage", None, "lead")], NOW) == {"b"}
    assert len(idx) == 1


def test_dnf_expansion_and_cap() -> None:
    g = FilterGroup.model_validate(
        {
            "filters": [{"property": "a", "operator": "is_known"}],
            "groups": [
                {
                    "conjunction": "CONJUNCTION_OR",
                    "filters": [
                        {"property": "b", "operator": "is_known"},
                        {"property": "c", "operator": "is_known"},
                    ],
                }
            ],
        }
    )
    terms = terms_of(g)
    assert [[f.property for f in t.required] for t in terms] == [["a", "b"], ["a", "c"]]
    capped = terms_of(g, max_terms=1)
    # the OR group degrades to a loose term; "a" stays required
    assert [f.property for f in capped[0].required] == ["a"]
    assert capped[0].loose == {"b", "c"}


@pytest.mark.parametrize(
    "a,b",
    [(5, "5"), ("5.0", 5), (True, "true"), ("Lead", "lead"), ("x", "y"), (1, 2), ([1], "[1]")],
)
def test_norm_eq_agrees_with_equal(a: Any, b: Any) -> None:
    assert (norm_eq(a) == norm_eq(b)) == equal(a, b)


def test_in_filters_hold_on_multi_valued_and_cased_values() -> None:
    """``in`` conditions are found by each element of the new value (as_set, casefolded):
    a multi-valued or differently-cased value must still find them, a missing one none."""
    idx: TransitionIndex[int] = TransitionIndex()
    for i in range(200):
        idx.add(
            i,
            FilterGroup(
                filters=[
                    PropertyFilter(property="tags", operator="in", values=[f"T{i % 10}", "x"]),
                    PropertyFilter(property="score", operator="gt", value=i),
                ]
            ),
        )
    assert len(idx.rising([("score", -1, 1000)], NOW)) == 200
    sure: set[int] = set()
    got = idx.rising([("score", -1, 1000)], NOW, new={"score": 1000, "tags": "a;t3"}, sure=sure)
    assert got == sure == {i for i in range(200) if i % 10 == 3}
    got = idx.rising([("score", -1, 1000)], NOW, new={"score": 1000, "tags": ["X"]})
    assert got == set(range(200))
    assert idx.rising([("score", -1, 1000)], NOW, new={"score": 1000}) == set()
    for i in range(0, 200, 2):
        idx.remove(i)
    got = idx.rising([("score", -1, 1000)], NOW, new={"score": 1000, "tags": ["x"]})
    assert got == set(range(1, 200, 2))


def test_sure_only_for_exact_terms() -> None:
    """A term with a loose part (association filter) passing its checks is not "sure"."""
    idx: TransitionIndex[str] = TransitionIndex()
    g = FilterGroup.model_validate(
        {
            "filters": [
                {"property": "stage", "operator": "eq", "value": "lead"},
                {
                    "property": "amount",
                    "operator": "gt",
                    "value": 5,
                    "association": {"object_type": "deal"},
                },
            ]
        }
    )
    idx.add("assoc", g)
    idx.add("plain", FilterGroup(filters=[g.filters[0]]))
    sure: set[str] = set()
    got = idx.rising([("stage", None, "lead")], NOW, new={"stage": "lead"}, sure=sure)
    assert got == {"assoc", "plain"} and sure == {"plain"}


def test_shared_generic_filters_are_tested_once_and_removed_per_key() -> None:
    """Identical "contains" filters of many keys share one condition (one predicate call per
    new value); removing one key keeps the others, removing the last drops the condition."""
    idx: TransitionIndex[int] = TransitionIndex()
    contains = PropertyFilter(property="email", operator="contains", value="ACME")
    other = PropertyFilter(property="email", operator="contains", value="shop")
    for i in range(5):
        idx.add(i, FilterGroup(filters=[contains if i < 4 else other]))
    assert len(idx._props["email"].conds) == 2
    assert idx.rising([("email", "a@x.dk", "b@acme.dk")], NOW) == {0, 1, 2, 3}
    idx.remove(1)
    idx.add(2, FilterGroup(filters=[other]))  # re-added with another filter
    assert idx.rising([("email", "a@x.dk", "b@acme.dk")], NOW) == {0, 3}
    assert idx.rising([("email", "b@acme.dk", "c@shop.se")], NOW) == {2, 4}
    for i in (0, 3):
        idx.remove(i)
    assert len(idx._props["email"].conds) == 1


@pytest.mark.parametrize("width", [10, 64, 1_000, 5_000, 20_000])
def test_set_bits_on_every_path(width: int, index_module: ModuleType) -> None:
    """``_bits`` picks peeling, the binary text or the translated bytes by width and count:
    each path returns exactly the set bits."""
    rng = random.Random(width)
    for k in (0, 1, 2, 3, 10, 17, 100, 129, 500):
        if k > width:
            continue
        bits = rng.sample(range(width), k)
        x = sum(1 << b for b in bits)
        assert sorted(index_module._bits(x)) == sorted(bits)

"""A transition index: which criteria may have flipped because of one change?

The enrollment service keeps thousands of criteria (one or more per active workflow) and must
find, for one record change, the few whose result can have gone from "not matching" to
"matching" (enroll, goal met) or back (unenroll when criteria are no longer met) — without
evaluating them all.

Each criteria group is rewritten into terms (disjunctive normal form, capped): a group flips from
false to true only if one of its terms does, and a conjunctive term flips only if one of its
filters flips (its property changed) or a property it reads loosely changed.

Terms are evaluated as bitsets (one bit per term, Python ints), so the work per event is per
property, not per term. Per property and value, a mask of the terms with a condition on that
property that the value fails:

* ``eq`` / ``in`` by normalised value (dicts; a term's second condition of a kind on the same
  property goes to a second layer, so each layer stays exact),
* ``neq`` / ``not_in`` by value (the terms it fails directly),
* ordered operators (gt, gte, lt, lte, before, after; between split into two) as sorted
  thresholds with cumulative masks (one bisect),
* relative dates (within the last / next N days, more than N days ago) by binary search on the
  spans, with ``now`` per event (not cached),
* ``is_known`` / ``is_unknown`` as masks, everything else (contains, starts with...) by one
  predicate call per distinct condition,

cached per value (properties with only ordered conditions: per region among the thresholds).
A change's candidates are the terms that read a changed property, narrowed by the unchanged
properties' masks on the new record and then by the changed ones' (failing on an old value,
passing every new one); the other terms of those keys are then checked on the old record.
Keys without loose terms are decided exactly (``flipped``); the rest is a superset the caller
confirms with the compiled criteria. ``tests/unit/criteria/test_index.py`` checks all of it
against brute force.
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from crmflow.criteria.operators import Predicate, get_operator
from crmflow.criteria.values import as_number, as_set, as_text, as_timestamp, is_unknown
from crmflow.model.criteria import Conjunction, FilterGroup, PropertyFilter

# The C helpers in use (_native.c, built by setup.py; None: this module's own loops). Tests
# and the bench set it to None to run the Python loops beside them.
NATIVE: Any = None
try:
    from crmflow.criteria import _native

    NATIVE = _native
except ImportError:  # pragma: no cover - a build without a C compiler
    pass

K = TypeVar("K", bound=Hashable)

_UNSET = object()

# More terms than this and a sub-group is indexed loosely (by the properties it reads).
MAX_TERMS = 32
ASSOCIATION_PREFIX = "@assoc:"


def norm_eq(value: Any) -> Any:
    """A dict key such that norm_eq(a) == norm_eq(b) iff values.equal(a, b)."""
    if type(value) is str:  # enumeration values repeat: remember their keys
        key = _NORM_CACHE.get(value, _UNSET)
        if key is _UNSET:
            if len(_NORM_CACHE) > 100_000:
                _NORM_CACHE.clear()
            n = as_number(value)
            key = _NORM_CACHE[value] = n if n is not None else as_text(value)
        return key
    n = as_number(value)
    return n if n is not None else as_text(value)


_NORM_CACHE: dict[str, Any] = {}


@dataclass
class Term:
    """A conjunction: every filter in ``required`` must hold; ``loose`` properties are read
    somewhere we could not expand (association filters, huge OR groups)."""

    required: list[PropertyFilter] = field(default_factory=list)
    loose: set[str] = field(default_factory=set)


def _loose_props(group: FilterGroup) -> set[str]:
    out = set(group.properties())
    stack = [group]
    while stack:
        g = stack.pop()
        for f in g.filters:
            if f.association is not None:
                out.add(ASSOCIATION_PREFIX + f.association.object_type)
        stack.extend(g.groups)
    return out


def _split(f: PropertyFilter) -> list[PropertyFilter]:
    """``between lo, hi`` is ``gte lo`` and ``lte hi`` (same coercion), which the ordered
    structures index by bisect instead of testing every range on every change."""
    if f.operator != "between" or len(f.values) != 2:
        return [f]
    lo, hi = f.values
    numeric = as_number(lo) is not None and as_number(hi) is not None
    dates = (
        as_number(lo) is None
        and as_number(hi) is None
        and (as_timestamp(lo) is not None and as_timestamp(hi) is not None)
    )
    if not (numeric or dates):
        return [f]
    return [
        PropertyFilter(property=f.property, operator="gte", value=lo),
        PropertyFilter(property=f.property, operator="lte", value=hi),
    ]


def terms_of(group: FilterGroup, max_terms: int = MAX_TERMS) -> list[Term]:
    """The group as an OR of terms (DNF); over-large parts degrade to loose terms."""
    children: list[list[Term]] = []
    for f in group.all_filters():  # enrollment filters: plain filters on a virtual property
        if f.association is not None:
            children.append([Term(loose={ASSOCIATION_PREFIX + f.association.object_type})])
        else:
            children.append([Term(required=_split(f))])
    for g in group.groups:
        children.append(terms_of(g, max_terms))
    if not children:
        return [Term()]
    if group.conjunction == Conjunction.OR:
        out = [t for c in children for t in c]
        if len(out) > max_terms:
            return [Term(loose=_loose_props(group))]
        return out
    product = [Term()]
    for c in children:
        if len(product) * len(c) > max_terms:
            return [Term(loose=_loose_props(group))]
        product = [
            Term(required=[*a.required, *b.required], loose=a.loose | b.loose)
            for a in product
            for b in c
        ]
    return product


# ---------------------------------------------------------------------------------------------
# Terms as bitsets.
#
# Every term of every indexed group gets a bit. For one property p and one value v, the "false
# mask" F_p(v) holds the terms with a condition on p that v fails; a term holds on a record iff
# no property's false mask has its bit. F_p(v) is worked out by what the truth of p's
# conditions depends on (a dict lookup by normalised value for eq/in/neq/not_in, a bisect among
# sorted thresholds for ordered operators, a few predicate calls for the rest) and cached by
# value, so an event costs a few big-int operations per property, not a Python step per term.
# Masks are stored as what passes (``nf = live terms ^ F``): narrowing a candidate set is
# then one ``&=``.

_ORDERED = {"gt": "gt", "after": "gt", "gte": "gte", "lt": "lt", "before": "lt", "lte": "lte"}
_SPANS = ("within_last_days", "within_next_days", "more_than_days_ago")
# Cached masks per property (by value): enumerations hit, high-cardinality values (emails)
# miss and are recomputed; the cap (this plus twice the values the conditions name) bounds
# memory (each entry is a mask of every term).
CACHE_CAP = 128
# Candidate terms at or below which narrowing visits only the properties they read.
SMALL = 8
# Candidate terms at or below which the C loop tests each term on the properties it reads
# instead of and-ing every property's mask (``and_steps``).
PER_TERM = 8
# How many of the most-read properties narrow the candidates before the changed properties'
# masks (old and new values, with coercions) are worked out: a selective equality read by
# every term (one campaign of hundreds) often leaves none. Measured: 1 is as fast or faster
# than 0 on both bench workloads; the rest of the unchanged properties come after.
HEAD = 1
# Properties with only ordered conditions cache by region (at most 2 per threshold + 1).
REGION_CACHE_CAP = 8192
# typed as a plain object: mypyc would otherwise re-box the tuple at every use
_NONE_KEY: Hashable = ("none",)
# ``_Prop.step`` kinds (_native.c): how the C loop looks a value's mask up before calling nf
_K_FAST, _K_REGION, _K_SPANS, _K_CALL, _K_SET = 0, 1, 2, 3, 4
_NO_STEPS: list[tuple[Any, ...]] = []
_SPAN_CODES = {"within_last_days": 0, "within_next_days": 1, "more_than_days_ago": 2}


def _vkey(v: Any) -> Hashable | None:
    """A cache key that tells apart every two values the operators may tell apart (1, 1.0
    and True are equal dict keys but not equal operands: the type is part of the key)."""
    tv = type(v)
    if tv is str:
        return v
    if v is None:
        return _NONE_KEY
    if tv is int or tv is float or tv is bool:
        return (tv, v)
    if tv is list:
        try:
            k: Hashable = ("list", tuple((type(x), x) for x in v))
            hash(k)
        except TypeError:
            return None
        return k
    try:
        k = (tv, v)
        hash(k)
    except TypeError:
        return None
    return k


# The last ``now`` and its POSIX seconds: the calls one event makes (rising, then the
# enrolled workflows' stay tests) share one ``now``, and an aware datetime's timestamp()
# costs two timedelta operations.
_NOW_T: tuple[Any, float] = (None, 0.0)


def _timestamp(now: datetime) -> float:
    global _NOW_T
    memo = _NOW_T
    if memo[0] is now:
        t: float = memo[1]
        return t
    t = now.timestamp()
    _NOW_T = (now, t)
    return t


def _step_cost(step: tuple[Any, ...]) -> int:
    """How dear a step's lookup is: by value (str, set) first, by region, then by call."""
    kind: int = step[2]
    return _K_FAST if kind == _K_SET else kind


def _set_key(v: Any) -> Hashable | None:
    """``_vkey`` for a property whose conditions read a value as a set of items: a list of
    strings is keyed by its frozenset (one key whatever the order or repeats)."""
    if type(v) is list:
        for x in v:
            if type(x) is not str:
                return _vkey(v)
        return frozenset(v)
    return _vkey(v)


def _region_among(cs: list[float], x: float | None) -> int:
    """Where ``x`` falls among the sorted thresholds ``cs``: 2i between thresholds i-1 and i,
    2i+1 exactly at threshold i, -1 no value (None or NaN)."""
    if x is None or x != x:
        return -1
    i = bisect.bisect_left(cs, x)
    return 2 * i + (i < len(cs) and cs[i] == x)


def _ts_or_none(v: Any) -> float | None:
    try:
        return as_timestamp(v)
    except (OverflowError, OSError, ValueError):
        return None


class _Cond:
    """One distinct condition on a property and the terms (bits) that contain it."""

    __slots__ = ("f", "mask")

    def __init__(self, f: PropertyFilter) -> None:
        self.f = f
        self.mask = 0


class _Sorted:
    """Conditions of one ordered family as sorted thresholds and cumulative masks: the
    conditions a value fails are a prefix or a suffix of the sorted order."""

    __slots__ = ("all", "cs", "cum")

    def __init__(self, pairs: list[tuple[float, int]], suffix: bool) -> None:
        merged: dict[float, int] = {}
        for c, m in pairs:
            merged[c] = merged.get(c, 0) | m
        self.cs = sorted(merged)
        masks = [merged[c] for c in self.cs]
        acc = 0
        if suffix:  # cum[i] = OR of masks[i:]
            cum = [0] * (len(masks) + 1)
            for i in range(len(masks) - 1, -1, -1):
                acc |= masks[i]
                cum[i] = acc
        else:  # cum[i] = OR of masks[:i]
            cum = [0]
            for m in masks:
                acc |= m
                cum.append(acc)
        self.cum = cum
        self.all = acc


class _Prop:
    """Everything indexed for one property: its conditions, the terms that read it, and the
    structures derived from the conditions (rebuilt after edits) that give false masks."""

    __slots__ = (
        "by_region",
        "cache",
        "cap",
        "conds",
        "eq_all",
        "eq_layers",
        "fast",
        "generic",
        "in_all",
        "in_layers",
        "known",
        "loose",
        "name",
        "neq_false",
        "notin_false",
        "num",
        "num_cs",
        "pid",
        "raw",
        "raw_int",
        "region_codes",
        "set_only",
        "spans",
        "step",
        "touch",
        "ts",
        "ts_cs",
        "universe",
        "unknown",
    )

    def __init__(self, name: str, pid: int = 0) -> None:
        self.name = name
        self.pid = pid  # its number in the index (the C loop's per-term tables)
        self.conds: dict[tuple[str, str, str], _Cond] = {}
        self.touch = 0  # terms with a condition on this property
        self.loose = 0  # terms that read it loosely (association, over-large OR)
        self.universe = 0  # every live term of the index (set by the index)
        self.rebuild()

    def rebuild(self) -> None:
        self.cache: dict[Hashable, int] = {}
        self.raw: dict[Hashable, int] = {}  # by-region properties: value -> mask
        self.raw_int: dict[int, int] = {}  # the same for exact ints (the C loop reads it)
        # the C loop's own view of ``cache`` for exact ints: region code -> mask, a small int
        # key instead of a (numeric, date, unknown) tuple built per lookup
        self.region_codes: dict[int, int] = {}
        self.step: tuple[Any, ...] = ()  # what the C loop reads (``_step``)
        # eq / in: per value, the terms whose condition that value meets. A term with two
        # such conditions on one property would be wrongly kept by the one that holds, so
        # they are layered: a term's k-th condition of the kind goes to layer k, and each
        # layer (value -> terms, all its terms) is exact on its own.
        self.eq_layers: list[tuple[dict[Any, int], int]] = []
        self.in_layers: list[tuple[dict[str, int], int]] = []
        eq_layers: list[list[Any]] = []
        in_layers: list[list[Any]] = []
        # neq / not_in: per value, the terms whose condition that value fails.
        self.neq_false: dict[Any, int] = {}
        self.notin_false: dict[str, int] = {}
        self.known = self.unknown = 0
        num: dict[str, list[tuple[float, int]]] = {}
        ts: dict[str, list[tuple[float, int]]] = {}
        spans: dict[str, list[tuple[float, int]]] = {}
        self.generic: list[tuple[Predicate, int]] = []
        for cond in self.conds.values():
            f, m = cond.f, cond.mask
            op = f.operator
            if op in ("eq", "neq") and not is_unknown(f.value):
                k = norm_eq(f.value)
                if k != k:  # NaN: never equal; the predicate says so
                    self.generic.append((get_operator(op).make(f), m))
                elif op == "neq":
                    self.neq_false[k] = self.neq_false.get(k, 0) | m
                else:
                    _layer(eq_layers, m, (k,))
            elif op in ("in", "not_in"):
                wanted = {as_text(x) for x in f.values}
                if op == "not_in":
                    for w in wanted:
                        self.notin_false[w] = self.notin_false.get(w, 0) | m
                    continue
                _layer(in_layers, m, wanted)
            elif op in _ORDERED:
                # the operator's own coercion: a numeric operand compares numbers, else dates
                n = as_number(f.value)
                fam = _ORDERED[op]
                if n is not None and n == n:
                    num.setdefault(fam, []).append((n, m))
                elif n is None and (t := _ts_or_none(f.value)) is not None and t == t:
                    ts.setdefault(fam, []).append((t, m))
                else:  # never true (NaN or an operand that is no date)
                    self.generic.append((get_operator(op).make(f), m))
            elif op in _SPANS:
                days = as_number(f.value) or 0
                try:
                    span = timedelta(days=days).total_seconds()
                except (OverflowError, ValueError):
                    self.generic.append((get_operator(op).make(f), m))
                    continue
                spans.setdefault(op, []).append((span, m))
            elif op == "is_known":
                self.known |= m
            elif op == "is_unknown":
                self.unknown |= m
            else:
                self.generic.append((get_operator(op).make(f), m))
        self.eq_layers = [(d, a) for d, a, _seen in eq_layers]
        self.in_layers = [(d, a) for d, a, _seen in in_layers]
        self.eq_all = 0
        for _d, a in self.eq_layers:
            self.eq_all |= a
        self.in_all = 0
        for _d, a in self.in_layers:
            self.in_all |= a
        # gt fails for thresholds >= x and gte for > x (suffixes); lt, lte the mirror image
        self.num = tuple((fam, _Sorted(p, fam in ("gt", "gte"))) for fam, p in num.items())
        self.ts = tuple((fam, _Sorted(p, fam in ("gt", "gte"))) for fam, p in ts.items())
        self.spans = tuple((op, _Sorted(p, op == "more_than_days_ago")) for op, p in spans.items())
        # Only ordered and known/unknown conditions: the false mask depends on the value only
        # through where it falls among the thresholds (below, at or above each), so it is
        # cached by that region: amounts and timestamps, all distinct, share a few entries.
        self.by_region = not (
            self.eq_all or self.in_all or self.neq_false or self.notin_false or self.generic
        )
        self.num_cs = sorted({c for _f, s in self.num for c in s.cs})
        self.ts_cs = sorted({c for _f, s in self.ts for c in s.cs})
        # a string value's mask is one dict lookup (the index's hot loop inlines it)
        self.fast = not self.by_region and not self.spans
        # only "has any of" / "has none of" / known / unknown: a multi-select value (a list)
        # counts as the set of its items, so a list of strings is cached by its frozenset
        # (the order of the items and repeats do not change the mask)
        self.set_only = (
            self.fast
            and bool(self.in_layers or self.notin_false)
            and not (self.eq_layers or self.neq_false or self.generic or self.num or self.ts)
        )
        # room for every value a condition names (500 campaigns), and as many others
        keys = len(self.neq_false) + len(self.notin_false)
        for d, _a in self.eq_layers:
            keys += len(d)
        for d, _a in self.in_layers:
            keys += len(d)
        self.cap = CACHE_CAP + 2 * keys
        self.step = self._step()

    def _step(self) -> tuple[Any, ...]:
        """What the C loop (_native.c ``and_steps``) reads to find this property's mask
        without calling ``nf``: the caches, and for region-cached properties the thresholds
        and relative-date spans (floats and masks, as ``_region`` and ``_span_false`` use)."""
        if self.fast:  # a str / None value (a list of str: set_only): one cache lookup
            kind = _K_SET if self.set_only else _K_FAST
        elif not self.by_region:
            kind = _K_CALL
        else:  # by region among the thresholds (then the relative dates at ``t``)
            kind = _K_SPANS if self.spans else _K_REGION
        spans = tuple((_SPAN_CODES[op], s.cs, s.cum, s.all) for op, s in self.spans)
        floats = [*self.num_cs, *self.ts_cs, *(c for _op, s in self.spans for c in s.cs)]
        if not all(type(c) is float for c in floats):  # never so; the C loop reads doubles
            kind = _K_CALL
        return (
            self,
            self.name,
            kind,
            self.cache,
            self.raw,
            self.raw_int,
            self.num_cs or None,
            self.ts_cs or None,
            spans,
            self.pid,
            self.region_codes,
        )

    def nf(self, v: Any, t: float) -> int:
        """The live terms except those with a condition on this property that ``v`` fails
        (``t``: now, POSIX seconds, for the relative-date operators). Kept non-negative
        (``universe ^ F``, not ``~F``): ``&`` with a negative int costs 4x more."""
        rd: dict[Any, int] = self.raw
        if self.by_region:
            # the same number again (small counters, scores): no coercion
            if type(v) is int:
                raw: Hashable | None = v
                rd = self.raw_int
            else:
                raw = _vkey(v)
            r = rd.get(raw) if raw is not None else None
            if r is not None:
                if self.spans:
                    r ^= r & self._span_false(v, t)
                return r
            k = self._region(v)
            cap = REGION_CACHE_CAP
        else:
            k = v if type(v) is str else _set_key(v) if self.set_only else _vkey(v)
            cap = self.cap
        if k is None:
            r = self.universe ^ self._static_false(v)
        else:
            r = self.cache.get(k)  # type: ignore[assignment]
            if r is None:
                if len(self.cache) >= cap:
                    self.cache.clear()
                r = self.cache[k] = self.universe ^ self._static_false(v)
            if self.by_region and raw is not None:
                if len(rd) >= CACHE_CAP:
                    rd.clear()
                rd[raw] = r
        if self.spans:
            r ^= r & self._span_false(v, t)
        return r

    def _region(self, v: Any) -> Hashable:
        """(numeric region, date region, unknown): region 2i is between thresholds i-1 and i,
        2i+1 exactly at threshold i, -1 no number / date."""
        if type(v) is int:  # amounts, counters, epoch milliseconds: values.py's coercions
            # inlined (float(v); v / 1000; never unknown), the calls cost more than the work
            rn = _region_among(self.num_cs, float(v)) if self.num_cs else -1
            try:
                ts: float | None = v / 1000
            except OverflowError:
                ts = None
            rt = _region_among(self.ts_cs, ts) if self.ts_cs else -1
            return (rn, rt, False)
        rn = _region_among(self.num_cs, as_number(v)) if self.num_cs else -1
        rt = _region_among(self.ts_cs, _ts_or_none(v)) if self.ts_cs else -1
        return (rn, rt, is_unknown(v))

    def _static_false(self, v: Any) -> int:
        unknown = is_unknown(v)
        out = 0
        if unknown:
            out = self.eq_all | self.in_all | self.known
        else:
            out = self.unknown
            if self.eq_all or self.neq_false:
                k = norm_eq(v)
                if k != k:
                    out |= self.eq_all
                else:
                    for d, a in self.eq_layers:  # d[k] is a subset of a
                        out |= a ^ d.get(k, 0)
                    if self.neq_false:
                        out |= self.neq_false.get(k, 0)
            if self.in_all or self.notin_false:
                elems = as_set(v)
                for d, a in self.in_layers:
                    hit = 0
                    for e in elems:
                        hit |= d.get(e, 0)
                    out |= a ^ hit
                if self.notin_false:
                    notin = self.notin_false
                    for e in elems:
                        out |= notin.get(e, 0)
        if self.num:
            out |= _ordered_false(self.num, as_number(v))
        if self.ts:
            out |= _ordered_false(self.ts, _ts_or_none(v))
        for pred, m in self.generic:
            if not pred(v, _EPOCH):  # static operators: ``now`` is not read
                out |= m
        return out

    def _span_false(self, v: Any, t: float) -> int:
        if type(v) is int:  # epoch milliseconds (as_timestamp's fast path, inlined)
            try:
                x: float | None = v / 1000
            except OverflowError:
                x = None
        else:
            x = _ts_or_none(v)
        out = 0
        for op, s in self.spans:
            if x is None or x != x:
                out |= s.all
                continue
            cs = s.cs
            lo, hi = 0, len(cs)
            # the predicates' own float expressions, binary-searched (monotone in the span)
            if op == "within_last_days":  # true iff t - span <= x <= t
                if x > t:
                    out |= s.all
                    continue
                while lo < hi:  # fails for the spans with t - span > x (a prefix)
                    mid = (lo + hi) // 2
                    if t - cs[mid] > x:
                        lo = mid + 1
                    else:
                        hi = mid
            elif op == "within_next_days":  # true iff t <= x <= t + span
                if x < t:
                    out |= s.all
                    continue
                while lo < hi:  # fails for the spans with x > t + span (a prefix)
                    mid = (lo + hi) // 2
                    if x > t + cs[mid]:
                        lo = mid + 1
                    else:
                        hi = mid
            else:  # more_than_days_ago: true iff x < t - span; fails from the first span
                while lo < hi:  # with x >= t - span on (a suffix)
                    mid = (lo + hi) // 2
                    if x >= t - cs[mid]:
                        hi = mid
                    else:
                        lo = mid + 1
            out |= s.cum[lo]
        return out


def _layer(layers: list[list[Any]], m: int, values: Iterable[Any]) -> None:
    """File condition terms ``m`` under ``values`` in the first layer where each term has no
    condition of the kind yet (layer: [value -> terms, all terms, terms seen])."""
    i = 0
    while m:
        if i == len(layers):
            layers.append([{}, 0, 0])
        layer = layers[i]
        part = m & ~layer[2]
        if part:
            d = layer[0]
            for w in values:
                d[w] = d.get(w, 0) | part
            layer[1] |= part
            layer[2] |= part
            m ^= part
        i += 1


def _ordered_false(fams: tuple[tuple[str, _Sorted], ...], x: float | None) -> int:
    out = 0
    if x is None or x != x:  # no number / date (or NaN): every comparison is false
        for _fam, s in fams:
            out |= s.all
        return out
    for fam, s in fams:
        if fam == "gt":  # x > c fails for c >= x
            out |= s.cum[bisect.bisect_left(s.cs, x)]
        elif fam == "gte":  # x >= c fails for c > x
            out |= s.cum[bisect.bisect_right(s.cs, x)]
        elif fam == "lt":  # x < c fails for c <= x
            out |= s.cum[bisect.bisect_right(s.cs, x)]
        else:  # lte: x <= c fails for c < x
            out |= s.cum[bisect.bisect_left(s.cs, x)]
    return out


_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


_NO_BITS: frozenset[int] = frozenset()


def compiled() -> bool:
    """Is this module the mypyc-compiled build of itself (setup.py), not the ``.py``?"""
    return not __file__.endswith(".py")


def _bits(x: int) -> list[int]:
    """The set bits of ``x``: one pass over its digits with the C helper; else by whichever
    costs least for its width and count (measured): few bits, or a narrow index: peel the
    lowest (each step and-s the whole int); many bits: one pass over its binary text; a
    handful in a wide index (10,000 workflows, 15,700 bits): its bytes, the non-zero ones
    found by ``find`` on a translated copy (C loops, ~2x the other two there)."""
    native = NATIVE
    if native is not None:
        found: list[int] = native.bits(x)
        return found
    out: list[int] = []
    n = x.bit_count()
    wide = x.bit_length() > 4096
    if n <= 2 or (n <= 16 and not wide):
        while x:
            low = x & -x
            out.append(low.bit_length() - 1)
            x ^= low
        return out
    if wide and n <= 128:
        b = x.to_bytes((x.bit_length() + 7) // 8, "little")
        t = b.translate(_NONZERO)
        i = t.find(1)
        while i >= 0:
            v = b[i]
            base = i * 8
            while v:
                low = v & -v
                out.append(base + low.bit_length() - 1)
                v ^= low
            i = t.find(1, i + 1)
        return out
    s_ = bin(x)
    top = len(s_) - 1
    i = s_.find("1", 2)
    while i >= 0:
        out.append(top - i)
        i = s_.find("1", i + 1)
    return out


def _from_bits(positions: list[int]) -> int:
    """The int with exactly the bits ``positions`` set."""
    native = NATIVE
    if native is not None:
        y: int = native.from_bits(positions)
        return y
    y = 0
    for b in positions:
        y |= 1 << b
    return y


# byte -> 1 if it has any bit set (``_bits``)
_NONZERO = bytes([0] + [1] * 255)


class TransitionIndex(Generic[K]):
    """Criteria groups keyed by ``K``; finds the keys one change flipped.

    Every DNF term of every group is one bit. For a change, the terms that can have flipped
    false -> true are those reading a changed property, true on the changed properties' new
    values and false on their old ones (two false masks per changed property); with the new
    record known, they are then narrowed by the false masks of the other properties' values
    (stopping as soon as none is left). Terms without loose parts are then exact: their groups
    certainly match the new record (``sure``).
    """

    def __init__(self, max_terms: int = MAX_TERMS) -> None:
        self._props: dict[str, _Prop] = {}
        self._term_key: list[K | None] = []  # bit -> key
        self._term_props: list[tuple[_Prop, ...]] = []  # bit -> properties it has conditions on
        self._term_pids: list[tuple[int, ...]] = []  # the same as ``_Prop.pid`` (the C loop)
        self._by_pid: list[_Prop] = []  # every property, by ``_Prop.pid``
        self._pid_steps: list[tuple[Any, ...]] = []  # their ``_Prop.step``, by pid
        self._free: list[int] = []  # bits of removed terms, reused
        self._all = 0
        self._exact = 0  # terms without loose parts
        self._terms_of: dict[K, list[tuple[int, list[tuple[_Prop, tuple[str, str, str]]]]]] = {}
        # key -> its terms' bit positions, and bit -> "no loose part": the per-key decisions
        # test positions in small sets instead of and-ing masks as wide as the index
        self._key_bits: dict[K, tuple[int, ...]] = {}
        self._term_kbits: list[tuple[int, ...]] = []  # bit -> its key's bits (the C decide)
        self._term_exact: list[bool] = []
        self._dirty: set[_Prop] = set()
        self._order: list[_Prop] = []  # properties with conditions, most-read first
        self._steps: list[tuple[Any, ...]] = []  # their ``_Prop.step`` (the C loop), in order
        self._steps_head: list[tuple[Any, ...]] = []  # the first HEAD of them
        self._steps_tail: list[tuple[Any, ...]] = []  # the others
        self._order_dirty = False
        # Keys whose criteria an empty record already meets (checked on record creation).
        self._match_empty: set[K] = set()
        self._max_terms = max_terms

    def __len__(self) -> int:
        return len(self._terms_of)

    def __contains__(self, key: object) -> bool:
        return key in self._terms_of

    def keys(self) -> Iterable[K]:
        return self._terms_of.keys()

    def _prop(self, name: str) -> _Prop:
        pi = self._props.get(name)
        if pi is None:
            pi = self._props[name] = _Prop(sys.intern(name), len(self._by_pid))
            self._by_pid.append(pi)
        return pi

    def add(self, key: K, group: FilterGroup, *, matches_empty: bool = False) -> None:
        if key in self._terms_of:
            self.remove(key)
        terms = []
        for term in terms_of(group, self._max_terms):
            if self._free:
                b = self._free.pop()
            else:
                b = len(self._term_key)
                self._term_key.append(None)
                self._term_props.append(())
                self._term_pids.append(())
                self._term_kbits.append(())
                self._term_exact.append(False)
            self._term_key[b] = key
            bit = 1 << b
            conds = []
            for f in term.required:
                pi = self._prop(f.property)
                sig = (f.operator, repr(f.value), repr(f.values))
                c = pi.conds.get(sig)
                if c is None:
                    c = pi.conds[sig] = _Cond(f)
                c.mask |= bit
                pi.touch |= bit
                self._dirty.add(pi)
                conds.append((pi, sig))
            for p in term.loose:
                pi = self._prop(p)
                pi.loose |= bit
                conds.append((pi, ("", "", "")))
            self._term_props[b] = tuple({pi: None for pi, sig in conds if sig[0]})
            self._term_pids[b] = tuple(pi.pid for pi in self._term_props[b])
            self._all |= bit
            if not term.loose:
                self._exact |= bit
            self._term_exact[b] = not term.loose
            terms.append((b, conds))
        self._terms_of[key] = terms
        kb = self._key_bits[key] = tuple(b for b, _c in terms)
        for b in kb:
            self._term_kbits[b] = kb
        self._order_dirty = True
        if matches_empty:
            self._match_empty.add(key)

    def remove(self, key: K) -> None:
        for b, conds in self._terms_of.pop(key, ()):
            nb = ~(1 << b)
            for pi, sig in conds:
                pi.touch &= nb
                pi.loose &= nb
                c = pi.conds.get(sig)
                if c is not None:
                    c.mask &= nb
                    if not c.mask:
                        del pi.conds[sig]
                    self._dirty.add(pi)
            self._all &= nb
            self._exact &= nb
            self._term_key[b] = None
            self._term_props[b] = ()
            self._term_pids[b] = ()
            self._term_kbits[b] = ()
            self._term_exact[b] = False
            self._free.append(b)
        self._key_bits.pop(key, None)
        self._order_dirty = True
        self._match_empty.discard(key)

    def _refresh(self) -> None:
        for pi in self._dirty:
            pi.rebuild()
        self._dirty.clear()
        if self._order_dirty:  # terms added or removed: cached masks hold the old universe
            for pi in self._props.values():
                pi.universe = self._all
                pi.cache.clear()
                pi.raw.clear()
                pi.raw_int.clear()
                pi.region_codes.clear()
            live = [pi for pi in self._props.values() if pi.touch]
            live.sort(key=lambda pi: -pi.touch.bit_count())
            self._order = live
            self._steps = [pi.step for pi in live]
            # The C loop takes the properties whose masks are cached by value (strings) before
            # the region-cached ones and those that need a call (lists, mixed conditions):
            # the candidates are often gone before the dearer ones. The order changes the
            # cost, not the answer.
            self._steps_head = self._steps[:HEAD]
            self._steps_tail = sorted(self._steps[HEAD:], key=_step_cost)
            self._order_dirty = False
        self._pid_steps = [pi.step for pi in self._by_pid]

    def true_terms(self, record: Mapping[str, Any], now: datetime) -> int:
        """The terms whose conditions ``record`` meets (loose parts not checked)."""
        if self._dirty or self._order_dirty:
            self._refresh()
        t = _timestamp(now)
        x = self._all
        native = NATIVE
        if native is not None and type(record) is dict:
            x = native.and_steps(x, self._steps, record, {}, {}, t, -1, _NONE_KEY)
            return x
        get = record.get
        for pi in self._order:
            x &= pi.nf(get(pi.name), t)
            if not x:
                break
        return x

    def key_mask(self, keys: Iterable[K]) -> tuple[int, bool]:
        """The terms of ``keys`` as a mask, and whether none of them has a loose part (then
        ``holding`` decides whether those keys' criteria match a record). Valid until one of
        the keys is removed or added again."""
        bits = [b for k in keys for b in self._key_bits[k]]
        return _from_bits(bits), all(self._term_exact[b] for b in bits)

    def holding(self, mask: int, record: Mapping[str, Any], now: datetime) -> int:
        """The terms of ``mask`` (``key_mask``) whose conditions ``record`` meets, each tested
        on the properties it reads (loose parts not checked)."""
        if self._dirty or self._order_dirty:
            self._refresh()
        native = NATIVE
        if native is not None and type(record) is dict:
            x: int = native.and_steps(
                mask,
                _NO_STEPS,
                record,
                {},
                {},
                _timestamp(now),
                len(self._term_key),  # every term at once: straight to the per-term test
                _NONE_KEY,
                self._term_pids,
                self._pid_steps,
            )
            return x
        return self.true_terms(record, now) & mask

    def rising(
        self,
        changes: Iterable[tuple[str, Any, Any]],
        now: datetime,
        *,
        created: bool = False,
        new: Mapping[str, Any] | None = None,
        sure: set[K] | None = None,
        flipped: set[K] | None = None,
    ) -> set[K]:
        """Keys whose criteria may have gone false -> true by ``(property, old, new)`` changes.

        ``created``: the record is new (it matched nothing before): every key whose criteria
        may hold on it (``new``, else the changes' new values), and those an empty record
        meets. ``new``: the record after the change; without it the other properties are
        not checked and the answer is a superset. ``sure`` (with ``new``): receives the
        returned keys whose criteria certainly match ``new`` (a term without loose parts
        holds), so callers need not evaluate them on it. ``flipped`` (with ``new``, not
        ``created``): receives the returned keys that certainly went false -> true (exact
        terms on both states: the old record is ``new`` with the changes' old values), which
        callers need not evaluate at all; the other returned keys they confirm.
        """
        if self._dirty or self._order_dirty:
            self._refresh()
        out: set[K] = set(self._match_empty) if created else set()
        if created:
            rec = new if new is not None else {p: n for p, _o, n in changes}
            x = self.true_terms(rec, now)
            return self._keys(x, out, sure)
        t = _timestamp(now)
        props = self._props
        touched = loose = 0
        changed: dict[str, Any] = {}
        moved: list[tuple[_Prop, Any, Any]] = []
        for p, o, n in changes:
            if o is n:
                continue
            pi = props.get(p)
            if pi is None:
                continue
            changed[p] = n
            loose |= pi.loose
            if pi.touch:
                touched |= pi.touch
                moved.append((pi, o, n))
        # Candidates: the terms that read a changed property, narrowed by the most-read
        # unchanged property, by the changed properties, then by the other unchanged
        # properties' masks on the new record (property by property while many terms are
        # left; once few are, only the properties those terms read: ``_narrow``).
        x = touched | loose
        if not x:
            return out
        seen: dict[_Prop, int] = {}  # unchanged property -> its mask, reused for the old state
        get = new.get if new is not None else None
        order = self._order
        head = HEAD if get is not None else 0
        native = NATIVE
        if native is not None:  # the record is new to the CPU cache: fetch it at once
            native.warm(new)
        # the most-read property first (one campaign of hundreds)
        if head and native is not None and type(new) is dict:
            x = native.and_steps(x, self._steps_head, new, changed, seen, t, -1, _NONE_KEY)
            if not x:
                return out
        else:
            for pi in order[:head]:
                if get is not None and pi.name not in changed:
                    h = seen[pi] = pi.nf(get(pi.name), t)
                    x &= h
                    if not x:
                        return out
        # flipped on the changed properties: a condition failed on an old value, none fails
        # on a new one (loose terms: a loosely read property changed, or the same)
        if native is not None:  # the same in C, from the steps' caches
            x, nfo = native.flip(
                x, touched, loose, self._all, [(pi.step, o, n) for pi, o, n in moved], t, _NONE_KEY
            )
        else:
            nfo = nfn = self._all
            for pi, o, n in moved:
                nfo &= pi.nf(o, t)
                nfn &= pi.nf(n, t)
            xt = x & touched
            x = ((xt ^ (xt & nfo)) | (x & loose)) & nfn
        if not x:
            return out
        if native is not None and type(new) is dict:
            # The C loop: every unchanged property (the cached ones first) while more than
            # PER_TERM terms are left, then each term on the properties it reads; no
            # ``_narrow`` after it. The changed properties are skipped by id.
            skip = [pi.pid for pi, _o, _n in moved]
            x = native.and_steps(
                x,
                self._steps_tail,
                new,
                changed,
                seen,
                t,
                PER_TERM,
                _NONE_KEY,
                self._term_pids,
                self._pid_steps,
                skip,
            )
            if not x:
                return out
            if flipped is None:
                return self._keys(x, out, sure)
            return self._decide(x, nfo, changed, seen, new, t, out, sure, flipped, skip)
        if get is not None:
            small = SMALL
            i = 0
            for pi in order[head:] if head else order:
                name = pi.name
                if name in changed:
                    continue
                v = get(name)
                if pi.fast:  # strings and missing values: one dict lookup, no call
                    m = pi.cache.get(v if type(v) is str else _NONE_KEY if v is None else ())
                    if m is None:
                        m = pi.nf(v, t)
                else:
                    m = pi.nf(v, t)
                x &= m
                if not x:
                    return out
                seen[pi] = m
                i += 1
                # a popcount is not free: after the first property, then every 4th
                if (i == 1 or not i & 3) and x.bit_count() <= small:
                    break
        if new is None:
            return self._keys(x, out, None)
        x = self._narrow(x, changed, seen, new, t)
        if not x:
            return out
        if flipped is None:
            return self._keys(x, out, sure)
        return self._decide(x, nfo, changed, seen, new, t, out, sure, flipped)

    def _narrow(
        self,
        x: int,
        changed: Mapping[str, Any],
        seen: dict[_Prop, int],
        new: Mapping[str, Any],
        t: float,
    ) -> int:
        """``x`` narrowed by the masks of the unchanged properties its terms read (masks
        already in ``seen`` were applied by the caller when ``x`` was formed, but re-applying
        them is harmless; masks computed here are added to ``seen``). The Python loops' step:
        with the C helpers, and_steps / decide narrow per term themselves."""
        need: Iterable[_Prop]
        many = x.bit_count() > 4 * SMALL  # many terms read nearly every property anyway
        if many:
            need = self._order
        else:
            term_props = self._term_props
            need = set()
            for b in _bits(x):
                need.update(term_props[b])
        get = new.get
        for pi in need:
            name = pi.name
            if name in changed:
                continue
            m = seen.get(pi)
            if m is None:
                v = get(name)
                if pi.fast:
                    m = pi.cache.get(v if type(v) is str else _NONE_KEY if v is None else ())
                if m is None:
                    m = pi.nf(v, t)
                seen[pi] = m
            x &= m
            if not x:
                return 0
        return x

    def _decide(
        self,
        x: int,
        nfo: int,
        changed: Mapping[str, Any],
        seen: dict[_Prop, int],
        new: Mapping[str, Any],
        t: float,
        out: set[K],
        sure: set[K] | None,
        flipped: set[K],
        skip: list[int] | None = None,
    ) -> set[K]:
        """Keys of the flipped terms ``x``, decided on the old state too: the other terms of
        those keys that held on the old record (``nfo``: the changed properties' old values;
        ``seen``: the unchanged ones, completed as needed) — an exact one means the key
        matched already (dropped); none, and no loose term in play, means the key certainly
        flipped (``flipped``)."""
        term_key = self._term_key
        key_bits = self._key_bits
        exact = self._term_exact
        native = NATIVE
        if native is not None and type(new) is dict and type(changed) is dict:
            # the same two passes in C, around the same narrowing, in one call
            native.decide(
                x,
                nfo,
                term_key,
                self._term_kbits,
                exact,
                out,
                sure,
                flipped,
                self._steps,
                new,
                changed,
                seen,
                t,
                PER_TERM,
                _NONE_KEY,
                self._term_pids,
                self._pid_steps,
                skip,
            )
            return out
        xs = set(_bits(x))
        keys = {term_key[b] for b in xs}
        # The keys' other terms (criteria with one term, the common AND, have none), kept if
        # they pass the changed properties' old values, then narrowed on the unchanged ones:
        # what is left held on the old record (exact terms) or may have (loose ones).
        others: list[int] = []
        for k in keys:
            kb = key_bits[k]  # type: ignore[index]
            if len(kb) > 1:
                for b in kb:
                    if b not in xs:
                        others.append(b)
        y = _from_bits(others) if others else 0
        if y:
            y &= nfo
            if y:
                y = self._narrow(y, changed, seen, new, t)
        ys = set(_bits(y)) if y else _NO_BITS
        for k in keys:
            kb = key_bits[k]  # type: ignore[index]
            if len(kb) == 1:  # its one term is in x: it flipped; certainly so if exact
                out.add(k)  # type: ignore[arg-type]
                if exact[kb[0]]:
                    if sure is not None:
                        sure.add(k)  # type: ignore[arg-type]
                    flipped.add(k)  # type: ignore[arg-type]
                continue
            held = in_x = unsure = False
            for b in kb:
                if b in ys:  # held on the old record (exact), or may have (loose)
                    if exact[b]:
                        held = True
                        break
                    unsure = True
                elif b in xs:
                    if exact[b]:
                        in_x = True
                    else:
                        unsure = True  # loose: its old (or new) state is unknown
            if held:
                continue  # an exact term held on the old record: no transition
            out.add(k)  # type: ignore[arg-type]
            if in_x:
                if sure is not None:
                    sure.add(k)  # type: ignore[arg-type]
                if not unsure:
                    flipped.add(k)  # type: ignore[arg-type]
        return out

    def _keys(self, x: int, out: set[K], sure: set[K] | None) -> set[K]:
        term_key = self._term_key
        exact = x & self._exact
        for b in _bits(exact):
            out.add(term_key[b])  # type: ignore[arg-type]
        if sure is not None and exact:
            sure.update(term_key[b] for b in _bits(exact))  # type: ignore[misc]
        for b in _bits(x ^ exact):
            out.add(term_key[b])  # type: ignore[arg-type]
        return out

    def falling(
        self,
        changes: Iterable[tuple[str, Any, Any]],
        now: datetime,
        *,
        old: Mapping[str, Any] | None = None,
        sure: set[K] | None = None,
        flipped: set[K] | None = None,
    ) -> set[K]:
        """Keys whose criteria may have gone true -> false (the mirror image of rising);
        ``old`` is the record before the change (the mirror of ``new``; ``sure`` receives
        keys certainly matching ``old``, ``flipped`` keys certainly gone true -> false)."""
        return self.rising(
            ((p, n, o) for p, o, n in changes), now, new=old, sure=sure, flipped=flipped
        )


def changed(
    changes: Iterable[tuple[str, Any, Any]], snapshot: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(old record, new record) from a post-change snapshot and the changes' old values."""
    new = dict(snapshot)
    old = dict(snapshot)
    for p, o, n in changes:
        new[p] = n  # the change is authoritative for the value at event time
        old[p] = o
    return old, new

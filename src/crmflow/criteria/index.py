"""A transition index: which criteria may have flipped because of one change?

The enrollment service keeps thousands of criteria (one or more per active workflow) and must
find, for one record change, the few whose result can have gone from "not matching" to
"matching" (enroll, goal met) or back (unenroll when criteria are no longer met) — without
evaluating them all.

Each criteria group is rewritten into terms (disjunctive normal form, capped): a group flips from
false to true only if one of its terms does, and a conjunctive term flips only if one of its
filters flips (its property changed) or a property it reads loosely changed. So per property we
keep structures that answer "which filters does the change old -> new turn true?":

* ``eq`` / ``in`` by normalised value (a dict lookup on the new value),
* ``neq`` / ``not_in`` by the old value,
* ordered operators (gt, gte, lt, lte, before, after) as sorted thresholds (two bisects),
* ``is_known`` / ``is_unknown`` as plain lists,
* everything else (contains, between, within_last_days...) as a list of predicates.

The result is a small superset; callers confirm each candidate with the compiled criteria on the
old and new record (the index never decides alone, it only never misses).
"""

from __future__ import annotations

import bisect
import sys
import time
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from crmflow.criteria.operators import Predicate, get_operator
from crmflow.criteria.values import as_number, as_set, as_text, as_timestamp, is_unknown
from crmflow.model.criteria import Conjunction, FilterGroup, PropertyFilter

K = TypeVar("K", bound=Hashable)

_UNSET = object()
# Flipped terms above which anchors are intersected before per-term checks (measured).
ANCHOR_THRESHOLD = 96
# With the new record known, candidates come either anchor-first (TransitionIndex._anchor_first:
# cheap when anchors are selective, e.g. one campaign of hundreds per workflow) or flip-first
# plus the anchor intersection (cheaper when many terms share a few anchor values). None: each
# index measures both on every SAMPLE_EVERY-th call and uses the faster; True/False force one.
ANCHOR_FIRST: bool | None = None
SAMPLE_EVERY = 64

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
    for f in group.filters:
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


def _num(value: Any) -> float | None:
    return as_number(value)


_ts = as_timestamp


@dataclass
class _Thresholds(Generic[K]):
    """Sorted (threshold, key) pairs for one ordered operator; rebuilt lazily after edits."""

    pairs: list[tuple[float, K]] = field(default_factory=list)
    cs: list[float] = field(default_factory=list)
    ks: list[K] = field(default_factory=list)
    dirty: bool = False

    def add(self, c: float, key: K) -> None:
        self.pairs.append((c, key))
        self.dirty = True

    def remove(self, key: K) -> None:
        self.pairs = [p for p in self.pairs if p[1] != key]
        self.dirty = True

    def slice(self, lo: int | None, hi: int | None) -> list[K]:
        if self.dirty:
            self.pairs.sort(key=lambda p: p[0])
            self.cs = [p[0] for p in self.pairs]
            self.ks = [p[1] for p in self.pairs]
            self.dirty = False
        return self.ks[lo:hi]


class _PropIndex(Generic[K]):
    """Everything indexed for one property."""

    __slots__ = ("eq", "generic", "in_", "known", "loose", "neq", "not_in", "ordered", "unknown")

    def __init__(self) -> None:
        self.eq: dict[Any, set[K]] = {}
        self.neq: dict[Any, set[K]] = {}
        self.in_: dict[str, set[K]] = {}
        self.not_in: dict[str, set[K]] = {}
        # (operator, "num"|"ts") -> thresholds
        self.ordered: dict[tuple[str, str], _Thresholds[K]] = {}
        self.known: set[K] = set()
        self.unknown: set[K] = set()
        # Filters the other structures cannot index, one predicate per distinct filter
        # (operator and operand): thousands of workflows share a few "contains"/"starts with"
        # conditions, and each distinct one is tested once per change.
        self.generic: dict[tuple[str, str, str], tuple[Predicate, set[K]]] = {}
        self.loose: set[K] = set()

    def add_filter(self, f: PropertyFilter, key: K) -> None:
        op = f.operator
        if op == "eq" and not is_unknown(f.value):
            self.eq.setdefault(norm_eq(f.value), set()).add(key)
        elif op == "neq" and not is_unknown(f.value):
            self.neq.setdefault(norm_eq(f.value), set()).add(key)
        elif op == "in":
            for v in f.values:
                self.in_.setdefault(as_text(v), set()).add(key)
        elif op == "not_in":
            for v in f.values:
                self.not_in.setdefault(as_text(v), set()).add(key)
        elif op in ("gt", "gte", "lt", "lte", "before", "after"):
            n = as_number(f.value)
            if n is not None:
                self.ordered.setdefault((op, "num"), _Thresholds()).add(n, key)
                return
            t = _ts(f.value)
            if t is None:  # an operand that never compares: the filter is never true
                return
            self.ordered.setdefault((op, "ts"), _Thresholds()).add(t, key)
        elif op in ("within_last_days", "within_next_days"):
            span = (as_number(f.value) or 0) * 86400.0
            self.ordered.setdefault((op, "span"), _Thresholds()).add(span, key)
        elif op == "is_known":
            self.known.add(key)
        elif op == "is_unknown":
            self.unknown.add(key)
        else:
            sig = (op, repr(f.value), repr(f.values))
            hit = self.generic.get(sig)
            if hit is None:
                hit = self.generic[sig] = (get_operator(op).make(f), set())
            hit[1].add(key)

    def remove(self, key: K) -> None:
        for d in (self.eq, self.neq, self.in_, self.not_in):
            for k in [k for k, s in d.items() if key in s]:
                d[k].discard(key)
                if not d[k]:
                    del d[k]
        for t in self.ordered.values():
            t.remove(key)
        self.known.discard(key)
        self.unknown.discard(key)
        self.loose.discard(key)
        for sig in [sig for sig, (_p, keys) in self.generic.items() if key in keys]:
            keys = self.generic[sig][1]
            keys.discard(key)
            if not keys:
                del self.generic[sig]

    def rising(self, old: Any, new: Any, now: datetime, out: set[K]) -> None:
        """Add keys with a filter on this property that ``old -> new`` turns true."""
        if self.loose:
            out |= self.loose
        o_unknown, n_unknown = is_unknown(old), is_unknown(new)
        if self.eq and not n_unknown:
            kn = norm_eq(new)
            hit = self.eq.get(kn)
            if hit and (o_unknown or norm_eq(old) != kn):
                out |= hit
        if self.neq and not o_unknown:
            ko = norm_eq(old)
            hit = self.neq.get(ko)
            if hit and (n_unknown or norm_eq(new) != ko):
                out |= hit
        if self.in_ or self.not_in:
            sn, so = as_set(new), as_set(old)
            if self.in_:
                for e in sn - so:
                    hit = self.in_.get(e)
                    if hit:
                        out |= hit
            if self.not_in:
                for e in so - sn:
                    hit = self.not_in.get(e)
                    if hit:
                        out |= hit
        if self.ordered:
            self._ordered(old, new, now, out)
        if self.known and o_unknown and not n_unknown:
            out |= self.known
        if self.unknown and n_unknown and not o_unknown:
            out |= self.unknown
        for pred, keys in self.generic.values():
            if pred(new, now) and not pred(old, now):
                out |= keys

    def _ordered(self, old: Any, new: Any, now: datetime, out: set[K]) -> None:
        conv: dict[str, tuple[float | None, float | None]] = {}
        for (op, kind), th in self.ordered.items():
            if kind not in conv:
                f = _num if kind == "num" else _ts
                conv[kind] = (f(old), f(new))
            xo, xn = conv[kind]
            if xn is None:
                continue
            if th.dirty:
                th.slice(0, 0)
            cs = th.cs
            if kind == "span":  # within the last/next N days: thresholds are spans (seconds)
                t = now.timestamp()
                if op == "within_last_days":
                    dn, do = t - xn, (t - xo if xo is not None and xo <= t else None)
                else:
                    dn, do = xn - t, (xo - t if xo is not None and xo >= t else None)
                if dn < 0:
                    continue
                # flipped: dn <= span < do (or every span >= dn when old was outside)
                hi = bisect.bisect_left(cs, do) if do is not None else len(cs)
                out.update(th.ks[bisect.bisect_left(cs, dn) : hi])
            elif op in ("gt", "after"):  # xo <= c < xn
                lo = bisect.bisect_left(cs, xo) if xo is not None else 0
                out.update(th.ks[lo : bisect.bisect_left(cs, xn)])
            elif op == "gte":  # xo < c <= xn
                lo = bisect.bisect_right(cs, xo) if xo is not None else 0
                out.update(th.ks[lo : bisect.bisect_right(cs, xn)])
            elif op in ("lt", "before"):  # xn < c <= xo
                hi = bisect.bisect_right(cs, xo) if xo is not None else len(cs)
                out.update(th.ks[bisect.bisect_right(cs, xn) : hi])
            else:  # lte: xn <= c < xo
                hi = bisect.bisect_left(cs, xo) if xo is not None else len(cs)
                out.update(th.ks[bisect.bisect_left(cs, xn) : hi])


class TransitionIndex(Generic[K]):
    """Criteria groups keyed by ``K``; finds the keys one change may have flipped.

    Internally every DNF term gets an id; the per-property structures hold term ids. When a
    term's filter flips and the new record is known, the term's other required filters are
    checked on it (most selective first) before the key is reported: most flips stop there.
    """

    def __init__(self, max_terms: int = MAX_TERMS) -> None:
        self._props: dict[str, _PropIndex[int]] = {}
        # Keys are numbered: the hot loop dedupes small ints, not (hash-recomputing) tuples.
        self._kid: dict[K, int] = {}
        self._key_of: dict[int, K] = {}
        # A term's equality filters as (property, normalised value): checked against the new
        # record's values normalised once per event — a dict lookup instead of a call each.
        # tid -> (key id, eqs, other checks, exact): one lookup per flipped term in the hot
        # loop; ``exact``: the term has no loose part, so passing every check decides the group.
        self._terms: dict[
            int, tuple[int, tuple[tuple[str, Any], ...], tuple[tuple[str, Predicate], ...], bool]
        ] = {}
        # Terms by their first equality filter ("anchor"): when a change flips many filters,
        # the terms whose anchor the new record fails are dropped with set intersections (C)
        # instead of one Python check each.
        self._anchors: dict[str, dict[Any, set[int]]] = {}
        # Terms without an equality filter are anchored by their first ``in`` filter, by each
        # wanted value (as_text): the new record's values (as_set) look them up.
        self._in_anchors: dict[str, dict[str, set[int]]] = {}
        self._in_anchor_of: dict[int, tuple[str, frozenset[str]]] = {}
        self._unanchored: set[int] = set()
        # Anchor-first lookup (``rising`` with the new record): anchored terms by anchor, then
        # by each property they read — the terms whose anchor the new record meets and that
        # read a changed property, found without building the (much larger) set of every term
        # a change flips. Unanchored terms keep a flip index of their own.
        self._touch: dict[str, dict[Any, dict[str, set[int]]]] = {}
        self._in_touch: dict[str, dict[str, dict[str, set[int]]]] = {}
        self._unanchored_props: dict[str, _PropIndex[int]] = {}
        self._terms_of: dict[K, list[tuple[int, set[str]]]] = {}
        self._next = 0
        self._next_kid = 0
        self._calls = 0
        self._cost_anchor_first = self._cost_flip_first = 0.0
        self._prefer_anchor_first = False
        # Keys whose criteria an empty record already meets (checked on record creation).
        self._match_empty: set[K] = set()
        self._max_terms = max_terms

    def __len__(self) -> int:
        return len(self._terms_of)

    def __contains__(self, key: object) -> bool:
        return key in self._terms_of

    def add(self, key: K, group: FilterGroup, *, matches_empty: bool = False) -> None:
        if key in self._terms_of:
            self.remove(key)
        kid = self._next_kid
        self._next_kid += 1
        self._kid[key] = kid
        self._key_of[kid] = key
        terms: list[tuple[int, set[str]]] = []
        for term in terms_of(group, self._max_terms):
            tid = self._next
            self._next += 1
            touched: set[str] = set()
            for f in term.required:
                self._props.setdefault(f.property, _PropIndex()).add_filter(f, tid)
                touched.add(f.property)
            for p in term.loose:
                self._props.setdefault(p, _PropIndex()).loose.add(tid)
                touched.add(p)
            eqs = tuple(
                (sys.intern(f.property), norm_eq(f.value))
                for f in term.required
                if f.operator == "eq" and not is_unknown(f.value)
            )
            if eqs:
                ap, ak = eqs[0]
                self._anchors.setdefault(ap, {}).setdefault(ak, set()).add(tid)
                by_prop = self._touch.setdefault(ap, {}).setdefault(ak, {})
                for p in touched:
                    by_prop.setdefault(p, set()).add(tid)
            else:
                first_in = next((f for f in term.required if f.operator == "in"), None)
                if first_in is not None:
                    wanted = frozenset(as_text(v) for v in first_in.values)
                    ip = sys.intern(first_in.property)
                    by_value = self._in_anchors.setdefault(ip, {})
                    for w in wanted:
                        by_value.setdefault(w, set()).add(tid)
                        by_prop = self._in_touch.setdefault(ip, {}).setdefault(w, {})
                        for p in touched:
                            by_prop.setdefault(p, set()).add(tid)
                    self._in_anchor_of[tid] = (ip, wanted)
                else:
                    self._unanchored.add(tid)
                    for f in term.required:
                        pi = self._unanchored_props.setdefault(f.property, _PropIndex())
                        pi.add_filter(f, tid)
                    for p in term.loose:
                        self._unanchored_props.setdefault(p, _PropIndex()).loose.add(tid)
            checks = tuple(
                (sys.intern(f.property), get_operator(f.operator).make(f))
                for f in sorted(term.required, key=_selectivity)
                if not (f.operator == "eq" and not is_unknown(f.value))
            )
            self._terms[tid] = (kid, eqs, checks, not term.loose)
            terms.append((tid, touched))
        self._terms_of[key] = terms
        if matches_empty:
            self._match_empty.add(key)

    def remove(self, key: K) -> None:
        for tid, touched in self._terms_of.pop(key, ()):
            for p in touched:
                pi = self._props.get(p)
                if pi is not None:
                    pi.remove(tid)
            _, eqs, _, _ = self._terms.pop(tid)
            if eqs:
                self._anchors[eqs[0][0]][eqs[0][1]].discard(tid)
                by_prop = self._touch[eqs[0][0]][eqs[0][1]]
                for p in touched:
                    by_prop[p].discard(tid)
            elif tid in self._in_anchor_of:
                ip, wanted = self._in_anchor_of.pop(tid)
                for w in wanted:
                    self._in_anchors[ip][w].discard(tid)
                    by_prop = self._in_touch[ip][w]
                    for p in touched:
                        by_prop[p].discard(tid)
            else:
                self._unanchored.discard(tid)
                for p in touched:
                    upi = self._unanchored_props.get(p)
                    if upi is not None:
                        upi.remove(tid)
        kid = self._kid.pop(key, None)
        if kid is not None:
            del self._key_of[kid]
        self._match_empty.discard(key)

    def keys(self) -> Iterable[K]:
        return self._terms_of.keys()

    def rising(
        self,
        changes: Iterable[tuple[str, Any, Any]],
        now: datetime,
        *,
        created: bool = False,
        new: Mapping[str, Any] | None = None,
        sure: set[K] | None = None,
    ) -> set[K]:
        """Keys whose criteria may have gone false -> true by ``(property, old, new)`` changes.

        ``created``: the record is new (it matched nothing before), so keys an empty record
        already satisfies are candidates too. ``new``: the record after the change; when
        given, terms whose other required filters fail on it are dropped. ``sure`` (with
        ``new``): receives the returned keys whose criteria certainly match ``new`` (a term
        without loose parts passed every filter), so callers need not evaluate them on it.
        """
        if new is None:
            return self._rising(changes, now, created, None, sure, False)
        mode = ANCHOR_FIRST
        if mode is None:  # adaptive: the faster strategy for this index, re-measured now and then
            self._calls += 1
            if self._calls % SAMPLE_EVERY == 1:
                return self._sample(changes, now, created, new, sure)
            mode = self._prefer_anchor_first
        return self._rising(changes, now, created, new, sure, mode)

    def _sample(
        self,
        changes: Iterable[tuple[str, Any, Any]],
        now: datetime,
        created: bool,
        new: Mapping[str, Any],
        sure: set[K] | None,
    ) -> set[K]:
        """Run both candidate strategies on this change, keep a moving average of their cost
        and prefer the cheaper (both answers are valid: each a superset the caller confirms)."""
        changes = list(changes)
        t0 = time.perf_counter()
        sure_a: set[K] = set()
        out = self._rising(changes, now, created, new, sure_a, True)
        t1 = time.perf_counter()
        self._rising(changes, now, created, new, set(), False)
        t2 = time.perf_counter()
        self._cost_anchor_first += (t1 - t0 - self._cost_anchor_first) * 0.05
        self._cost_flip_first += (t2 - t1 - self._cost_flip_first) * 0.05
        self._prefer_anchor_first = self._cost_anchor_first < self._cost_flip_first
        if sure is not None:
            sure |= sure_a
        return out

    def _rising(
        self,
        changes: Iterable[tuple[str, Any, Any]],
        now: datetime,
        created: bool,
        new: Mapping[str, Any] | None,
        sure: set[K] | None,
        anchor_first: bool,
    ) -> set[K]:
        tids: set[int] = set()
        key_of = self._key_of
        out: set[K] = set(self._match_empty) if created else set()
        get = new.get if new is not None else None
        normed: dict[str, Any] = {}
        if new is not None and anchor_first:
            changes = changes if isinstance(changes, list) else list(changes)
            self._anchor_first(changes, new, now, normed, tids)
        else:
            props = self._props
            for prop, o, n in changes:
                pi = props.get(prop)
                if pi is not None and o is not n:
                    pi.rising(o, n, now, tids)
        if new is None:
            terms_ = self._terms
            out.update(key_of[terms_[t][0]] for t in tids)
            return out
        assert get is not None
        if not tids:
            return out
        if not anchor_first and len(tids) > ANCHOR_THRESHOLD:
            keep = tids & self._unanchored
            # only properties the record has: an absent one meets no anchor (a C-level
            # intersection instead of a lookup per anchored property)
            anchors = self._anchors
            for p in anchors.keys() & new.keys():
                raw = get(p)
                if is_unknown(raw):
                    continue
                v = normed[p] = norm_eq(raw)
                hit = anchors[p].get(v)
                if hit:
                    keep |= tids & hit
            in_anchors = self._in_anchors
            for p in in_anchors.keys() & new.keys():
                raw = get(p)
                if raw is None or raw == "":
                    continue
                by_text = in_anchors[p]
                for e in as_set(raw):
                    hit = by_text.get(e)
                    if hit:
                        keep |= tids & hit
            tids = keep
        terms = self._terms
        done: set[int] = set()  # key ids already reported
        exact: list[int] = []
        for t in tids:
            kid, eqs, term_checks, is_exact = terms[t]
            if kid in done:
                continue  # the key is decided: its other terms need no work
            for p, k in eqs:
                v = normed.get(p, _UNSET)
                if v is _UNSET:
                    raw = get(p)
                    v = normed[p] = None if is_unknown(raw) else norm_eq(raw)
                if v != k:
                    break
            else:
                for p, pred in term_checks:
                    if not pred(get(p), now):
                        break
                else:
                    done.add(kid)
                    if is_exact:
                        exact.append(kid)
        for kid in done:
            out.add(key_of[kid])
        if sure is not None:
            for kid in exact:
                sure.add(key_of[kid])
        return out

    def _anchor_first(
        self,
        changes: list[tuple[str, Any, Any]],
        new: Mapping[str, Any],
        now: datetime,
        normed: dict[str, Any],
        tids: set[int],
    ) -> None:
        """Candidate terms: unanchored ones a change flips, and anchored ones whose anchor
        ``new`` meets and that read a changed property (a superset of the flipped ones that
        can hold on ``new``; the caller's per-term checks do the rest)."""
        uprops = self._unanchored_props
        changed = []
        for prop, o, n in changes:
            changed.append(prop)
            pi = uprops.get(prop)
            if pi is not None and o is not n:
                pi.rising(o, n, now, tids)
        get = new.get
        touch = self._touch
        for p in touch.keys() & new.keys():
            raw = get(p)
            if is_unknown(raw):
                continue
            v = normed[p] = norm_eq(raw)
            by_prop = touch[p].get(v)
            if by_prop:
                for c in changed:
                    hit = by_prop.get(c)
                    if hit:
                        tids |= hit
        in_touch = self._in_touch
        for p in in_touch.keys() & new.keys():
            raw = get(p)
            if raw is None or raw == "":
                continue
            by_text = in_touch[p]
            for e in as_set(raw):
                by_prop = by_text.get(e)
                if by_prop:
                    for c in changed:
                        hit = by_prop.get(c)
                        if hit:
                            tids |= hit

    def falling(
        self,
        changes: Iterable[tuple[str, Any, Any]],
        now: datetime,
        *,
        old: Mapping[str, Any] | None = None,
        sure: set[K] | None = None,
    ) -> set[K]:
        """Keys whose criteria may have gone true -> false (the mirror image of rising);
        ``old`` is the record before the change (the mirror of ``new``; ``sure`` receives
        keys certainly matching ``old``)."""
        return self.rising(((p, n, o) for p, o, n in changes), now, new=old, sure=sure)


_SELECTIVE = {
    "eq": 0,
    "in": 1,
    "between": 2,
    "gt": 3,
    "gte": 3,
    "lt": 3,
    "lte": 3,
    "before": 3,
    "after": 3,
    "starts_with": 4,
    "contains": 4,
}


def _selectivity(f: PropertyFilter) -> int:
    """Check order of a term's filters: the ones most likely to fail first."""
    return _SELECTIVE.get(f.operator, 9)


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

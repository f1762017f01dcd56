"""The in-memory trigger index: tenant -> object type -> what one event could change.

``match(event, record)`` is the hot path. It never scans the workflows of a tenant: criteria go
through a ``TransitionIndex`` keyed by the properties (and values) they read, event triggers
through a dict keyed by (kind, discriminator), suppression lists by list id. Criteria the
index decides on both states (no association / over-large OR parts) are taken as they are; every
other candidate is confirmed with the compiled matchers on the old and new record, so the answer
is exact.
Pure and synchronous: the service applies the rules and side effects (ledger, Temporal).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crmflow.criteria.evaluate import Matcher
from crmflow.criteria.index import TransitionIndex
from crmflow.criteria.values import as_text, is_unknown
from crmflow.model.records import ChangeEvent, ChangeEventType
from crmflow.model.triggers import EventType
from enrollment.compiled import (
    EMPTY,
    CompiledEventTrigger,
    CompiledWorkflow,
    TriggerRef,
    event_keys,
    event_trigger_keys,
)


@dataclass(frozen=True, slots=True)
class Match:
    """One thing an event did to one workflow. The index makes the ones it returns on the hot
    path once, when it files a workflow (``put``), and hands out the same objects: an event
    can yield dozens, and building them per event cost as much as finding them."""

    workflow: CompiledWorkflow
    role: str  # enroll | reenroll | unenroll | goal | stay | suppressed | deleted
    index: int = -1
    kind: str = ""  # "criteria", "event:<EVENT_TYPE>", ...

    @property
    def trigger_label(self) -> str:
        return self.kind if self.index < 0 else f"{self.kind}#{self.index}"


@dataclass
class _Scope:
    # enroll / reenroll criteria, keyed by a number per trigger: the index hashes its keys a
    # few times per candidate, and an int hashes for free where a TriggerRef tuple does not
    rising: TransitionIndex[int] = field(default_factory=TransitionIndex)
    # rising key -> (its workflow, its compiled criteria, its match): one lookup per candidate
    rising_refs: dict[int, tuple[CompiledWorkflow, Matcher, Match]] = field(default_factory=dict)
    rising_keys: dict[TriggerRef, int] = field(default_factory=dict)
    next_key: int = 0
    # goal and unenrollment criteria: only asked when the record is enrolled somewhere
    leaving: TransitionIndex[TriggerRef] = field(default_factory=TransitionIndex)
    falling: TransitionIndex[TriggerRef] = field(default_factory=TransitionIndex)
    # event triggers other than "property changed", by (kind, discriminator) (event_keys)
    events: dict[tuple[str, str], set[TriggerRef]] = field(default_factory=dict)
    # "property changed" triggers: property -> (those for any value, those by target value
    # as_text, the plain ones by target value): a change looks its property and new value
    # up, no key is built per event. Plain: nothing but the property and target values (no
    # "from" values, filters or refinement), so being filed where the change looks is the
    # whole test: their matches are reported without calling the trigger.
    prop_events: dict[str, _PropEvents] = field(default_factory=dict)
    # event trigger key -> (its workflow, its compiled trigger, its match)
    event_refs: dict[TriggerRef, tuple[CompiledWorkflow, CompiledEventTrigger, Match]] = field(
        default_factory=dict
    )
    suppression: dict[str, set[str]] = field(default_factory=dict)
    workflows: set[str] = field(default_factory=set)
    # workflow -> (leaving criteria as (matcher, match), "stay" matcher and its match, the
    # properties they all read): evaluated directly for the few workflows a record is
    # enrolled in
    leaving_rules: dict[str, _LeavingRules] = field(default_factory=dict)
    # workflow X -> the workflows whose criteria read "has been enrolled in X"
    fact_readers: dict[str, set[str]] = field(default_factory=dict)
    # (object type, label) of associated records -> the workflows whose criteria read them
    assoc_readers: dict[tuple[str, str], set[str]] = field(default_factory=dict)


class TriggerIndex:
    def __init__(self) -> None:
        self._scopes: dict[tuple[str, str], _Scope] = {}
        self._workflows: dict[tuple[str, str], CompiledWorkflow] = {}
        # (tenant, object type T) -> (reading object type, label, property of T) -> the
        # workflows whose criteria read that property of their records' associated T records
        self._assoc_targets: dict[tuple[str, str], dict[tuple[str, str, str], set[str]]] = {}

    def __len__(self) -> int:
        return len(self._workflows)

    def get(self, tenant_id: str, workflow_id: str) -> CompiledWorkflow | None:
        return self._workflows.get((tenant_id, workflow_id))

    def workflows(self, tenant_id: str | None = None) -> Iterator[CompiledWorkflow]:
        for (t, _), cw in self._workflows.items():
            if tenant_id is None or t == tenant_id:
                yield cw

    def put(self, cw: CompiledWorkflow) -> None:
        """Index (or re-index) a workflow's active revision."""
        self.remove(cw.tenant_id, cw.workflow_id)
        self._workflows[(cw.tenant_id, cw.workflow_id)] = cw
        if not cw.enabled:
            return  # kept for lookups (explain, manual enroll refusal), fires nothing
        scope = self._scopes.setdefault((cw.tenant_id, cw.object_type), _Scope())
        wf = cw.workflow_id
        scope.workflows.add(wf)
        for (role, i), (group, matcher) in cw.criteria.items():
            tref = TriggerRef(wf, role, i)
            if role == "unenroll":
                scope.leaving.add(tref, group, matches_empty=matcher({}, _epoch, EMPTY))
            else:
                n = scope.rising_keys[tref] = scope.next_key
                scope.next_key += 1
                scope.rising.add(n, group, matches_empty=matcher({}, _epoch, EMPTY))
                scope.rising_refs[n] = (cw, matcher, Match(cw, role, i, "criteria"))
        if cw.goal is not None and cw.definition.enrollment.goal is not None:
            scope.leaving.add(TriggerRef(wf, "goal", 0), cw.definition.enrollment.goal)
        if cw.stay is not None:
            scope.falling.add(TriggerRef(wf, "stay", 0), cw.stay)
        rules = tuple(
            (m, Match(cw, role, i, "criteria"))
            for (role, i), (_g, m) in cw.criteria.items()
            if role == "unenroll"
        )
        if cw.goal is not None and cw.definition.enrollment.goal is not None:
            rules += ((cw.goal, Match(cw, "goal", -1, "goal")),)
        if rules or cw.stay_matcher is not None:
            # "criteria no longer met" is the enrollment criteria, whose terms the rising
            # index holds: it tests them on a record unless one has a loose part
            stay_mask: int | None = None
            if cw.stay_matcher is not None:
                keys = [
                    scope.rising_keys[TriggerRef(wf, r, i)] for r, i in cw.criteria if r == "enroll"
                ]
                mask, exact = scope.rising.key_mask(keys)
                stay_mask = mask if exact else None
            scope.leaving_rules[wf] = (
                rules,
                cw.stay_matcher,
                Match(cw, "stay", kind=_NOT_MET),
                _leaving_reads(cw),
                stay_mask,
            )
        for (role, i), et in cw.events.items():
            tref = TriggerRef(wf, role, i)
            scope.event_refs[tref] = (cw, et, Match(cw, role, i, f"event:{et.trigger.event_type}"))
            t = et.trigger
            if t.event_type == EventType.PROPERTY_CHANGED:
                any_value, by_value, plain = scope.prop_events.setdefault(
                    t.property, (set(), {}, {})
                )
                hit = scope.event_refs[tref][2]
                for v in et.to_set:  # filed by target value: another value never looks at it
                    if _plain(et):
                        plain.setdefault(v, {})[tref] = hit
                    else:
                        by_value.setdefault(v, set()).add(tref)
                if not et.to_set:
                    any_value.add(tref)
                continue
            for k in event_trigger_keys(t):
                scope.events.setdefault(k, set()).add(tref)
        for list_id in cw.definition.enrollment.suppression_list_ids:
            scope.suppression.setdefault(list_id, set()).add(wf)
        for read in cw.fact_workflows:
            scope.fact_readers.setdefault(read, set()).add(wf)
        for ref in cw.association_refs:
            scope.assoc_readers.setdefault(ref, set()).add(wf)
        for ot, label, prop in cw.association_reads:
            targets = self._assoc_targets.setdefault((cw.tenant_id, ot), {})
            targets.setdefault((cw.object_type, label, prop), set()).add(wf)

    def remove(self, tenant_id: str, workflow_id: str) -> CompiledWorkflow | None:
        cw = self._workflows.pop((tenant_id, workflow_id), None)
        if cw is None:
            return None
        scope = self._scopes.get((tenant_id, cw.object_type))
        if scope is None or workflow_id not in scope.workflows:
            return cw
        scope.workflows.discard(workflow_id)
        scope.leaving_rules.pop(workflow_id, None)
        for tref in [r for r in scope.rising_keys if r.workflow_id == workflow_id]:
            n = scope.rising_keys.pop(tref)
            scope.rising.remove(n)
            del scope.rising_refs[n]
        for key in [k for k in scope.leaving.keys() if k.workflow_id == workflow_id]:
            scope.leaving.remove(key)
        for key in [k for k in scope.falling.keys() if k.workflow_id == workflow_id]:
            scope.falling.remove(key)
        for refs in scope.events.values():
            for r in [r for r in refs if r.workflow_id == workflow_id]:
                refs.discard(r)
        for r in [r for r in scope.event_refs if r.workflow_id == workflow_id]:
            _cw, et, _hit = scope.event_refs.pop(r)
            if et.trigger.event_type != EventType.PROPERTY_CHANGED:
                continue
            prop = et.trigger.property
            any_value, by_value, plain = scope.prop_events[prop]
            any_value.discard(r)
            for v in et.to_set:
                if _plain(et):
                    del plain[v][r]
                    if not plain[v]:
                        del plain[v]
                else:
                    by_value[v].discard(r)
                    if not by_value[v]:
                        del by_value[v]
            if not any_value and not by_value and not plain:
                del scope.prop_events[prop]
        for wfs in scope.suppression.values():
            wfs.discard(workflow_id)
        _drop_reader(scope.fact_readers, workflow_id)
        _drop_reader(scope.assoc_readers, workflow_id)
        for ot in {ot for ot, _, _ in cw.association_reads}:
            targets = self._assoc_targets.get((tenant_id, ot))
            if targets is not None:
                _drop_reader(targets, workflow_id)
                if not targets:
                    del self._assoc_targets[(tenant_id, ot)]
        return cw

    def association_refs(self, tenant_id: str, object_type: str) -> set[tuple[str, str]]:
        """(object type, label) of the associated records active criteria read."""
        scope = self._scopes.get((tenant_id, object_type))
        return set(scope.assoc_readers) if scope is not None else set()

    def association_fanout(
        self, tenant_id: str, object_type: str, properties: Collection[str]
    ) -> dict[str, set[str]]:
        """A record of ``object_type`` changed ``properties``: which object types' active
        workflows read one of them through an association, with the association labels
        ("" = any label). Their records associated to the changed one need a re-evaluation."""
        targets = self._assoc_targets.get((tenant_id, object_type))
        out: dict[str, set[str]] = {}
        if not targets:
            return out
        for reader, label, prop in targets:
            if prop in properties:
                out.setdefault(reader, set()).add(label)
        return out

    def reads_facts(self, tenant_id: str, object_type: str, workflow_id: str = "") -> bool:
        """Does an active workflow read enrollment facts (of ``workflow_id``, or of any)?"""
        scope = self._scopes.get((tenant_id, object_type))
        if scope is None or not scope.fact_readers:
            return False
        return not workflow_id or workflow_id in scope.fact_readers

    def has_scope(self, ev: ChangeEvent) -> bool:
        """Does any active workflow of the tenant enroll this object type?"""
        scope = self._scopes.get((ev.tenant_id, ev.object_type))
        return scope is not None and bool(scope.workflows)

    @staticmethod
    def _leaving_direct(
        scope: _Scope,
        enrolled_in: Collection[str],
        changes: list[tuple[str, Any, Any]],
        new: Mapping[str, Any],
        own: list[tuple[str, Any, Any]],
        old: Mapping[str, Any] | None,
        now: datetime,
        created: bool,
        out: list[Match],
    ) -> None:
        """Goal, unenrollment criteria and "criteria no longer met" of the workflows the record
        is enrolled in, evaluated on both states (the same transitions the indexes find);
        ``changes``: (property, old, new); ``old``: the previous state, None until needed
        (then ``new`` with ``own``'s old values)."""
        rules = scope.leaving_rules
        for wf in enrolled_in:
            r = rules.get(wf)
            if r is None:
                continue
            leaving, stay, stay_match, reads, stay_mask = r
            if not created and reads is not None:
                # Old and new differ only in the changed properties and are read at the same
                # ``now``: a rule that reads none of them has the same answer on both.
                for c in changes:
                    if c[0] in reads:
                        break
                else:
                    continue
            if old is None:
                old = _before(new, own)
            for m, hit in leaving:
                if m(new, now, EMPTY) and (created or not m(old, now, EMPTY)):
                    out.append(hit)
            if stay is None or created:
                continue
            if stay_mask is not None:
                rising = scope.rising
                if rising.holding(stay_mask, old, now) and not rising.holding(stay_mask, new, now):
                    out.append(stay_match)
            elif stay(old, now, EMPTY) and not stay(new, now, EMPTY):
                out.append(stay_match)

    @staticmethod
    def _fire(
        scope: _Scope,
        fired: list[set[TriggerRef]],
        ev: ChangeEvent,
        new: Mapping[str, Any],
        now: datetime,
        enrolled_in: Collection[str] | None,
        out: list[Match],
    ) -> None:
        """The event triggers of ``fired`` that ``ev`` matches (each once; unenrollment
        triggers only of the workflows the record is enrolled in)."""
        seen: set[TriggerRef] = set()
        event_refs = scope.event_refs
        for refs in fired:
            for ref in refs:
                if ref in seen:
                    continue
                seen.add(ref)
                if ref.role == "unenroll" and enrolled_in is not None:
                    if ref.workflow_id not in enrolled_in:
                        continue
                _cw, trig, hit = event_refs[ref]
                if trig.matches(ev, new, now):
                    out.append(hit)

    def match(
        self,
        ev: ChangeEvent,
        record: Mapping[str, Any],
        now: datetime,
        enrolled_in: Collection[str] | None = None,
    ) -> list[Match]:
        """Everything ``ev`` does to the tenant's workflows for this record.

        ``record`` is the record after the event (the changes' new values win over it); the
        previous state is the same record with the changes' old values. ``enrolled_in``: the
        workflows the record is enrolled in now; leaving matches (goal, unenrollment, criteria
        no longer met, suppression) are only worked out for those (None: for all).
        """
        scope = self._scopes.get((ev.tenant_id, ev.object_type))
        if scope is None:
            return []
        key = ev.tenant_id
        out: list[Match] = []
        et = ev.event_type
        own = [(c.property, c.old_value, c.new_value) for c in ev.changes]
        created = et == _CREATED
        new = _after(record, own)
        # the previous state, built when first needed (most events decide without it)
        old: dict[str, Any] | None = {} if created else None
        changes = own
        if ev.associated_object_type:
            # association-scoped filters are indexed under "@assoc:<type>"
            changes = [*own, ("@assoc:" + ev.associated_object_type, None, ev.associated_record_id)]
        leaving = enrolled_in is None or bool(enrolled_in)
        if changes or created:
            sure: set[int] = set()
            flipped: set[int] = set()
            refs = scope.rising_refs
            for n in scope.rising.rising(
                changes, now, created=created, new=new, sure=sure, flipped=flipped
            ):
                # ``flipped``: decided by the index on both states (exact terms); ``sure``: a
                # term holds on ``new``, the group matches it; the rest is confirmed here
                _cw, matcher, hit = refs[n]
                if n in flipped:
                    out.append(hit)
                elif n in sure or matcher(new, now, EMPTY):
                    if old is None:
                        old = _before(new, own)
                    if created or not matcher(old, now, EMPTY):
                        out.append(hit)
            if leaving and enrolled_in is not None and len(enrolled_in) <= DIRECT_LEAVING:
                # A record is enrolled in a handful of workflows: evaluating their leaving
                # rules directly is exact and cheaper than asking the indexes for all of them.
                self._leaving_direct(scope, enrolled_in, changes, new, own, old, now, created, out)
            elif leaving:
                if old is None:
                    old = _before(new, own)
                decided: set[TriggerRef] = set()
                for ref in scope.leaving.rising(
                    changes, now, created=created, new=new, flipped=decided
                ):
                    if enrolled_in is not None and ref.workflow_id not in enrolled_in:
                        continue
                    cw = self._workflows[(key, ref.workflow_id)]
                    if ref.role == "goal":
                        assert cw.goal is not None
                        m, kind = cw.goal, "goal"
                    else:
                        m, kind = cw.criteria[(ref.role, ref.idx)][1], "criteria"
                    if ref in decided or (
                        m(new, now, EMPTY) and (created or not m(old, now, EMPTY))
                    ):
                        out.append(Match(cw, ref.role, ref.idx if kind != "goal" else -1, kind))
                if not created:
                    gone: set[TriggerRef] = set()
                    for ref in scope.falling.falling(changes, now, old=old, flipped=gone):
                        if enrolled_in is not None and ref.workflow_id not in enrolled_in:
                            continue
                        cw = self._workflows[(key, ref.workflow_id)]
                        assert cw.stay_matcher is not None
                        if ref in gone or (
                            cw.stay_matcher(old, now, EMPTY)
                            and not cw.stay_matcher(new, now, EMPTY)
                        ):
                            out.append(Match(cw, "stay", kind=_NOT_MET))
        fired: list[set[TriggerRef]] = []  # the event triggers filed where ``ev`` looks
        prop_events = scope.prop_events
        if prop_events:
            for p, o, n in own:
                pe = prop_events.get(p)
                if pe is None:
                    continue
                any_value, by_value, plain = pe
                if any_value:
                    fired.append(any_value)
                if (by_value or plain) and not is_unknown(n):
                    text = as_text(n)
                    filed = by_value.get(text)
                    if filed:
                        fired.append(filed)
                    plain_hits = plain.get(text)
                    # a plain trigger fires when its property's (first) change moved the value
                    if plain_hits and o != n and _first_change(own, p, o, n):
                        for ref, hit in plain_hits.items():
                            if ref.role == "unenroll" and enrolled_in is not None:
                                if ref.workflow_id not in enrolled_in:
                                    continue
                            out.append(hit)
        if scope.events:
            for k in event_keys(ev, ()):
                filed = scope.events.get(k)
                if filed:
                    fired.append(filed)
        if fired:
            self._fire(scope, fired, ev, new, now, enrolled_in, out)
        if et == _LIST_ADDED and ev.list_id in scope.suppression:
            for wf in scope.suppression[ev.list_id]:
                if enrolled_in is None or wf in enrolled_in:
                    out.append(Match(self._workflows[(key, wf)], "suppressed", kind="suppression"))
        return out


def _after(record: Mapping[str, Any], changes: list[tuple[str, Any, Any]]) -> dict[str, Any]:
    """The record after the event: the changes' new values win. The record itself when it
    is a dict that already holds them (the service's snapshots do): it is only read."""
    if type(record) is dict:
        for p, _o, n in changes:
            if record.get(p, _MISSING) is not n:
                break
        else:
            return record
    new = dict(record)
    for p, _o, n in changes:
        new[p] = n
    return new


def _before(new: Mapping[str, Any], changes: list[tuple[str, Any, Any]]) -> dict[str, Any]:
    """The record before the event: ``new`` with the changes' old values."""
    old = dict(new)
    for p, o, _n in changes:
        old[p] = o
    return old


def _plain(et: CompiledEventTrigger) -> bool:
    """A property-changed trigger that tests nothing but its property and target values."""
    t = et.trigger
    return bool(
        et.to_set
        and not et.from_set
        and et.filter is None
        and et.event_filter is None
        and t.refinement is None
    )


def _first_change(own: list[tuple[str, Any, Any]], p: str, o: Any, n: Any) -> bool:
    """Is (p, o, n) the event's first change of p (the one a trigger reads)?"""
    for q, qo, qn in own:
        if q == p:
            return qo is o and qn is n
    return False


def _leaving_reads(cw: CompiledWorkflow) -> frozenset[str] | None:
    """The record properties a workflow's leaving rules (unenrollment criteria, goal, stay)
    read; None when they may read more (associated records, which change without a change
    of the record's own properties)."""
    if cw.association_refs:
        return None
    groups = [g for (role, _i), (g, _m) in cw.criteria.items() if role == "unenroll"]
    if cw.goal is not None and cw.definition.enrollment.goal is not None:
        groups.append(cw.definition.enrollment.goal)
    if cw.stay is not None:
        groups.append(cw.stay)
    reads: set[str] = set()
    for g in groups:
        reads |= g.properties()
    return frozenset(reads)


_PropEvents = tuple[set[TriggerRef], dict[str, set[TriggerRef]], dict[str, dict[TriggerRef, Match]]]
# (leaving criteria as (matcher, match), "stay" matcher, its match, the properties they all
# read or None, the stay criteria's terms in the rising index or None: use the matcher)
_LeavingRules = tuple[
    tuple[tuple[Matcher, Match], ...], Matcher | None, Match, frozenset[str] | None, int | None
]


def _drop_reader(readers: dict[Any, set[str]], workflow_id: str) -> None:
    for read in [r for r, wfs in readers.items() if workflow_id in wfs]:
        readers[read].discard(workflow_id)
        if not readers[read]:
            del readers[read]


_epoch = datetime(2000, 1, 1).astimezone()
_CREATED = ChangeEventType.RECORD_CREATED
_LIST_ADDED = ChangeEventType.LIST_MEMBERSHIP_ADDED
_MISSING = object()
_NOT_MET = "criteria_not_met"
# Up to this many enrolled workflows, leaving rules are evaluated directly (see match).
DIRECT_LEAVING = 32

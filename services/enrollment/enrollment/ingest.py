"""Turning one change event into enrollments and unenrollments.

Order per event: dedupe by event id -> find what the event does through the trigger index
(never a scan) -> unenrollments first (goal met, criteria no longer met, unenrollment triggers,
suppression, deletion) -> enrollments (with refinement counts and re-enrollment rules) ->
``record_event`` signals to the record's running enrollments -> remember the event as processed
with its outcomes, so a redelivery returns the same answer and does nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

from crmflow.errors import CrmflowError, ErrorList, InvalidArgument, NotFound
from crmflow.model.criteria import enrollment_property, is_virtual_property
from crmflow.model.enrollment import RecordEventSignal, UnenrollReason
from crmflow.model.records import ChangeEvent, ChangeEventType, PropertyChange
from crmflow.records.port import EventDefinition, PropertyDefinition, PropertyType
from crmflow.records.schema import NAME_RE
from enrollment import associated
from enrollment.enroller import Enroller, Outcome
from enrollment.fact_change import FactChange
from enrollment.tables import EnrollmentRow
from enrollment.trigger_index import Match, TriggerIndex

log = logging.getLogger("crmflow.enrollment.ingest")

# A record update re-evaluates at most this many records associated to it (per reading
# object type), in groups of FANOUT_CONCURRENCY at once; beyond the bound, the rest (by record
# id) are not re-evaluated and a warning is logged.
FANOUT_MAX = 1000
# A value failing its cached property definition re-reads the definitions, at most once per
# this many seconds per tenant and object type: a new enumeration option is accepted at once,
# and a client repeating a bad value does not cost a CRM read per event.
SCHEMA_REFRESH = 1.0
FANOUT_CONCURRENCY = 16
_SNAPSHOT_EVENTS = (ChangeEventType.RECORD_CREATED, ChangeEventType.RECORD_UPDATED)
_COUNTED_ALWAYS = (ChangeEventType.FORM_SUBMITTED, ChangeEventType.CUSTOM_EVENT)
_UNENROLL_ROLES = {
    "goal": UnenrollReason.GOAL_MET,
    "stay": UnenrollReason.CRITERIA_NOT_MET,
    "unenroll": UnenrollReason.UNENROLLMENT_TRIGGER,
    "suppressed": UnenrollReason.SUPPRESSED,
}


def check_value_type(value: Any, pd: PropertyDefinition) -> str | None:
    """Why ``value`` cannot be a value of property ``pd`` (None when it can)."""
    if value is None or value == "":
        return None
    t = pd.type
    if t == PropertyType.NUMBER and (isinstance(value, bool) or not isinstance(value, int | float)):
        try:
            float(str(value))
        except ValueError:
            return f"property {pd.name!r} is a number, got {value!r}"
    if (
        t == PropertyType.BOOL
        and not isinstance(value, bool)
        and str(value).lower() not in ("true", "false")
    ):
        return f"property {pd.name!r} is a bool, got {value!r}"
    if t in (PropertyType.DATE, PropertyType.DATETIME):
        from crmflow.criteria.values import as_datetime

        if as_datetime(value) is None:
            return f"property {pd.name!r} is a {t.value}, got {value!r}"
    if t == PropertyType.ENUMERATION and pd.options and str(value) not in pd.options:
        return f"property {pd.name!r} has no option {value!r}"
    return None


def check_event_value(value: Any, pd: PropertyDefinition) -> str | None:
    """``check_value_type`` plus what a record change never needs checking here but a sender's
    free-form event payload does: a structure where a scalar belongs, a multi-select option
    outside the definition's options."""
    why = check_value_type(value, pd)
    if why or value is None or value == "":
        return why
    if pd.type == PropertyType.MULTI_SELECT:
        items = value.split(";") if isinstance(value, str) else value
        if not isinstance(items, list):
            return f"property {pd.name!r} is a multi_select, got {value!r}"
        bad = [str(v) for v in items if pd.options and str(v) not in pd.options]
        if bad:
            return f"property {pd.name!r} has no option {bad[0]!r}"
    elif isinstance(value, dict | list):
        return f"property {pd.name!r} is a {pd.type.value}, got {type(value).__name__}"
    return None


def check_event_properties(ev: ChangeEvent, d: EventDefinition, path: str) -> None:
    """A custom event against its definition: it happens to the definition's object type, and
    carries only defined properties, each a value of its type (``check_value_type``, the rule
    record changes are held to), with every required one present. InvalidArgument naming
    ``path.object_type`` or ``path.properties.<name>``."""
    if ev.object_type != d.object_type:
        raise InvalidArgument.field(
            f"{path}.object_type",
            f"event {d.name!r} happens to {d.object_type!r}, not {ev.object_type!r}",
        )
    errs = ErrorList()
    defs = {p.name: p for p in d.properties}
    for name, value in ev.properties.items():
        pd = defs.get(name)
        if pd is None:
            errs.add(f"{path}.properties.{name}", f"unknown property {name!r} of event {d.name!r}")
        elif why := check_event_value(value, pd):
            errs.add(f"{path}.properties.{name}", why)
    for pd in d.properties:
        if pd.required and ev.properties.get(pd.name) in (None, "", []):
            errs.add(f"{path}.properties.{pd.name}", f"{pd.name!r} is required by event {d.name!r}")
    errs.raise_if_any(f"event doesn't match its definition {d.name!r}")


class Ingestor:
    def __init__(
        self,
        *,
        index: TriggerIndex,
        enroller: Enroller,
        event_definition_ttl: float = 30.0,
        schema_ttl: float = 30.0,
        fanout_max: int = FANOUT_MAX,
    ) -> None:
        self.index = index
        self.enroller = enroller
        self.fanout_max = fanout_max
        # (tenant, object type) -> (fetched at, property definitions): re-read after
        # ``schema_ttl``, and at once when a value fails the cached definition (an enumeration
        # option added a moment ago must not be refused until then), at most once a second (a
        # client sending bad values does not cost a CRM read per event)
        self._schemas: dict[tuple[str, str], tuple[float, dict[str, PropertyDefinition]]] = {}
        self._schema_forced: dict[tuple[str, str], float] = {}  # last re-read on a failure
        self._schema_ttl = schema_ttl
        # (tenant, event name) -> (expiry, definition or None = undefined). Most custom events
        # have no definition, so "none" is cached too: one CRM read per event name per TTL,
        # not per event. A definition made or changed applies within the TTL.
        self._event_defs: dict[tuple[str, str], tuple[float, EventDefinition | None]] = {}
        self._event_def_ttl = event_definition_ttl
        enroller.on_fact_change = self.enrollment_changed
        enroller.reads_facts = index.reads_facts

    @property
    def ledger(self):  # type: ignore[no-untyped-def]
        return self.enroller.ledger

    async def check_types(self, ev: ChangeEvent, path: str) -> None:
        """Refuse values of the wrong type for their property definition (INVALID_ARGUMENT),
        and virtual properties ('@...'), which only this service computes."""
        for j, c in enumerate(ev.changes):
            if is_virtual_property(c.property):
                raise InvalidArgument.field(
                    f"{path}.changes[{j}].property",
                    f"{c.property!r}: names starting with '@' are computed by the service",
                )
        store = self.enroller.records
        if ev.event_type == ChangeEventType.CUSTOM_EVENT and store is not None:
            d = await self._event_definition(ev.tenant_id, ev.event_name)
            if d is not None:  # undefined custom events keep free-form properties
                check_event_properties(ev, d, path)
        if store is None or not ev.changes:
            return
        fetched, schema = await self._schema(ev, path)
        for j, c in enumerate(ev.changes):
            pd = schema.get(c.property)
            if pd is None:
                continue  # properties the CRM does not describe are not ours to refuse
            why = check_value_type(c.new_value, pd)
            if why and not fetched:  # the definition may have changed since it was read
                fetched, schema = await self._schema(ev, path, fresh=True)
                pd = schema.get(c.property)
                why = check_value_type(c.new_value, pd) if pd is not None else ""
            if why:
                raise InvalidArgument.field(f"{path}.changes[{j}].new_value", why)

    async def _schema(
        self, ev: ChangeEvent, path: str, *, fresh: bool = False
    ) -> tuple[bool, dict[str, PropertyDefinition]]:
        """(read from the CRM just now, the object type's property definitions)."""
        key = (ev.tenant_id, ev.object_type)
        hit = self._schemas.get(key)
        now = time.monotonic()
        if hit is not None:
            if not fresh and now - hit[0] < self._schema_ttl:
                return False, hit[1]
            if fresh and now - self._schema_forced.get(key, -SCHEMA_REFRESH) < SCHEMA_REFRESH:
                return False, hit[1]
        if fresh:
            self._schema_forced[key] = now
        store = self.enroller.records
        assert store is not None
        try:
            defs = await store.list_properties(ev.tenant_id, ev.object_type)
        except NotFound:
            raise InvalidArgument.field(
                f"{path}.object_type", f"unknown object type {ev.object_type!r}"
            ) from None
        if len(self._schemas) > 10_000:
            self._schemas.clear()
            self._schema_forced.clear()
        schema = {d.name: d for d in defs}
        self._schemas[key] = (now, schema)
        return True, schema

    async def _event_definition(self, tenant_id: str, name: str) -> EventDefinition | None:
        if not NAME_RE.match(name):
            return None  # a name no definition can have: not a defined event
        key = (tenant_id, name)
        hit = self._event_defs.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        store = self.enroller.records
        assert store is not None
        try:
            d: EventDefinition | None = await store.get_event_definition(tenant_id, name)
        except NotFound:
            d = None
        if len(self._event_defs) > 10_000:
            self._event_defs.clear()
        self._event_defs[key] = (time.monotonic() + self._event_def_ttl, d)
        return d

    async def _record(self, ev: ChangeEvent) -> dict[str, Any]:
        """The record after the event: the event's snapshot, else the CRM's copy, else the
        changes alone (criteria reading other properties then see them as unknown)."""
        if ev.event_type in _SNAPSHOT_EVENTS and ev.properties:
            return dict(ev.properties)
        store = self.enroller.records
        if store is not None and ev.event_type != ChangeEventType.RECORD_DELETED:
            try:
                rec = await store.get(ev.tenant_id, ev.object_type, ev.record_id)
                return dict(rec.properties)
            except NotFound:
                return {}
        return {}

    async def enrollment_changed(self, ch: FactChange) -> list[Outcome]:
        """A record's enrollment in a workflow changed: to the workflows whose criteria read
        "has been / is currently enrolled in" it, that is a change of the virtual property
        ``@enrollment:<workflow>``, ingested as an event of its own (idempotent by its id)."""
        if not self.index.reads_facts(ch.tenant_id, ch.object_type, ch.workflow_id):
            return []
        ev = ChangeEvent(
            event_id=ch.change_id,
            tenant_id=ch.tenant_id,
            event_type=ChangeEventType.RECORD_UPDATED,
            object_type=ch.object_type,
            record_id=ch.record_id,
            occurred_at=self.enroller.clock(),
            changes=[
                PropertyChange(
                    property=enrollment_property(ch.workflow_id),
                    old_value=ch.old,
                    new_value=ch.new,
                )
            ],
            properties={k: v for k, v in (ch.record or {}).items() if not is_virtual_property(k)},
        )
        dup, outcomes = await self.ingest(ev, synthetic=True)
        return [] if dup else outcomes

    async def ingest(
        self,
        ev: ChangeEvent,
        *,
        synthetic: bool = False,
        associated_update: ChangeEvent | None = None,
    ) -> tuple[bool, list[Outcome]]:
        """Process one validated event. Returns (duplicate, outcomes). ``synthetic``: made by
        this service (an enrollment elsewhere, an associated record's update), not sent to the
        record's running enrollments. ``associated_update``: the update of an associated
        record this synthetic event stands for (see ``fan_out``)."""
        prior, active = await self.ledger.event_state(
            tenant_id=ev.tenant_id,
            event_id=ev.event_id,
            object_type=ev.object_type,
            record_id=ev.record_id,
        )
        if prior is not None:
            return True, [Outcome(**o) for o in prior]
        now = self.enroller.clock()
        record = await self._record(ev) if self.index.has_scope(ev) else {}
        if record and self.index.reads_facts(ev.tenant_id, ev.object_type):
            # "has been enrolled in X" criteria read the ledger's facts as virtual properties
            facts = await self.ledger.fact_properties(
                tenant_id=ev.tenant_id, object_type=ev.object_type, record_ids=[ev.record_id]
            )
            record.update(facts[ev.record_id])
        seen_ev = await self._with_associated(ev, record, associated_update)
        # leaving rules (goal, unenrollment...) only matter where the record is enrolled
        matches = self.index.match(seen_ev, record, now, {r.workflow_id for r in active})
        new = {**record, **{c.property: c.new_value for c in seen_ev.changes}}
        outcomes: list[Outcome] = []
        if ev.event_type == ChangeEventType.RECORD_DELETED:
            for row in active:
                outcomes.append(
                    await self.enroller.unenroll_row(
                        row, UnenrollReason.RECORD_DELETED, f"event {ev.event_id}", cascade=False
                    )
                )
        unenrolled: set[str] = set()
        cascaded: list[Outcome] = []  # what these (un)enrollments did to other workflows
        for m in matches:
            reason = _UNENROLL_ROLES.get(m.role)
            if reason is None or m.workflow.workflow_id in unenrolled:
                continue
            if m.role == "unenroll" and not await self._refined(m, ev):
                continue
            out = await self.enroller.unenroll(
                ev.tenant_id,
                m.workflow.workflow_id,
                ev.object_type,
                ev.record_id,
                reason,
                f"{m.trigger_label} (event {ev.event_id})",
                follow=cascaded,
            )
            if out.outcome == "unenrolled":
                unenrolled.add(m.workflow.workflow_id)
                outcomes.append(out)
        done: set[str] = set()
        started: list[int] = []
        for m in sorted(matches, key=lambda m: m.role != "enroll"):
            wf = m.workflow.workflow_id
            if m.role not in ("enroll", "reenroll") or wf in done:
                continue
            if ev.event_type == ChangeEventType.RECORD_DELETED:
                continue
            if not await self._refined(m, ev):
                continue
            done.add(wf)
            cw = m.workflow
            reenroll_ok = cw.may_reenroll(m.role, m.index) and cw.initial_triggers_match(
                ev, new, now
            )
            outcomes.append(
                await self.enroller.enroll(
                    cw,
                    ev.record_id,
                    trigger=m.trigger_label,
                    record=new,
                    event=ev,
                    reenroll_ok=reenroll_ok,
                    reenrollment_only=m.role == "reenroll",
                    started=started,
                    follow=cascaded,
                )
            )
        outcomes += cascaded
        if not synthetic:
            await self._signal_running(ev, active, {o.run_workflow_id for o in outcomes})
            # records associated to this one whose workflows read what it changed
            outcomes += await self.fan_out(ev)
        await self.ledger.mark_processed(
            ev.tenant_id, ev.event_id, [o.as_dict() for o in outcomes], now, running_ids=started
        )
        return False, outcomes

    async def _with_associated(
        self, ev: ChangeEvent, record: dict[str, Any], update: ChangeEvent | None = None
    ) -> ChangeEvent:
        """Put the associated records the tenant's criteria read on ``record`` (virtual
        ``@assoc:<type>`` properties); for an association event, or an associated record's
        update (``update``), the event as the criteria see it: with the change of those
        properties it made."""
        store = self.enroller.records
        if store is None or ev.event_type == ChangeEventType.RECORD_DELETED:
            return ev
        refs = self.index.association_refs(ev.tenant_id, ev.object_type)
        if not refs:
            return ev
        loaded = await associated.load(store, ev.tenant_id, ev.object_type, ev.record_id, refs)
        if update is not None:
            extra = associated.update_changes(loaded, refs, update)
        else:
            extra = await associated.link_changes(store, ev, loaded, refs)
        record.update(associated.properties(loaded))
        return ev.model_copy(update={"changes": [*ev.changes, *extra]}) if extra else ev

    async def fan_out(self, ev: ChangeEvent) -> list[Outcome]:
        """A record of type T changed properties that active workflows of another object
        type read through an association ("associated company's industry"): re-evaluate the
        records associated to it, each as a synthetic update of that record (the change of its
        ``@assoc:`` property), with an id derived from the event's and the record's (a
        redelivery after a crash half-way re-evaluates only those not done). At most
        ``fanout_max`` linked records per reading object type (by record id), up to
        ``FANOUT_CONCURRENCY`` at once."""
        store = self.enroller.records
        if store is None or ev.event_type != ChangeEventType.RECORD_UPDATED:
            return []
        props = {
            c.property
            for c in ev.changes
            if not is_virtual_property(c.property) and c.old_value != c.new_value
        }
        if not props:
            return []
        targets = self.index.association_fanout(ev.tenant_id, ev.object_type, props)
        out: list[Outcome] = []
        for reader, labels in sorted(targets.items()):
            ids = await self._linked(ev, reader, labels, self.fanout_max + 1)
            if len(ids) > self.fanout_max:
                log.warning(
                    "%s %s/%s changed: more than %d associated %s records, only the first %d"
                    " re-evaluated",
                    ev.event_id,
                    ev.object_type,
                    ev.record_id,
                    self.fanout_max,
                    reader,
                    self.fanout_max,
                )
                ids = ids[: self.fanout_max]
            for i in range(0, len(ids), FANOUT_CONCURRENCY):
                page = ids[i : i + FANOUT_CONCURRENCY]
                done = await asyncio.gather(
                    *(self._reevaluate(ev, reader, rid) for rid in page), return_exceptions=True
                )
                for outs in done:  # the whole page finished; a failure fails the event
                    if isinstance(outs, BaseException):
                        raise outs
                    out += outs
        return out

    async def _linked(
        self, ev: ChangeEvent, reader: str, labels: set[str], first: int
    ) -> list[str]:
        """The ``first`` ids, sorted, of the ``reader`` records associated to ``ev``'s record
        (with one of ``labels``; "" = any). One page of at most ``first`` records per label
        (the CRM port pages by record id): the first ``first`` ids of the union are among the
        union of each label's first ``first``, so a company with 100k contacts costs reads of
        ``first`` rows, not 100k."""
        store = self.enroller.records
        assert store is not None
        ids: set[str] = set()
        for label in sorted(labels) if "" not in labels else [""]:
            try:
                links = await store.list_associations(
                    ev.tenant_id, ev.object_type, ev.record_id, reader, label=label, limit=first
                )
            except CrmflowError as exc:  # the record (or the object type) is gone
                log.warning("associated %s of %s/%s: %s", reader, ev.object_type, ev.record_id, exc)
                return []
            ids.update(a.to_record_id for a in links)
        return sorted(ids)[:first]

    async def _reevaluate(self, ev: ChangeEvent, object_type: str, record_id: str) -> list[Outcome]:
        event_id = f"assoc:{ev.event_id}:{object_type}:{record_id}"
        if len(event_id) > 200:
            event_id = "assoc:" + hashlib.sha256(event_id.encode()).hexdigest()
        syn = ChangeEvent(
            event_id=event_id,
            tenant_id=ev.tenant_id,
            event_type=ChangeEventType.RECORD_UPDATED,
            object_type=object_type,
            record_id=record_id,
            occurred_at=ev.occurred_at,
            # which associated record changed (the index then looks at "@assoc:<type>")
            associated_object_type=ev.object_type,
            associated_record_id=ev.record_id,
        )
        dup, outcomes = await self.ingest(syn, synthetic=True, associated_update=ev)
        return [] if dup else outcomes

    async def _refined(self, m: Match, ev: ChangeEvent) -> bool:
        """'At least / at most N times (in a date range)': count this record's occurrences."""
        if not m.kind.startswith("event:"):
            return True
        trig = m.workflow.events[(m.role, m.index)]
        if not trig.counted and ev.event_type not in _COUNTED_ALWAYS:
            return True
        r = trig.trigger.refinement
        n = await self.ledger.count_occurrence(
            tenant_id=ev.tenant_id,
            object_type=ev.object_type,
            record_id=ev.record_id,
            event_key=trig.occurrence_key(),
            event_id=ev.event_id,
            occurred_at=ev.occurred_at,
            window_start=r.window_start if r else None,
            window_end=r.window_end if r else None,
        )
        if r is None:
            return True
        return n >= max(r.min_count, 1) and (r.max_count == 0 or n <= r.max_count)

    async def _signal_running(
        self, ev: ChangeEvent, active: list[EnrollmentRow], skip: set[str]
    ) -> None:
        """Wake running enrollments of the record that wait for an event."""
        if ev.event_type == ChangeEventType.RECORD_DELETED:
            return
        for row in active:
            if row.status == "running" and row.run_workflow_id not in skip:
                await self.enroller.starter.record_event(
                    row.run_workflow_id, RecordEventSignal(event=ev)
                )

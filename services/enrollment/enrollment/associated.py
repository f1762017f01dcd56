"""Associated records for association-scoped filters ("associated company's industry is X").

The event path has no associated records; criteria reading them would otherwise be evaluated
against none (an ANY filter never true). When an active workflow of the tenant and object type
reads associated records, they are fetched through the CRM port and put on the record as the
virtual property ``@assoc:<object type>[:<label>]`` (``crmflow.criteria.evaluate`` reads it).
An association added or removed is a change of that property: its value before the event is
the list without the added record (or with the removed one), so the index and the transition
check see the flip like any property change.

A change of an associated record's *own* properties (the company's industry) is a change of
that property too, for every record associated to it: the ingestor fans the event out
(``Ingestor.fan_out``) and ``update_changes`` gives each linked record's change, the list
with the changed record's properties before the event -> after it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from crmflow.criteria.evaluate import ASSOCIATED_PREFIX, association_key
from crmflow.errors import CrmflowError
from crmflow.model.records import ChangeEvent, ChangeEventType, PropertyChange
from crmflow.records.port import RecordStore

log = logging.getLogger("crmflow.enrollment.associated")

Ref = tuple[str, str]  # (object type, label)
Loaded = dict[str, list[tuple[str, dict[str, Any]]]]  # virtual property -> [(id, properties)]

_LINK_EVENTS = (ChangeEventType.ASSOCIATION_ADDED, ChangeEventType.ASSOCIATION_REMOVED)
# Associated records are read in pages of this many (the CRM's page and batch size), up to
# MAX_ASSOCIATED per object type and label; a record with more (a company with 50,000
# contacts) is evaluated on the first MAX_ASSOCIATED by record id, and a warning is logged.
PAGE = 1000
MAX_ASSOCIATED = 10_000


def virtual_name(ref: Ref) -> str:
    return ASSOCIATED_PREFIX + association_key(*ref)


async def load(
    store: RecordStore, tenant_id: str, object_type: str, record_id: str, refs: Iterable[Ref]
) -> Loaded:
    """The record's associated records per (object type, label) the criteria read."""
    out: Loaded = {}
    for ot, label in sorted(refs):
        others = []
        try:
            ids = await _associated_ids(store, tenant_id, object_type, record_id, ot, label)
            for i in range(0, len(ids), PAGE):
                others += await store.batch_get(tenant_id, ot, ids[i : i + PAGE])
        except CrmflowError as exc:  # an object type the CRM no longer has: none associated
            log.warning("associated %s of %s/%s: %s", ot, object_type, record_id, exc)
            others = []
        out[virtual_name((ot, label))] = [(o.record_id, dict(o.properties)) for o in others]
    return out


async def _associated_ids(
    store: RecordStore, tenant_id: str, object_type: str, record_id: str, ot: str, label: str
) -> list[str]:
    """Ids of the ``ot`` records associated to the record (with ``label``; "" = any), by id,
    page by page, at most MAX_ASSOCIATED."""
    ids: list[str] = []
    after = ""
    while True:
        links = await store.list_associations(
            tenant_id, object_type, record_id, ot, label=label, limit=PAGE, after=after
        )
        page = list(dict.fromkeys(a.to_record_id for a in links))  # a record per label
        ids += page
        if len(ids) >= MAX_ASSOCIATED:
            if len(ids) > MAX_ASSOCIATED or len(page) == PAGE:
                log.warning(
                    "%s/%s has %d or more associated %s records; criteria see the first %d",
                    object_type,
                    record_id,
                    MAX_ASSOCIATED,
                    ot,
                    MAX_ASSOCIATED,
                )
            return ids[:MAX_ASSOCIATED]
        if len(page) < PAGE:
            return ids
        after = page[-1]


def properties(loaded: Loaded) -> dict[str, list[dict[str, Any]]]:
    return {k: [p for _, p in v] for k, v in loaded.items()}


async def link_changes(
    store: RecordStore, ev: ChangeEvent, loaded: Loaded, refs: Iterable[Ref]
) -> list[PropertyChange]:
    """For an association added / removed: the virtual properties it changed (old -> new)."""
    if ev.event_type not in _LINK_EVENTS or not ev.associated_object_type:
        return []
    affected = [
        r
        for r in refs
        if r[0] == ev.associated_object_type and (not r[1] or r[1] == ev.association_label)
    ]
    if not affected:
        return []
    other = ev.associated_record_id
    removed: dict[str, Any] | None = None
    if ev.event_type == ChangeEventType.ASSOCIATION_REMOVED:
        found = await store.batch_get(ev.tenant_id, ev.associated_object_type, [other])
        # deleted: the CRM's removal event carries the properties it had
        removed = dict(found[0].properties) if found else dict(ev.properties)
    out = []
    for ref in affected:
        name = virtual_name(ref)
        now = [(rid, p) for rid, p in loaded.get(name, []) if rid != other]
        new = [p for _, p in now]
        if removed is None:  # added: it is in the list now, not before
            added = [p for rid, p in loaded.get(name, []) if rid == other]
            new, old = new + added, new
        else:
            old = [*new, removed]
        out.append(PropertyChange(property=name, old_value=old, new_value=new))
    return out


def update_changes(
    loaded: Loaded, refs: Iterable[Ref], changed: ChangeEvent
) -> list[PropertyChange]:
    """``changed`` (an update of an associated record) as changes of the virtual properties
    that list it: old = its properties with the event's old values, new = with its new values.
    ``loaded`` is patched to the new values (what the CRM read may already be newer or, from a
    lagging replica, older than the event). No change where it is no longer associated."""
    new_values = {c.property: c.new_value for c in changed.changes}
    old_values = {c.property: c.old_value for c in changed.changes}
    out = []
    for ref in sorted(refs):
        if ref[0] != changed.object_type:
            continue
        name = virtual_name(ref)
        entries = loaded.get(name, [])
        if not any(rid == changed.record_id for rid, _ in entries):
            continue
        patched: list[tuple[str, dict[str, Any]]] = []
        old: list[dict[str, Any]] = []
        for rid, props in entries:
            if rid == changed.record_id:
                now = {**props, **new_values}
                patched.append((rid, now))
                old.append({**now, **old_values})
            else:
                patched.append((rid, props))
                old.append(props)
        loaded[name] = patched
        out.append(PropertyChange(property=name, old_value=old, new_value=[p for _, p in patched]))
    return out

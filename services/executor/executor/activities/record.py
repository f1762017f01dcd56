"""Record actions: change the enrolled record or the records around it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from crmflow.actions import record as spec
from crmflow.actions.record import (
    AssociateFields,
    ClearPropertyFields,
    CopyPropertyFields,
    CreateNoteFields,
    CreateRecordFields,
    CreateTaskFields,
    ListFields,
    MarketingStatusFields,
    RemoveAssociationFields,
    RotateOwnerFields,
    SetMode,
    SetPropertyFields,
)
from crmflow.criteria import evaluate
from crmflow.criteria.values import as_number, equal
from crmflow.errors import InvalidArgument
from crmflow.model.triggers import EventType
from crmflow.records.port import Association
from crmflow.records.sources import resolve_source
from executor.activities.base import ActionContext, Skip, handles

OWNER_PROPERTY = "hubspot_owner_id"


def _add_days(current: Any, days: float) -> Any:
    if current in (None, ""):
        raise InvalidArgument.field("fields.property", "the property holds no date to add days to")
    if isinstance(current, str) and len(current) == 10:
        return (date.fromisoformat(current) + timedelta(days=days)).isoformat()
    if isinstance(current, str):
        dt = datetime.fromisoformat(current.replace("Z", "+00:00"))
        return (dt + timedelta(days=days)).isoformat()
    if isinstance(current, int | float):  # epoch milliseconds
        return current + days * 86_400_000
    raise InvalidArgument.field("fields.property", f"cannot add days to {current!r}")


async def new_value(
    ctx: ActionContext, f: SetPropertyFields, target: tuple[str, str] | None = None
) -> Any:
    r = ctx.req
    if f.mode == SetMode.SET:
        return f.value
    if f.mode == SetMode.CLEAR:
        return None
    object_type, record_id = target or (r.object_type, r.record_id)
    current = (await ctx.store.get(r.tenant_id, object_type, record_id)).properties
    if f.mode == SetMode.COPY:
        return current.get(f.source_property)
    if f.mode in (SetMode.INCREMENT, SetMode.DECREMENT):
        base = as_number(current.get(f.property)) or 0.0
        result = base + (f.amount if f.mode == SetMode.INCREMENT else -f.amount)
        return int(result) if float(result).is_integer() else result
    return _add_days(current.get(f.property), f.amount)


@handles(spec.SET_PROPERTY)
async def set_property(ctx: ActionContext, f: SetPropertyFields) -> dict[str, Any]:
    r = ctx.req
    # "" = the enrolled record; otherwise the record a data source resolves to (e.g. update
    # the contact's primary company), read the same way the datasource-resolver reads it.
    target = await source_record(ctx, f.target_source) if f.target_source else None
    if f.mode in (SetMode.SET, SetMode.CLEAR):
        value = await new_value(ctx, f, target)
    else:  # relative to the current value: pin the first attempt's result
        value = await ctx.deps.history.remember(
            tenant_id=r.tenant_id,
            key=r.idempotency_key,
            compute=lambda: new_value(ctx, f, target),
        )
    object_type, record_id = target or (r.object_type, r.record_id)
    await ctx.store.update(
        r.tenant_id,
        object_type,
        record_id,
        {f.property: value},
        idempotency_key=r.idempotency_key,
    )
    out = {"property": f.property, "value": value}
    if target:
        out["object_type"], out["record_id"] = target
    return out


async def source_record(ctx: ActionContext, source_id: str) -> tuple[str, str]:
    """(object type, record id) of a data source's record; Skip when it has none."""
    r = ctx.req
    src = next((s for s in r.data_sources if s.source_id == source_id), None)
    if src is None:
        raise InvalidArgument.field(
            "fields.target_source", f"no data source {source_id!r} in this revision"
        )
    enrolled = await ctx.store.get(r.tenant_id, r.object_type, r.record_id)
    found = await resolve_source(
        ctx.store, r.tenant_id, src, r.object_type, r.record_id, enrolled
    )
    if found is None:
        raise Skip(f"data source {source_id!r} has no record for this enrollment")
    return found.object_type, found.record_id


@handles(spec.CLEAR_PROPERTY)
async def clear_property(ctx: ActionContext, f: ClearPropertyFields) -> dict[str, Any]:
    r = ctx.req
    await ctx.store.update(
        r.tenant_id,
        r.object_type,
        r.record_id,
        {f.property: None},
        idempotency_key=r.idempotency_key,
    )
    return {}


@handles(spec.COPY_PROPERTY)
async def copy_property(ctx: ActionContext, f: CopyPropertyFields) -> dict[str, Any]:
    r = ctx.req
    value = (await ctx.store.get(r.tenant_id, r.object_type, r.record_id)).properties.get(
        f.source_property
    )
    if not f.target_object_type:
        targets = [(r.object_type, r.record_id)]
    else:
        links = await ctx.store.list_associations(
            r.tenant_id,
            r.object_type,
            r.record_id,
            f.target_object_type,
            label=f.association_label,
        )
        targets = [(a.to_object_type, a.to_record_id) for a in links]
    if not targets:
        raise Skip(f"no associated {f.target_object_type} record to copy to")
    for object_type, record_id in targets:
        await ctx.store.update(
            r.tenant_id,
            object_type,
            record_id,
            {f.target_property: value},
            idempotency_key=f"{r.idempotency_key}#{object_type}:{record_id}",
        )
    return {"value": value, "updated": len(targets)}


def _would_reenroll(ctx: ActionContext, object_type: str, props: dict[str, Any]) -> str:
    """Why a record created here would enroll in this same workflow ('' = it would not)."""
    if object_type != ctx.req.object_type:
        return ""
    now = datetime.now(UTC)
    for t in ctx.req.triggers:
        if t.criteria is not None and evaluate(t.criteria.filter, props, now=now).matched:
            return "it would meet this workflow's enrollment criteria"
        ev = t.event
        if ev is None:
            continue
        if ev.filter is not None and not evaluate(ev.filter, props, now=now).matched:
            continue
        if ev.event_type == EventType.RECORD_CREATED:
            return "this workflow enrolls every created record of this type"
        if (
            ev.event_type == EventType.PROPERTY_CHANGED
            and ev.property in props
            and (not ev.to_values or any(equal(props[ev.property], v) for v in ev.to_values))
        ):
            return f"setting {ev.property} would trigger this workflow"
    return ""


@handles(spec.CREATE_RECORD)
async def create_record(ctx: ActionContext, f: CreateRecordFields) -> dict[str, Any]:
    r = ctx.req
    why = _would_reenroll(ctx, f.object_type, f.properties)
    if why:
        # Infinite-loop guard: the record this creates would enroll here and create another.
        raise Skip(f"not created: {why} (infinite-loop guard)")
    rec = await ctx.store.create(
        r.tenant_id, f.object_type, f.properties, idempotency_key=r.idempotency_key
    )
    if f.associate_with_enrolled:
        await ctx.store.associate(
            r.tenant_id,
            Association(
                from_object_type=r.object_type,
                from_record_id=r.record_id,
                to_object_type=f.object_type,
                to_record_id=rec.record_id,
                label=f.association_label,
            ),
        )
    return {"record_id": rec.record_id, "object_type": f.object_type}


async def _record_owner(ctx: ActionContext) -> str:
    r = ctx.req
    props = (await ctx.store.get(r.tenant_id, r.object_type, r.record_id)).properties
    return str(props.get(OWNER_PROPERTY) or "")


@handles(spec.CREATE_TASK)
async def create_task(ctx: ActionContext, f: CreateTaskFields) -> dict[str, Any]:
    r = ctx.req
    owner = await _record_owner(ctx) if f.assign_to == "record_owner" else f.assign_to
    due = (datetime.now(UTC) + timedelta(days=f.due_in_days)).date().isoformat()
    props: dict[str, Any] = {
        "title": f.title,
        "body": f.body,
        "due_date": due,
        "task_type": f.task_type,
        "status": "NOT_STARTED",
    }
    if f.priority:
        props["priority"] = f.priority
    if owner:
        props[OWNER_PROPERTY] = owner
    task = await ctx.store.create(r.tenant_id, "task", props, idempotency_key=r.idempotency_key)
    await ctx.store.associate(
        r.tenant_id,
        Association(
            from_object_type=r.object_type,
            from_record_id=r.record_id,
            to_object_type="task",
            to_record_id=task.record_id,
        ),
    )
    return {"task_id": task.record_id, "owner_id": owner}


@handles(spec.CREATE_NOTE)
async def create_note(ctx: ActionContext, f: CreateNoteFields) -> dict[str, Any]:
    r = ctx.req
    note = await ctx.store.create(
        r.tenant_id,
        "note",
        {"body": f.body, "created_by": f"workflow:{r.workflow_id}"},
        idempotency_key=r.idempotency_key,
    )
    await ctx.store.associate(
        r.tenant_id,
        Association(
            from_object_type=r.object_type,
            from_record_id=r.record_id,
            to_object_type="note",
            to_record_id=note.record_id,
        ),
    )
    return {"note_id": note.record_id}


@handles(spec.ASSOCIATE_RECORDS)
async def associate_records(ctx: ActionContext, f: AssociateFields) -> dict[str, Any]:
    r = ctx.req
    if not f.to_record_id:
        raise Skip(f"no {f.to_object_type} record to associate with")
    await ctx.store.get(r.tenant_id, f.to_object_type, f.to_record_id)  # NotFound: no retry
    await ctx.store.associate(
        r.tenant_id,
        Association(
            from_object_type=r.object_type,
            from_record_id=r.record_id,
            to_object_type=f.to_object_type,
            to_record_id=f.to_record_id,
            label=f.label,
        ),
    )
    return {"record_id": f.to_record_id}


@handles(spec.REMOVE_ASSOCIATION)
async def remove_association(ctx: ActionContext, f: RemoveAssociationFields) -> dict[str, Any]:
    r = ctx.req
    links = await ctx.store.list_associations(
        r.tenant_id, r.object_type, r.record_id, f.to_object_type, label=f.label
    )
    gone = [a for a in links if not f.to_record_id or a.to_record_id == f.to_record_id]
    for a in gone:
        await ctx.store.unassociate(r.tenant_id, a)
    if not gone:
        raise Skip("no matching association")
    return {"removed": len(gone)}


@handles(spec.ROTATE_OWNER)
async def rotate_owner(ctx: ActionContext, f: RotateOwnerFields) -> dict[str, Any]:
    r = ctx.req
    props = (await ctx.store.get(r.tenant_id, r.object_type, r.record_id)).properties
    if props.get(f.property) and not f.overwrite:
        raise Skip("the record already has an owner")
    candidates = list(f.owner_ids)
    if f.team_ids:
        owners = {o.owner_id: o for o in await ctx.store.list_owners(r.tenant_id)}
        for team in f.team_ids:
            t = owners.get(team)
            if t is None:
                raise InvalidArgument.field("fields.team_ids", f"unknown team {team!r}")
            candidates += [m for m in t.member_ids if m not in candidates]
    if not candidates:
        raise InvalidArgument.field("fields.team_ids", "the teams have no members")
    # The rotation is per workflow action: each rotate action keeps its own turn.
    owner = await ctx.deps.history.rotate(
        tenant_id=r.tenant_id,
        rotation_key=f"{r.workflow_id}/{r.action_id}",
        candidates=candidates,
        key=r.idempotency_key,
    )
    await ctx.store.update(
        r.tenant_id,
        r.object_type,
        r.record_id,
        {f.property: owner},
        idempotency_key=r.idempotency_key,
    )
    return {"owner_id": owner}


@handles(spec.ADD_TO_LIST)
async def add_to_list(ctx: ActionContext, f: ListFields) -> dict[str, Any]:
    r = ctx.req
    await ctx.store.add_to_list(r.tenant_id, f.list_id, [r.record_id])
    return {}


@handles(spec.REMOVE_FROM_LIST)
async def remove_from_list(ctx: ActionContext, f: ListFields) -> dict[str, Any]:
    r = ctx.req
    if not await ctx.store.is_member(r.tenant_id, f.list_id, r.record_id):
        raise Skip("the record is not in the list")
    await ctx.store.remove_from_list(r.tenant_id, f.list_id, [r.record_id])
    return {}


@handles(spec.SET_MARKETING_STATUS)
async def set_marketing_status(ctx: ActionContext, f: MarketingStatusFields) -> dict[str, Any]:
    r = ctx.req
    if r.object_type != "contact":
        raise InvalidArgument.field("action_type", "marketing status applies to contacts only")
    await ctx.store.update(
        r.tenant_id,
        r.object_type,
        r.record_id,
        {f.property: f.status.value},
        idempotency_key=r.idempotency_key,
    )
    return {"status": f.status.value}

"""The embedded store's tenant directory: owners (users and teams), marketing subscription
status, custom events and form submissions, and custom object types and properties.

Definitions change rarely and are cached per process (``SqlBase.schema``); defining one here
drops the cache entry, which is exact because one process owns the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from crmflow.errors import (
    AlreadyExists,
    ErrorList,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from crmflow.model.records import ChangeEvent, ChangeEventType
from crmflow.records.event_definitions import (
    check_definition,
    check_update,
    validate_event_properties,
)
from crmflow.records.port import (
    EventDefinition,
    ObjectTypeDefinition,
    Owner,
    PropertyDefinition,
    PropertyType,
    SubscriptionStatus,
)
from crmflow.records.schema import (
    STANDARD_OBJECT_TYPES,
    STANDARD_PROPERTIES,
    Schema,
    check_name,
    check_property_definition,
)
from crmflow.records.sql_base import OTYPE, PROP, SqlBase, check_id, new_id
from crmflow.records.tables import CrmEventDefinition, CrmOutbox, CrmOwner, CrmSubscription

OW = CrmOwner.__table__  # type: ignore[attr-defined]
SUB = CrmSubscription.__table__  # type: ignore[attr-defined]
OUT = CrmOutbox.__table__  # type: ignore[attr-defined]
EVDEF = CrmEventDefinition.__table__  # type: ignore[attr-defined]


def _event_definition(row: Any) -> EventDefinition:
    return EventDefinition(
        name=row.name,
        label=row.label,
        object_type=row.object_type,
        properties=[PropertyDefinition.model_validate(p) for p in row.properties or []],
    )


class DirectoryMixin(SqlBase):
    async def check_owners(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        schema: Schema,
        values: dict[str, Any],
        field: str,
        errs: ErrorList,
    ) -> None:
        wanted = {
            k: v
            for k, v in values.items()
            if v is not None
            and k in schema.properties
            and schema.properties[k].type == PropertyType.OWNER
        }
        if not wanted:
            return
        rows = await conn.execute(
            sa.select(OW.c.owner_id).where(
                OW.c.tenant_id == tenant_id, OW.c.owner_id.in_(list(wanted.values()))
            )
        )
        known = {r.owner_id for r in rows}
        for k, v in wanted.items():
            if v not in known:
                errs.add(f"{field}.{k}", f"no owner {v!r} in this tenant")

    # Owners and subscriptions ---------------------------------------------------------------
    async def list_owners(self, tenant_id: str) -> list[Owner]:
        check_id(tenant_id, "tenant_id", "tenant id")
        async with self.read() as conn:
            rows = await conn.execute(
                sa.select(OW)
                .where(OW.c.tenant_id == tenant_id)
                .order_by(OW.c.kind.desc(), OW.c.owner_id)
            )
            return [
                Owner(
                    owner_id=r.owner_id,
                    kind=r.kind,
                    email=r.email,
                    name=r.name,
                    member_ids=list(r.member_ids or []),
                )
                for r in rows
            ]

    async def upsert_owner(self, tenant_id: str, owner: Owner) -> Owner:
        check_id(tenant_id, "tenant_id", "tenant id")
        check_id(owner.owner_id, "owner.owner_id", "owner id")
        if owner.kind not in ("user", "team"):
            raise InvalidArgument.field("owner.kind", "must be 'user' or 'team'")
        if owner.kind == "user" and owner.member_ids:
            raise InvalidArgument.field("owner.member_ids", "only a team has members")
        async with self.write() as conn:
            if owner.member_ids:
                rows = await conn.execute(
                    sa.select(OW.c.owner_id).where(
                        OW.c.tenant_id == tenant_id,
                        OW.c.kind == "user",
                        OW.c.owner_id.in_(owner.member_ids),
                    )
                )
                known = {r.owner_id for r in rows}
                for i, m in enumerate(owner.member_ids):
                    if m not in known:
                        raise InvalidArgument.field(f"owner.member_ids[{i}]", f"no user {m!r}")
            where = (OW.c.tenant_id == tenant_id, OW.c.owner_id == owner.owner_id)
            data = owner.model_dump(exclude={"owner_id"})
            if (await conn.execute(sa.select(OW.c.owner_id).where(*where))).first():
                await conn.execute(OW.update().where(*where).values(**data))
            else:
                await conn.execute(
                    OW.insert().values(tenant_id=tenant_id, owner_id=owner.owner_id, **data)
                )
        return owner

    async def get_subscription_status(self, tenant_id: str, contact_id: str) -> str:
        check_id(tenant_id, "tenant_id", "tenant id")
        async with self.read() as conn:
            await self.require(conn, tenant_id, "contact", contact_id)
            row = (
                await conn.execute(
                    sa.select(SUB.c.status).where(
                        SUB.c.tenant_id == tenant_id, SUB.c.contact_id == contact_id
                    )
                )
            ).first()
            return row.status if row else SubscriptionStatus.UNKNOWN.value

    async def set_subscription_status(
        self, tenant_id: str, contact_id: str, status: SubscriptionStatus
    ) -> None:
        check_id(tenant_id, "tenant_id", "tenant id")
        try:
            status = SubscriptionStatus(status)
        except ValueError:
            raise InvalidArgument.field("status", "subscribed, unsubscribed or unknown") from None
        async with self.write() as conn:
            await self.require(conn, tenant_id, "contact", contact_id, lock=True)
            where = (SUB.c.tenant_id == tenant_id, SUB.c.contact_id == contact_id)
            await conn.execute(SUB.delete().where(*where))
            await conn.execute(
                SUB.insert().values(
                    tenant_id=tenant_id,
                    contact_id=contact_id,
                    status=status.value,
                    updated_at=self.now(),
                )
            )

    # Custom events and form submissions ------------------------------------------------------
    async def record_event(self, tenant_id: str, event: ChangeEvent) -> None:
        check_id(tenant_id, "tenant_id", "tenant id")
        if event.tenant_id != tenant_id:
            raise InvalidArgument.field("event.tenant_id", "must equal the request's tenant_id")
        if event.event_type == ChangeEventType.CUSTOM_EVENT:
            check_name(event.event_name, "event.event_name")
        elif event.event_type == ChangeEventType.FORM_SUBMITTED:
            check_id(event.form_id, "event.form_id", "form id")
        else:
            raise InvalidArgument.field(
                "event.event_type",
                "only custom events and form submissions can be recorded; "
                "record changes produce their own events",
            )
        if event.event_id:
            check_id(event.event_id, "event.event_id", "event id")
        else:
            event = event.model_copy(update={"event_id": new_id()})
        async with self.write() as conn:
            await self.schema(conn, tenant_id, event.object_type)
            if event.event_type == ChangeEventType.CUSTOM_EVENT:
                event = await self._checked_against_definition(conn, tenant_id, event)
            await self.require(conn, tenant_id, event.object_type, event.record_id)
            if (
                await conn.execute(sa.select(OUT.c.seq).where(OUT.c.event_id == event.event_id))
            ).first():
                return  # already recorded: a retry
            await self.emit(conn, [event])

    async def _checked_against_definition(
        self, conn: AsyncConnection, tenant_id: str, event: ChangeEvent
    ) -> ChangeEvent:
        """A defined custom event's properties validated (and normalised) against its
        definition; an undefined one is recorded as sent (free-form properties)."""
        d = await self._read_event_definition(conn, tenant_id, event.event_name)
        if d is None:
            return event
        if d.object_type != event.object_type:
            raise InvalidArgument.field(
                "event.object_type",
                f"event {d.name!r} happens to {d.object_type!r}, not {event.object_type!r}",
            )
        props = validate_event_properties(d, event.properties, field="event.properties")
        return event.model_copy(
            update={"properties": {k: v for k, v in props.items() if v is not None}}
        )

    # Custom event definitions ----------------------------------------------------------------
    async def _read_event_definition(
        self, conn: AsyncConnection, tenant_id: str, name: str, *, lock: bool = False
    ) -> EventDefinition | None:
        stmt = sa.select(EVDEF).where(EVDEF.c.tenant_id == tenant_id, EVDEF.c.name == name)
        if lock and not self.sqlite:
            stmt = stmt.with_for_update()
        row = (await conn.execute(stmt)).first()
        return _event_definition(row) if row else None

    async def define_event(self, tenant_id: str, definition: EventDefinition) -> EventDefinition:
        check_id(tenant_id, "tenant_id", "tenant id")
        d = check_definition(definition)
        try:
            await self._write_event_definition(tenant_id, d)
        except sa.exc.IntegrityError:
            # PostgreSQL: a concurrent first definition of the same name committed between our
            # read and insert (FOR UPDATE locks no absent row). Again: now it is an update.
            await self._write_event_definition(tenant_id, d)
        return d

    async def _write_event_definition(self, tenant_id: str, d: EventDefinition) -> None:
        async with self.write() as conn:
            await self.schema(conn, tenant_id, d.object_type)  # NotFound: unknown object type
            old = await self._read_event_definition(conn, tenant_id, d.name, lock=True)
            now = self.now()
            values = {
                "label": d.label,
                "object_type": d.object_type,
                "properties": [p.model_dump(mode="json") for p in d.properties],
                "updated_at": now,
            }
            if old is None:
                await conn.execute(
                    EVDEF.insert().values(
                        tenant_id=tenant_id, name=d.name, created_at=now, **values
                    )
                )
            else:
                check_update(old, d)
                await conn.execute(
                    EVDEF.update()
                    .where(EVDEF.c.tenant_id == tenant_id, EVDEF.c.name == d.name)
                    .values(**values)
                )

    async def get_event_definition(self, tenant_id: str, name: str) -> EventDefinition:
        check_id(tenant_id, "tenant_id", "tenant id")
        check_name(name, "name")
        async with self.read() as conn:
            d = await self._read_event_definition(conn, tenant_id, name)
        if d is None:
            raise NotFound("event_definition", name, f"no event definition {name!r}")
        return d

    async def list_event_definitions(
        self, tenant_id: str, object_type: str = ""
    ) -> list[EventDefinition]:
        check_id(tenant_id, "tenant_id", "tenant id")
        stmt = sa.select(EVDEF).where(EVDEF.c.tenant_id == tenant_id)
        if object_type:
            check_name(object_type, "object_type")
            stmt = stmt.where(EVDEF.c.object_type == object_type)
        async with self.read() as conn:
            rows = await conn.execute(stmt.order_by(EVDEF.c.name))
            return [_event_definition(r) for r in rows]

    # Custom object types and properties ----------------------------------------------------
    async def define_object_type(
        self,
        tenant_id: str,
        definition: ObjectTypeDefinition,
        properties: Sequence[PropertyDefinition] = (),
    ) -> ObjectTypeDefinition:
        check_id(tenant_id, "tenant_id", "tenant id")
        check_name(definition.name, "object_type.name")
        names = {p.name for p in properties}
        if definition.primary_property and definition.primary_property not in names:
            raise InvalidArgument.field(
                "object_type.primary_property", "must be one of the properties defined with it"
            )
        for i, p in enumerate(properties):
            check_property_definition(
                p.model_copy(update={"object_type": definition.name}), f"properties[{i}]"
            )
        async with self.write() as conn:
            exists = (
                await conn.execute(
                    sa.select(OTYPE.c.name).where(
                        OTYPE.c.tenant_id == tenant_id, OTYPE.c.name == definition.name
                    )
                )
            ).first()
            if definition.name in STANDARD_OBJECT_TYPES or exists:
                raise AlreadyExists(f"object type {definition.name!r} already exists")
            await conn.execute(
                OTYPE.insert().values(
                    tenant_id=tenant_id,
                    name=definition.name,
                    label=definition.label,
                    primary_property=definition.primary_property,
                    created_at=self.now(),
                )
            )
            for p in properties:
                await conn.execute(
                    PROP.insert().values(
                        tenant_id=tenant_id,
                        **_prop_row(p.model_copy(update={"object_type": definition.name})),
                    )
                )
        self.forget_schema(tenant_id, definition.name)
        return definition.model_copy(update={"custom": True})

    async def define_property(
        self, tenant_id: str, definition: PropertyDefinition
    ) -> PropertyDefinition:
        check_id(tenant_id, "tenant_id", "tenant id")
        check_property_definition(definition, "property")
        ot = definition.object_type
        async with self.write() as conn:
            schema = await self.schema(conn, tenant_id, ot)
            if any(p.name == definition.name for p in STANDARD_PROPERTIES.get(ot, [])) or (
                definition.name in ("createdate", "lastmodifieddate")
            ):
                raise FailedPrecondition(f"{definition.name!r} is a standard property of {ot!r}")
            old = schema.properties.get(definition.name)
            if old is not None and old.type != definition.type:
                raise FailedPrecondition(
                    f"property {definition.name!r} is a {old.type.value}; its type can't change"
                )
            where = (
                PROP.c.tenant_id == tenant_id,
                PROP.c.object_type == ot,
                PROP.c.name == definition.name,
            )
            await conn.execute(PROP.delete().where(*where))
            await conn.execute(PROP.insert().values(tenant_id=tenant_id, **_prop_row(definition)))
        self.forget_schema(tenant_id, ot)
        return definition


def _prop_row(p: PropertyDefinition) -> dict[str, Any]:
    return {
        "object_type": p.object_type,
        "name": p.name,
        "label": p.label,
        "type": p.type.value,
        "options": list(p.options),
        "required": p.required,
        "read_only": p.read_only,
    }

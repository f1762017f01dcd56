"""SqlRecordStore: the embedded CRM store (SQLite by default, PostgreSQL in production).

Table layout and why: see ``crmflow.records.tables``. Filter translation: ``sql_filters``.
Search and count: ``sql_search``. Data sources of a record in one statement: ``sql_sources``.
Associations and lists: ``sql_links``. Owners, subscriptions, custom events and custom
definitions: ``sql_directory``.

Guarantees:
- Every write is one transaction that also writes its change events to the outbox, so an event
  exists iff its change committed.
- A refused request writes nothing. Batches (``batch_create``/``batch_update``) are ALL OR
  NOTHING: every item is validated first and all violations are reported at once, named
  ``records[i].properties.<name>``; one bad item refuses the whole batch.
- Idempotency keys (per tenant) make a retried create/update return the first result; reusing a
  key for a different request is INVALID_ARGUMENT.
- ``createdate``/``lastmodifieddate`` (and the record's created_at/updated_at) are kept by the
  store and are read-only for callers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from crmflow.db import create_engine
from crmflow.errors import AlreadyExists, ErrorList, InvalidArgument, NotFound
from crmflow.model.records import ChangeEventType, Record
from crmflow.records.port import (
    ObjectTypeDefinition,
    PropertyDefinition,
    PropertyHistoryEntry,
    RecordStore,
    RecordUpdate,
)
from crmflow.records.schema import STANDARD_OBJECT_TYPES, validate_properties
from crmflow.records.sql_base import (
    HIST,
    OTYPE,
    RECORD_BY_ID,
    VAL,
    R,
    check_id,
    check_tenant,
    new_id,
    record_not_found,
)
from crmflow.records.sql_directory import DirectoryMixin
from crmflow.records.sql_sources import SourcesMixin
from crmflow.records.tables import CrmIdempotency

IDEM = CrmIdempotency.__table__  # type: ignore[attr-defined]
# batch_get on SQLite: the ids travel as one JSON array parameter, so the statement is built and
# compiled once (an IN list would compile anew for every count); each id is a primary-key probe.
_IDS = sa.func.json_each(sa.bindparam("ids")).table_valued("value")
_BATCH_SQLITE = sa.select(R).where(
    R.c.tenant_id == sa.bindparam("t"),
    R.c.object_type == sa.bindparam("ot"),
    R.c.record_id.in_(sa.select(_IDS.c.value)),
)
MAX_PAGE = 1000
MAX_BATCH = 1000


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class SqlRecordStore(SourcesMixin, DirectoryMixin, RecordStore):
    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> SqlRecordStore:
        if migrate:
            from crmflow.records.migrations import migrate as run_migrations

            await run_migrations(url)
        return cls(create_engine(url))

    # Schema ---------------------------------------------------------------------------
    async def list_object_types(self, tenant_id: str) -> list[ObjectTypeDefinition]:
        check_tenant(tenant_id)
        async with self.read() as conn:
            rows = await conn.execute(
                sa.select(OTYPE).where(OTYPE.c.tenant_id == tenant_id).order_by(OTYPE.c.name)
            )
            custom = [
                ObjectTypeDefinition(
                    name=r.name, label=r.label, custom=True, primary_property=r.primary_property
                )
                for r in rows
            ]
        return [*STANDARD_OBJECT_TYPES.values(), *custom]

    async def list_properties(self, tenant_id: str, object_type: str) -> list[PropertyDefinition]:
        check_tenant(tenant_id)
        async with self.read() as conn:
            schema = await self.schema(conn, tenant_id, object_type)
        return list(schema.properties.values())

    # Reads ----------------------------------------------------------------------------
    async def get(self, tenant_id: str, object_type: str, record_id: str) -> Record:
        check_tenant(tenant_id)
        schema = (await self.schemas(tenant_id, [object_type]))[object_type]
        if isinstance(schema, NotFound):
            raise schema
        found = await self.read_records(
            RECORD_BY_ID, {"t": tenant_id, "ot": object_type, "rid": record_id}
        )
        if not found:
            raise record_not_found(object_type, record_id)
        return found[0]

    async def batch_get(
        self, tenant_id: str, object_type: str, record_ids: Sequence[str]
    ) -> list[Record]:
        check_tenant(tenant_id)
        if len(record_ids) > MAX_BATCH:
            raise InvalidArgument.field("record_ids", f"at most {MAX_BATCH} ids per call")
        schema = (await self.schemas(tenant_id, [object_type]))[object_type]
        if isinstance(schema, NotFound):
            raise schema
        ids = list(dict.fromkeys(record_ids))
        if not ids:
            return []
        if self.reader is not None:  # SQLite: one statement whatever the count (ids as JSON)
            params = {"t": tenant_id, "ot": object_type, "ids": json.dumps(ids)}
            found = {r.record_id: r for r in await self.read_records(_BATCH_SQLITE, params)}
            return [found[i] for i in ids if i in found]
        async with self.read() as conn:
            rows = await self.fetch(conn, tenant_id, object_type, ids)
        return [self.to_record(rows[i]) for i in ids if i in rows]

    # Writes ---------------------------------------------------------------------------
    async def create(
        self,
        tenant_id: str,
        object_type: str,
        properties: dict[str, Any],
        *,
        record_id: str = "",
        idempotency_key: str = "",
    ) -> Record:
        return (
            await self._create_many(
                tenant_id, object_type, [(properties, record_id)], idempotency_key, batch=False
            )
        )[0]

    async def batch_create(
        self,
        tenant_id: str,
        object_type: str,
        items: Sequence[dict[str, Any]],
        *,
        idempotency_key: str = "",
    ) -> list[Record]:
        if not items or len(items) > MAX_BATCH:
            raise InvalidArgument.field("records", f"between 1 and {MAX_BATCH} records per batch")
        return await self._create_many(
            tenant_id, object_type, [(dict(p), "") for p in items], idempotency_key, batch=True
        )

    async def _create_many(
        self,
        tenant_id: str,
        object_type: str,
        items: list[tuple[dict[str, Any], str]],
        key: str,
        *,
        batch: bool,
    ) -> list[Record]:
        check_tenant(tenant_id)
        fp = _fingerprint("create", object_type, items)
        try:
            async with self.write() as conn:
                if key and (done := await self._replay(conn, tenant_id, key, fp)) is not None:
                    return done
                schema = await self.schema(conn, tenant_id, object_type)
                errs = ErrorList()
                prepared = []
                for i, (props, rid) in enumerate(items):
                    prefix = f"records[{i}]." if batch else ""
                    if rid:
                        check_id(rid, f"{prefix}record_id", "record id")
                    values = validate_properties(
                        schema, props, field=f"{prefix}properties", errors=errs
                    )
                    await self.check_owners(
                        conn, tenant_id, schema, values, f"{prefix}properties", errs
                    )
                    prepared.append((rid or new_id(), values))
                errs.raise_if_any("invalid records" if batch else "invalid record")
                ids = [rid for rid, _ in prepared]
                if len(set(ids)) != len(ids) or await self.fetch(conn, tenant_id, object_type, ids):
                    raise AlreadyExists(f"{object_type} record id already exists")
                now = self.now()
                records, events = [], []
                record_rows: list[dict[str, Any]] = []
                value_rows: list[dict[str, Any]] = []
                history_rows: list[dict[str, Any]] = []
                stamp = now.isoformat()
                for rid, values in prepared:
                    props = {k: v for k, v in values.items() if v is not None}
                    props |= {"createdate": stamp, "lastmodifieddate": stamp}
                    record_rows.append(
                        {
                            "tenant_id": tenant_id,
                            "object_type": object_type,
                            "record_id": rid,
                            "properties": props,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                    value_rows += self.value_rows_for(tenant_id, schema, rid, props)
                    history_rows += self.history_rows_for(
                        tenant_id, object_type, rid, props, now, "create"
                    )
                    changes = {k: (None, v) for k, v in props.items() if k != "lastmodifieddate"}
                    events.append(
                        self.event(
                            tenant_id,
                            ChangeEventType.RECORD_CREATED,
                            object_type,
                            rid,
                            at=now,
                            changes=changes,
                            # the post-change snapshot: consumers need no read-back
                            properties=dict(props),
                        )
                    )
                    records.append(
                        Record(
                            tenant_id=tenant_id,
                            object_type=object_type,
                            record_id=rid,
                            properties=props,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                # One multi-row statement per table: a 1000-record import is 4 round trips.
                await conn.execute(R.insert(), record_rows)
                if value_rows:
                    await conn.execute(VAL.insert(), value_rows)
                await conn.execute(HIST.insert(), history_rows)
                await self.emit(conn, events)
                if key:
                    await self._remember(conn, tenant_id, key, "create", fp, object_type, ids)
                return records
        except IntegrityError:
            if key:  # a concurrent retry with the same key won the race: return its result
                async with self.write() as conn:
                    if (done := await self._replay(conn, tenant_id, key, fp)) is not None:
                        return done
            raise AlreadyExists(f"{object_type} record id already exists") from None

    async def update(
        self,
        tenant_id: str,
        object_type: str,
        record_id: str,
        properties: dict[str, Any],
        *,
        idempotency_key: str = "",
    ) -> Record:
        return (
            await self._update_many(
                tenant_id,
                object_type,
                [RecordUpdate(record_id=record_id, properties=properties)],
                idempotency_key,
                batch=False,
            )
        )[0]

    async def batch_update(
        self,
        tenant_id: str,
        object_type: str,
        items: Sequence[RecordUpdate],
        *,
        idempotency_key: str = "",
    ) -> list[Record]:
        if not items or len(items) > MAX_BATCH:
            raise InvalidArgument.field("records", f"between 1 and {MAX_BATCH} records per batch")
        return await self._update_many(
            tenant_id, object_type, list(items), idempotency_key, batch=True
        )

    async def _update_many(
        self,
        tenant_id: str,
        object_type: str,
        items: list[RecordUpdate],
        key: str,
        *,
        batch: bool,
    ) -> list[Record]:
        check_tenant(tenant_id)
        fp = _fingerprint("update", object_type, [i.model_dump() for i in items])
        async with self.write() as conn:
            if key and (done := await self._replay(conn, tenant_id, key, fp)) is not None:
                return done
            schema = await self.schema(conn, tenant_id, object_type)
            rows = await self.fetch(
                conn, tenant_id, object_type, [i.record_id for i in items], lock=True
            )
            for i in items:
                if i.record_id not in rows:
                    raise record_not_found(object_type, i.record_id)
            errs = ErrorList()
            prepared = []
            for n, item in enumerate(items):
                prefix = f"records[{n}]." if batch else ""
                values = validate_properties(
                    schema,
                    item.properties,
                    existing=rows[item.record_id].properties,
                    field=f"{prefix}properties",
                    errors=errs,
                )
                await self.check_owners(
                    conn, tenant_id, schema, values, f"{prefix}properties", errs
                )
                prepared.append((item.record_id, values))
            errs.raise_if_any("invalid records" if batch else "invalid record")
            now = self.now()
            current = {rid: dict(rows[rid].properties or {}) for rid in rows}
            updated_at = {rid: rows[rid].updated_at for rid in rows}
            events = []
            for rid, values in prepared:
                old = current[rid]
                changed = {k: (old.get(k), v) for k, v in values.items() if old.get(k) != v}
                if not changed:
                    continue
                new = {**old, **{k: v for k, v in values.items()}}
                new = {k: v for k, v in new.items() if v is not None}
                new["lastmodifieddate"] = now.isoformat()
                current[rid], updated_at[rid] = new, now
                await conn.execute(
                    R.update()
                    .where(
                        R.c.tenant_id == tenant_id,
                        R.c.object_type == object_type,
                        R.c.record_id == rid,
                    )
                    .values(properties=new, updated_at=now)
                )
                touched = {k: new.get(k) for k in [*changed, "lastmodifieddate"]}
                await self.write_values(conn, tenant_id, schema, rid, touched, replace=True)
                await self.write_history(
                    conn,
                    tenant_id,
                    object_type,
                    rid,
                    {k: n for k, (_, n) in changed.items()},
                    now,
                    "update",
                )
                events.append(
                    self.event(
                        tenant_id,
                        ChangeEventType.RECORD_UPDATED,
                        object_type,
                        rid,
                        at=now,
                        changes=changed,
                        # the whole record after the change (enrollment evaluates criteria on
                        # it without fetching the record back from the CRM)
                        properties=dict(new),
                    )
                )
            await self.emit(conn, events)
            ids = [i.record_id for i in items]
            if key:
                await self._remember(conn, tenant_id, key, "update", fp, object_type, ids)
            return [
                Record(
                    tenant_id=tenant_id,
                    object_type=object_type,
                    record_id=rid,
                    properties=current[rid],
                    created_at=rows[rid].created_at,
                    updated_at=updated_at[rid],
                )
                for rid in ids
            ]

    async def delete(self, tenant_id: str, object_type: str, record_id: str) -> None:
        check_tenant(tenant_id)
        async with self.write() as conn:
            await self.schema(conn, tenant_id, object_type)
            row = await self.require(conn, tenant_id, object_type, record_id, lock=True)
            where = (
                R.c.tenant_id == tenant_id,
                R.c.object_type == object_type,
                R.c.record_id == record_id,
            )
            await conn.execute(R.delete().where(*where))
            await conn.execute(
                VAL.delete().where(
                    VAL.c.tenant_id == tenant_id,
                    VAL.c.object_type == object_type,
                    VAL.c.record_id == record_id,
                )
            )
            await conn.execute(
                HIST.delete().where(
                    HIST.c.tenant_id == tenant_id,
                    HIST.c.object_type == object_type,
                    HIST.c.record_id == record_id,
                )
            )
            # The associations the delete drops, each as an association removal seen from the
            # other record (as ``unassociate`` reports it on that side), before the deletion;
            # they carry the deleted record's last properties (it can no longer be read, and
            # criteria reading it through the association compare against them).
            dropped = await self.links_of(conn, tenant_id, object_type, record_id)
            await self.forget_links(conn, tenant_id, object_type, record_id)
            props = dict(row.properties or {})
            await self.emit(
                conn,
                [
                    *(
                        self.event(
                            tenant_id,
                            ChangeEventType.ASSOCIATION_REMOVED,
                            to_type,
                            to_id,
                            associated_object_type=object_type,
                            associated_record_id=record_id,
                            association_label=label,
                            properties=props,
                        )
                        for to_type, to_id, label in dropped
                    ),
                    self.event(
                        tenant_id,
                        ChangeEventType.RECORD_DELETED,
                        object_type,
                        record_id,
                        changes={k: (v, None) for k, v in props.items()},
                        properties=props,
                    ),
                ],
            )

    async def property_history(
        self, tenant_id: str, object_type: str, record_id: str, property: str
    ) -> list[PropertyHistoryEntry]:
        check_tenant(tenant_id)
        async with self.read() as conn:
            schema = await self.schema(conn, tenant_id, object_type)
            schema.get(property, "property")
            await self.require(conn, tenant_id, object_type, record_id)
            rows = await conn.execute(
                sa.select(HIST)
                .where(
                    HIST.c.tenant_id == tenant_id,
                    HIST.c.object_type == object_type,
                    HIST.c.record_id == record_id,
                    HIST.c.property == property,
                )
                .order_by(HIST.c.id.desc())
            )
            return [
                PropertyHistoryEntry(
                    property=r.property, value=r.value, changed_at=r.changed_at, source=r.source
                )
                for r in rows
            ]

    # Idempotency ------------------------------------------------------------------------
    async def _replay(
        self, conn: AsyncConnection, tenant_id: str, key: str, fp: str
    ) -> list[Record] | None:
        row = (
            await conn.execute(
                sa.select(IDEM).where(IDEM.c.tenant_id == tenant_id, IDEM.c.key == key)
            )
        ).first()
        if row is None:
            return None
        if row.fingerprint != fp:
            raise InvalidArgument.field("idempotency_key", "already used for a different request")
        rows = await self.fetch(conn, tenant_id, row.object_type, row.record_ids)
        return [self.to_record(rows[i]) for i in row.record_ids if i in rows]

    async def _remember(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        key: str,
        op: str,
        fp: str,
        object_type: str,
        ids: list[str],
    ) -> None:
        if len(key) > 200:
            raise InvalidArgument.field("idempotency_key", "at most 200 characters")
        await conn.execute(
            IDEM.insert().values(
                tenant_id=tenant_id,
                key=key,
                operation=op,
                fingerprint=fp,
                object_type=object_type,
                record_ids=ids,
                created_at=self.now(),
            )
        )

"""SqlRecordStore: the embedded CRM store (SQLite by default, PostgreSQL in production).

Table layout and why: see ``crmflow.records.tables``. Filter translation: ``sql_filters``.
Associations, lists, owners, subscriptions and custom events: ``sql_links``.

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

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import operators
from sqlalchemy.sql.expression import UnaryExpression

from crmflow.criteria import compile_group
from crmflow.db import create_engine
from crmflow.errors import AlreadyExists, ErrorList, InvalidArgument
from crmflow.model.criteria import FilterGroup
from crmflow.model.records import ChangeEventType, Record
from crmflow.records.port import (
    ObjectTypeDefinition,
    PropertyDefinition,
    PropertyHistoryEntry,
    PropertyType,
    RecordStore,
    RecordUpdate,
    SearchPage,
)
from crmflow.records.schema import STANDARD_OBJECT_TYPES, Schema, validate_properties
from crmflow.records.sql_base import HIST, OTYPE, VAL, R, check_id, new_id, record_not_found
from crmflow.records.sql_filters import Translator, needs_python
from crmflow.records.sql_links import LinksMixin
from crmflow.records.tables import CrmIdempotency

IDEM = CrmIdempotency.__table__  # type: ignore[attr-defined]
MAX_PAGE = 1000
MAX_BATCH = 1000


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _check_tenant(tenant_id: str) -> None:
    check_id(tenant_id, "tenant_id", "tenant id")


def _cursor(cursor: str) -> int:
    if not cursor:
        return 0
    try:
        kind, _, n = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind != "o" or int(n) < 0:
            raise ValueError
        return int(n)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument.field("cursor", "not a cursor returned by search") from None


class SqlRecordStore(LinksMixin, RecordStore):
    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> SqlRecordStore:
        if migrate:
            from crmflow.records.migrations import migrate as run_migrations

            await run_migrations(url)
        return cls(create_engine(url))

    # Schema ---------------------------------------------------------------------------
    async def list_object_types(self, tenant_id: str) -> list[ObjectTypeDefinition]:
        _check_tenant(tenant_id)
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
        _check_tenant(tenant_id)
        async with self.read() as conn:
            schema = await self.schema(conn, tenant_id, object_type)
        return list(schema.properties.values())

    # Reads ----------------------------------------------------------------------------
    async def get(self, tenant_id: str, object_type: str, record_id: str) -> Record:
        _check_tenant(tenant_id)
        async with self.read() as conn:
            await self.schema(conn, tenant_id, object_type)
            row = (await self.fetch(conn, tenant_id, object_type, [record_id])).get(record_id)
        if row is None:
            raise record_not_found(object_type, record_id)
        return self.to_record(row)

    async def batch_get(
        self, tenant_id: str, object_type: str, record_ids: Sequence[str]
    ) -> list[Record]:
        _check_tenant(tenant_id)
        if len(record_ids) > MAX_BATCH:
            raise InvalidArgument.field("record_ids", f"at most {MAX_BATCH} ids per call")
        async with self.read() as conn:
            await self.schema(conn, tenant_id, object_type)
            rows = await self.fetch(conn, tenant_id, object_type, record_ids)
        return [self.to_record(rows[i]) for i in dict.fromkeys(record_ids) if i in rows]

    async def _where(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        object_type: str,
        criteria: FilterGroup,
        rid: Any = R.c.record_id,
    ) -> Any:
        schemas = {object_type: await self.schema(conn, tenant_id, object_type)}
        for ot in _scope_types(criteria):
            schemas[ot] = await self.schema(conn, tenant_id, ot)
        return Translator(tenant_id, schemas, self.now()).group(
            criteria, object_type, rid, "criteria"
        )

    def _order(self, schema: Schema, sort: str, *, noindex: bool = False) -> list[Any]:
        desc = sort.startswith("-")
        name = sort.lstrip("-")
        wrap = _noindex if noindex else (lambda c: c)
        if not name:
            key: Any = wrap(R.c.created_at)
        elif name in ("createdate", "lastmodifieddate"):
            key = wrap(R.c.created_at if name == "createdate" else R.c.updated_at)
        else:
            prop = schema.get(name, "sort")
            col = (
                VAL.c.value_num
                if prop.type in (PropertyType.NUMBER, PropertyType.DATE, PropertyType.DATETIME)
                else VAL.c.value_text
            )
            key = (
                sa.select(sa.func.min(col))
                .where(
                    VAL.c.tenant_id == R.c.tenant_id,
                    VAL.c.object_type == R.c.object_type,
                    VAL.c.property == name,
                    VAL.c.record_id == R.c.record_id,
                )
                .scalar_subquery()
            )
        key = sa.nulls_last(key.desc() if desc else key.asc())
        rid = wrap(R.c.record_id)
        return [key, rid.desc() if desc else rid.asc()]

    async def search(
        self,
        tenant_id: str,
        object_type: str,
        criteria: FilterGroup | None = None,
        *,
        limit: int = 100,
        cursor: str = "",
        sort: str = "",
    ) -> SearchPage:
        _check_tenant(tenant_id)
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidArgument.field("limit", f"must be between 1 and {MAX_PAGE}")
        offset = _cursor(cursor)
        async with self.read() as conn:
            schema = await self.schema(conn, tenant_id, object_type)
            order = self._order(schema, sort)
            if criteria is not None and needs_python(criteria):
                matched = await self._python_matches(conn, tenant_id, object_type, criteria)
                page = matched[offset : offset + limit]
                return SearchPage(
                    records=page,
                    total=len(matched),
                    next_cursor=_next(offset, limit, len(matched)),
                )
            base = await self._base(conn, tenant_id, object_type, criteria)
            n = await self._count(conn, base)
            if self.sqlite and criteria is not None:
                if n > DRIVE_FROM_MATCHES_MAX and sort.lstrip("-") in ("", "createdate"):
                    # walk records in creation order, testing the matches' id set
                    rid = _noindex(R.c.record_id)
                    base = await self._base(conn, tenant_id, object_type, criteria, rid)
                else:  # look the matches up by primary key, then sort them
                    order = self._order(schema, sort, noindex=True)
            q = sa.select(R).where(*base).order_by(*order).offset(offset).limit(limit)
            rows = (await conn.execute(q)).all()
        return SearchPage(
            records=[self.to_record(r) for r in rows], total=n, next_cursor=_next(offset, limit, n)
        )

    async def _base(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        object_type: str,
        criteria: FilterGroup | None,
        rid: Any = R.c.record_id,
    ) -> list[Any]:
        base = [R.c.tenant_id == tenant_id, R.c.object_type == object_type]
        if criteria is not None:
            base.append(await self._where(conn, tenant_id, object_type, criteria, rid))
        return base

    @staticmethod
    async def _count(conn: AsyncConnection, base: list[Any]) -> int:
        total = await conn.execute(sa.select(sa.func.count()).select_from(R).where(*base))
        return int(total.scalar_one())

    async def count(
        self, tenant_id: str, object_type: str, criteria: FilterGroup | None = None
    ) -> int:
        _check_tenant(tenant_id)
        async with self.read() as conn:
            await self.schema(conn, tenant_id, object_type)
            if criteria is not None and needs_python(criteria):
                return len(await self._python_matches(conn, tenant_id, object_type, criteria))
            return await self._count(conn, await self._base(conn, tenant_id, object_type, criteria))

    async def _python_matches(
        self, conn: AsyncConnection, tenant_id: str, object_type: str, criteria: FilterGroup
    ) -> list[Record]:
        """Slow path for operators without a SQL form (see sql_filters): a full scan."""
        match = compile_group(criteria, "criteria")
        scopes = _scope_keys(criteria)
        now = self.now()
        out = []
        rows = await conn.execute(
            sa.select(R)
            .where(
                R.c.tenant_id == tenant_id,
                R.c.object_type == object_type,
            )
            .order_by(R.c.created_at, R.c.record_id)
        )
        for row in rows.all():
            assoc = {}
            for key, (ot, label) in scopes.items():
                links = await self.linked_ids(
                    conn, tenant_id, object_type, row.record_id, ot, label
                )
                got = await self.fetch(conn, tenant_id, ot, links)
                assoc[key] = [dict(r.properties or {}) for r in got.values()]
            if match(dict(row.properties or {}), now, assoc):
                out.append(self.to_record(row))
        return out

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
        _check_tenant(tenant_id)
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
        _check_tenant(tenant_id)
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
        _check_tenant(tenant_id)
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
            await self.forget_links(conn, tenant_id, object_type, record_id)
            props = dict(row.properties or {})
            await self.emit(
                conn,
                [
                    self.event(
                        tenant_id,
                        ChangeEventType.RECORD_DELETED,
                        object_type,
                        record_id,
                        changes={k: (v, None) for k, v in props.items()},
                        properties=props,
                    )
                ],
            )

    async def property_history(
        self, tenant_id: str, object_type: str, record_id: str, property: str
    ) -> list[PropertyHistoryEntry]:
        _check_tenant(tenant_id)
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


# SQLite keeps no value-frequency statistics, so it can't tell "email = x" (one match: look the
# matches up by primary key and sort them) from "lifecyclestage = lead" (12% of 100k: walk the
# records in creation order until the page is full). The count, which search needs anyway,
# tells us; SQLite's unary "+" (a no-op on the value) takes an index out of the planner's hands.
DRIVE_FROM_MATCHES_MAX = 2000


def _noindex(col: Any) -> Any:
    return UnaryExpression(col, operator=operators.custom_op("+"), type_=col.type)


def _next(offset: int, limit: int, total: int) -> str:
    if offset + limit >= total:
        return ""
    return base64.urlsafe_b64encode(f"o:{offset + limit}".encode()).decode()


def _scope_types(group: FilterGroup) -> set[str]:
    out = {f.association.object_type for f in group.filters if f.association}
    for g in group.groups:
        out |= _scope_types(g)
    return out


def _scope_keys(group: FilterGroup) -> dict[str, tuple[str, str]]:
    from crmflow.criteria.evaluate import association_key

    out = {
        association_key(f.association.object_type, f.association.label): (
            f.association.object_type,
            f.association.label,
        )
        for f in group.filters
        if f.association
    }
    for g in group.groups:
        out |= _scope_keys(g)
    return out

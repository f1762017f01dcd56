"""Tables of the embedded CRM store (sqlmodel), every row keyed by tenant.

Storage layout (why):
- ``crm_record`` keeps each record whole (properties as JSON): a get is one primary-key read and
  returns exactly what was written.
- ``crm_value`` keeps the same values *typed and exploded* - one row per (record, property), one
  per option of a multi-select - in ``value_text`` (case-folded, as the criteria evaluator
  compares text) or ``value_num`` (numbers; dates/datetimes as epoch seconds). Composite indexes
  (tenant, object_type, property, value, record) make every property filter an index range scan
  whatever the property, with no per-property DDL: custom properties are indexed the moment they
  are defined. A missing/empty value has no row, so "is unknown" is ``NOT EXISTS``.
- ``crm_association`` stores each association twice (a->b and b->a), so listing associations and
  association-scoped filters are primary-key prefix scans from either side.
- ``crm_outbox`` receives the change events in the same transaction as the change itself
  (transactional outbox); ``crmflow.records.outbox`` delivers them at least once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

TEXT_INDEX_LEN = 1024  # value_text is truncated to this for indexing (documented limit)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)  # type: ignore[call-overload]


AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class CrmObjectType(SQLModel, table=True):
    __tablename__ = "crm_object_type"
    tenant_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(primary_key=True, max_length=64)
    label: str = ""
    primary_property: str = ""
    created_at: datetime = _ts()


class CrmProperty(SQLModel, table=True):
    __tablename__ = "crm_property"
    tenant_id: str = Field(primary_key=True, max_length=64)
    object_type: str = Field(primary_key=True, max_length=64)
    name: str = Field(primary_key=True, max_length=64)
    label: str = ""
    type: str = Field(max_length=32)
    options: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    required: bool = False
    read_only: bool = False


class CrmEventDefinition(SQLModel, table=True):
    """A custom event definition: one row per (tenant, event name), its typed properties kept
    whole as JSON (read together, never filtered on)."""

    __tablename__ = "crm_event_definition"
    tenant_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(primary_key=True, max_length=64)
    label: str = ""
    object_type: str = Field(max_length=64)
    properties: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class CrmRecord(SQLModel, table=True):
    __tablename__ = "crm_record"
    __table_args__ = (sa.Index("ix_crm_record_created", "tenant_id", "object_type", "created_at"),)
    tenant_id: str = Field(primary_key=True, max_length=64)
    object_type: str = Field(primary_key=True, max_length=64)
    record_id: str = Field(primary_key=True, max_length=64)
    properties: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class CrmValue(SQLModel, table=True):
    __tablename__ = "crm_value"
    __table_args__ = (
        sa.Index(
            "ix_crm_value_text", "tenant_id", "object_type", "property", "value_text", "record_id"
        ),
        sa.Index(
            "ix_crm_value_num", "tenant_id", "object_type", "property", "value_num", "record_id"
        ),
        sa.Index("ix_crm_value_record", "tenant_id", "object_type", "record_id", "property"),
    )
    id: int | None = Field(default=None, sa_column=sa.Column(AUTO_ID, primary_key=True))
    tenant_id: str = Field(max_length=64)
    object_type: str = Field(max_length=64)
    property: str = Field(max_length=64)
    record_id: str = Field(max_length=64)
    value_text: str | None = Field(default=None, max_length=TEXT_INDEX_LEN)
    value_num: float | None = None


class CrmAssociation(SQLModel, table=True):
    __tablename__ = "crm_association"
    # list_associations paged with a label: that label's associated ids in id order (the
    # primary key serves the unlabelled order, but would scan every other label's rows too).
    __table_args__ = (
        sa.Index(
            "ix_crm_association_label",
            "tenant_id",
            "from_type",
            "from_id",
            "to_type",
            "label",
            "to_id",
        ),
    )
    tenant_id: str = Field(primary_key=True, max_length=64)
    from_type: str = Field(primary_key=True, max_length=64)
    from_id: str = Field(primary_key=True, max_length=64)
    to_type: str = Field(primary_key=True, max_length=64)
    to_id: str = Field(primary_key=True, max_length=64)
    label: str = Field(primary_key=True, default="", max_length=64)
    created_at: datetime = _ts()


class CrmList(SQLModel, table=True):
    __tablename__ = "crm_list"
    tenant_id: str = Field(primary_key=True, max_length=64)
    list_id: str = Field(primary_key=True, max_length=64)
    name: str
    object_type: str = Field(max_length=64)
    created_at: datetime = _ts()


class CrmListMember(SQLModel, table=True):
    __tablename__ = "crm_list_member"
    __table_args__ = (sa.Index("ix_crm_list_member_record", "tenant_id", "record_id"),)
    tenant_id: str = Field(primary_key=True, max_length=64)
    list_id: str = Field(primary_key=True, max_length=64)
    record_id: str = Field(primary_key=True, max_length=64)
    added_at: datetime = _ts()


class CrmOwner(SQLModel, table=True):
    __tablename__ = "crm_owner"
    tenant_id: str = Field(primary_key=True, max_length=64)
    owner_id: str = Field(primary_key=True, max_length=64)
    kind: str = "user"
    email: str = ""
    name: str = ""
    member_ids: list[str] = Field(default_factory=list, sa_type=sa.JSON)


class CrmSubscription(SQLModel, table=True):
    __tablename__ = "crm_subscription"
    tenant_id: str = Field(primary_key=True, max_length=64)
    contact_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=32)
    updated_at: datetime = _ts()


class CrmPropertyHistory(SQLModel, table=True):
    __tablename__ = "crm_property_history"
    __table_args__ = (
        sa.Index("ix_crm_history_record", "tenant_id", "object_type", "record_id", "property"),
    )
    id: int | None = Field(default=None, sa_column=sa.Column(AUTO_ID, primary_key=True))
    tenant_id: str = Field(max_length=64)
    object_type: str = Field(max_length=64)
    record_id: str = Field(max_length=64)
    property: str = Field(max_length=64)
    value: Any = Field(default=None, sa_type=sa.JSON)
    changed_at: datetime = _ts()
    source: str = ""


class CrmIdempotency(SQLModel, table=True):
    __tablename__ = "crm_idempotency"
    tenant_id: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=200)
    operation: str = Field(max_length=32)
    fingerprint: str = Field(max_length=64)
    object_type: str = Field(max_length=64)
    record_ids: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    created_at: datetime = _ts()


class CrmOutbox(SQLModel, table=True):
    __tablename__ = "crm_outbox"
    # Pending rows in commit order: the dispatcher reads "delivered_at IS NULL ORDER BY seq".
    __table_args__ = (sa.Index("ix_crm_outbox_pending", "delivered_at", "seq"),)
    seq: int | None = Field(default=None, sa_column=sa.Column(AUTO_ID, primary_key=True))
    tenant_id: str = Field(max_length=64)
    event_id: str = Field(max_length=64, unique=True)
    payload: dict[str, Any] = Field(sa_type=sa.JSON)
    created_at: datetime = _ts()
    next_attempt_at: datetime = _ts()
    delivered_at: datetime | None = _ts(default=None, nullable=True)
    attempts: int = 0
    last_error: str = ""


ALL_TABLES = [
    t.__table__  # type: ignore[attr-defined,union-attr]
    for t in (
        CrmObjectType,
        CrmProperty,
        CrmEventDefinition,
        CrmRecord,
        CrmValue,
        CrmAssociation,
        CrmList,
        CrmListMember,
        CrmOwner,
        CrmSubscription,
        CrmPropertyHistory,
        CrmIdempotency,
        CrmOutbox,
    )
]

# Only the CRM's tables (SQLModel.metadata holds every service's): what Alembic compares against.
CRM_METADATA = sa.MetaData()
for _t in ALL_TABLES:
    _t.to_metadata(CRM_METADATA)

"""The CRM port: the only way crmflow services reach CRM data.

Adapters: the embedded SQL store (``crmflow.records.sql``, the default) and a gRPC adapter for a
platform's own CRM implementing ``crmflow.api.crm.v1`` (``crmflow.records.grpc_adapter``).
Every method takes the tenant id; an adapter never returns another tenant's data. Errors are
``crmflow.errors`` types (NotFound, InvalidArgument naming the field), so callers behave the same
whichever adapter is configured.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, Field

from crmflow.errors import FailedPrecondition, InvalidArgument, NotFound
from crmflow.model.base import Model
from crmflow.model.criteria import FilterGroup
from crmflow.model.data_sources import DataSource
from crmflow.model.records import ChangeEvent, Record


class PropertyType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"
    ENUMERATION = "enumeration"
    MULTI_SELECT = "multi_select"
    OWNER = "owner"  # a user id


class PropertyDefinition(Model):
    object_type: str
    name: str
    label: str = ""
    type: PropertyType
    options: list[str] = Field(default_factory=list)  # enumeration / multi_select
    required: bool = False
    read_only: bool = False


class EventDefinition(Model):
    """A tenant's custom event type (HubSpot's custom event definition): the event name
    occurrences carry in ``ChangeEvent.event_name``, the object type they happen to, and typed
    properties. With a definition, an occurrence's properties are checked (unknown or wrong
    type refused) and the data panel lists them with their real types; without one, a custom
    event's properties stay free-form. ``properties`` reuse the record property definitions
    (their ``object_type`` is the event's; ``read_only`` is meaningless and refused)."""

    name: str
    label: str = ""
    object_type: str
    properties: list[PropertyDefinition] = Field(default_factory=list)


class ObjectTypeDefinition(Model):
    name: str  # "contact", "company", ..., or a custom object's name
    label: str = ""
    custom: bool = False
    primary_property: str = ""


class Association(Model):
    from_object_type: str
    from_record_id: str
    to_object_type: str
    to_record_id: str
    label: str = ""


# ListAssociations' page_size bound over gRPC (the port's ``limit`` has none: the gRPC adapter
# reads a larger limit in several pages).
MAX_ASSOCIATION_PAGE = 1000


def check_page_limit(limit: int | None) -> None:
    """``list_associations``' ``limit``: None (everything) or at least 1."""
    if limit is not None and limit < 1:
        raise InvalidArgument.field("limit", "at least 1 (or none for every association)")


class Owner(Model):
    """A user (or a team, with members) records can be assigned to."""

    owner_id: str
    kind: str = "user"  # "user" | "team"
    email: str = ""
    name: str = ""
    member_ids: list[str] = Field(default_factory=list)


class StaticList(Model):
    list_id: str
    name: str
    object_type: str


class SearchPage(Model):
    records: list[Record]
    total: int
    next_cursor: str = ""


class RecordUpdate(Model):
    """One item of a batch update."""

    record_id: str
    properties: dict[str, Any] = Field(default_factory=dict)


class SubscriptionStatus(StrEnum):
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    UNKNOWN = "unknown"


class PropertyHistoryEntry(Model):
    property: str
    value: Any = None
    changed_at: AwareDatetime
    source: str = ""


class ResolvedSources(Model):
    """What ``RecordStore.resolve_sources`` found for one enrolled record."""

    record: Record | None = None  # the enrolled record, when read (None: missing or not asked)
    sources: dict[str, Record | None] = Field(default_factory=dict)  # source id -> its record
    # Source id -> why it resolved to nothing although records may exist: the schema moved
    # under a published revision (type or property deleted, operand of the wrong type).
    skipped: dict[str, str] = Field(default_factory=dict)


class RecordStore(ABC):
    """Async CRM port. Implementations must be safe for concurrent use."""

    # Schema -----------------------------------------------------------------------------
    @abstractmethod
    async def list_object_types(self, tenant_id: str) -> list[ObjectTypeDefinition]: ...

    @abstractmethod
    async def list_properties(self, tenant_id: str, object_type: str) -> list[PropertyDefinition]:
        """Property definitions of an object type; NotFound for an unknown type."""

    # Records ----------------------------------------------------------------------------
    @abstractmethod
    async def get(self, tenant_id: str, object_type: str, record_id: str) -> Record:
        """NotFound when missing (or another tenant's)."""

    @abstractmethod
    async def batch_get(
        self, tenant_id: str, object_type: str, record_ids: Sequence[str]
    ) -> list[Record]:
        """The records that exist, in the order asked; missing ids are left out."""

    @abstractmethod
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
        """Records matching ``criteria`` (None: all), ``limit`` 1..1000 per page.

        ``cursor`` is the previous page's ``next_cursor`` (opaque; "" for the first page, and
        ``next_cursor`` is "" on the last). ``sort`` is a property name, "-name" descending,
        "" by creation; records without a value sort last. Unknown properties/operators and
        operands of the wrong type are InvalidArgument naming ``criteria.<path>``.
        """

    @abstractmethod
    async def count(
        self, tenant_id: str, object_type: str, criteria: FilterGroup | None = None
    ) -> int: ...

    @abstractmethod
    async def create(
        self,
        tenant_id: str,
        object_type: str,
        properties: dict[str, Any],
        *,
        record_id: str = "",
        idempotency_key: str = "",
    ) -> Record: ...

    @abstractmethod
    async def update(
        self,
        tenant_id: str,
        object_type: str,
        record_id: str,
        properties: dict[str, Any],
        *,
        idempotency_key: str = "",
    ) -> Record:
        """Set properties (None clears one). Emits one change event with old and new values."""

    @abstractmethod
    async def delete(self, tenant_id: str, object_type: str, record_id: str) -> None: ...

    @abstractmethod
    async def property_history(
        self, tenant_id: str, object_type: str, record_id: str, property: str
    ) -> list[PropertyHistoryEntry]: ...

    # Associations -------------------------------------------------------------------------
    @abstractmethod
    async def list_associations(
        self,
        tenant_id: str,
        object_type: str,
        record_id: str,
        to_object_type: str,
        *,
        label: str = "",
        limit: int | None = None,
        after: str = "",
    ) -> list[Association]:
        """The record's associations to records of ``to_object_type`` (only ``label``'s when
        given); NotFound for a missing record or an unknown object type.

        Unpaged (no ``limit``, no ``after``): all of them, in the order they were made.
        Paged (keyset): ordered by the associated record id (then label), only ids strictly
        greater than ``after``, at most ``limit`` (>= 1, else InvalidArgument naming
        ``limit``) associated *records* - each with all its matching labels, so a page is never
        cut between two labels of one record. The next page starts after the last
        ``to_record_id`` of this one; a page with fewer than ``limit`` records is the last.
        """

    @abstractmethod
    async def associate(self, tenant_id: str, association: Association) -> None: ...

    @abstractmethod
    async def unassociate(self, tenant_id: str, association: Association) -> None: ...

    # Lists, owners, subscriptions --------------------------------------------------------------
    @abstractmethod
    async def create_list(self, tenant_id: str, name: str, object_type: str) -> StaticList: ...

    @abstractmethod
    async def add_to_list(
        self, tenant_id: str, list_id: str, record_ids: Sequence[str]
    ) -> None: ...

    @abstractmethod
    async def remove_from_list(
        self, tenant_id: str, list_id: str, record_ids: Sequence[str]
    ) -> None: ...

    @abstractmethod
    async def list_members(self, tenant_id: str, list_id: str) -> list[str]: ...

    @abstractmethod
    async def is_member(self, tenant_id: str, list_id: str, record_id: str) -> bool: ...

    @abstractmethod
    async def list_owners(self, tenant_id: str) -> list[Owner]: ...

    @abstractmethod
    async def get_subscription_status(self, tenant_id: str, contact_id: str) -> str:
        """'subscribed' | 'unsubscribed' | 'unknown' for marketing email."""

    # Events ------------------------------------------------------------------------------
    @abstractmethod
    async def record_event(self, tenant_id: str, event: ChangeEvent) -> None:
        """Record a custom event or form submission (delivered to enrollment like changes)."""

    # Data sources (issue 7) -------------------------------------------------------------
    async def resolve_sources(
        self,
        tenant_id: str,
        object_type: str,
        record_id: str,
        sources: Sequence[DataSource],
        *,
        enrolled: Record | None = None,
        include_record: bool = False,
    ) -> ResolvedSources:
        """Each data source of one enrolled record reduced to one record (by its reduce rule).

        ``enrolled``: the enrolled record when the caller already has it (property-match
        sources read its values); otherwise the store reads it when a source needs it or
        ``include_record`` asks for it (then it is returned in ``record``). No match, a missing
        enrolled record, or a source whose type/property no longer exists resolve to None (the
        latter also listed in ``skipped``), never to an error; a malformed tenant id is still
        InvalidArgument.

        This default makes the port's single-record calls source by source (about two per
        source); the SQL store and the gRPC adapter answer in O(1) round trips.
        """
        from crmflow.records.sources import resolve_each

        return await resolve_each(
            self,
            tenant_id,
            object_type,
            record_id,
            sources,
            enrolled=enrolled,
            include_record=include_record,
        )

    # Extensions (issue 3). Concrete defaults so existing fakes keep working; the SQL and gRPC
    # adapters override all of them. ------------------------------------------------------
    async def batch_create(
        self,
        tenant_id: str,
        object_type: str,
        items: Sequence[dict[str, Any]],
        *,
        idempotency_key: str = "",
    ) -> list[Record]:
        """All or nothing: one bad item refuses the batch, naming ``records[i].properties.x``.

        This default (for adapters without a native batch) validates every item against the
        property definitions first, so a bad item writes nothing; items are then created one by
        one with per-item idempotency keys derived from ``idempotency_key``.
        """
        await self._prevalidate(tenant_id, object_type, [(p, None) for p in items])
        return [
            await self.create(
                tenant_id,
                object_type,
                p,
                idempotency_key=f"{idempotency_key}:{i}" if idempotency_key else "",
            )
            for i, p in enumerate(items)
        ]

    async def batch_update(
        self,
        tenant_id: str,
        object_type: str,
        items: Sequence[RecordUpdate],
        *,
        idempotency_key: str = "",
    ) -> list[Record]:
        """All or nothing, like ``batch_create`` (every record must exist: NotFound first)."""
        existing = {
            r.record_id: r
            for r in await self.batch_get(tenant_id, object_type, [i.record_id for i in items])
        }
        for i in items:
            if i.record_id not in existing:
                raise NotFound("record", f"{object_type}/{i.record_id}")
        await self._prevalidate(
            tenant_id,
            object_type,
            [(i.properties, existing[i.record_id].properties) for i in items],
        )
        return [
            await self.update(
                tenant_id,
                object_type,
                u.record_id,
                u.properties,
                idempotency_key=f"{idempotency_key}:{i}" if idempotency_key else "",
            )
            for i, u in enumerate(items)
        ]

    async def _prevalidate(
        self,
        tenant_id: str,
        object_type: str,
        items: Sequence[tuple[dict[str, Any], dict[str, Any] | None]],
    ) -> None:
        from crmflow.errors import ErrorList
        from crmflow.records.schema import Schema, validate_properties

        schema = Schema(
            ObjectTypeDefinition(name=object_type),
            await self.list_properties(tenant_id, object_type),
        )
        errs = ErrorList()
        for i, (props, existing) in enumerate(items):
            validate_properties(
                schema, props, existing=existing, field=f"records[{i}].properties", errors=errs
            )
        errs.raise_if_any("invalid records")

    async def define_object_type(
        self,
        tenant_id: str,
        definition: ObjectTypeDefinition,
        properties: Sequence[PropertyDefinition] = (),
    ) -> ObjectTypeDefinition:
        """Create a custom object type (AlreadyExists if taken)."""
        raise FailedPrecondition("this CRM does not support custom object types")

    async def define_property(
        self, tenant_id: str, definition: PropertyDefinition
    ) -> PropertyDefinition:
        """Create or change a custom property (standard properties can't be redefined)."""
        raise FailedPrecondition("this CRM does not support custom properties")

    # Custom event definitions. Defaults for adapters without them: nothing is defined, so
    # every custom event keeps free-form properties.
    async def define_event(self, tenant_id: str, definition: EventDefinition) -> EventDefinition:
        """Create or update a custom event definition.

        InvalidArgument naming ``definition.<field>`` for a bad name/property, NotFound for an
        unknown object type; FailedPrecondition when an update would change the object type or
        a property's type (occurrences already recorded carry the old shape).
        """
        raise FailedPrecondition("this CRM does not support custom event definitions")

    async def get_event_definition(self, tenant_id: str, name: str) -> EventDefinition:
        """NotFound when the tenant has no definition of that name."""
        raise NotFound("event_definition", name)

    async def list_event_definitions(
        self, tenant_id: str, object_type: str = ""
    ) -> list[EventDefinition]:
        """The tenant's event definitions by name (optionally only those of one object type)."""
        return []

    async def get_list(self, tenant_id: str, list_id: str) -> StaticList:
        raise FailedPrecondition("this CRM does not support reading lists")

    async def list_lists(self, tenant_id: str, object_type: str = "") -> list[StaticList]:
        raise FailedPrecondition("this CRM does not support reading lists")

    async def upsert_owner(self, tenant_id: str, owner: Owner) -> Owner:
        raise FailedPrecondition("this CRM does not support writing owners")

    async def set_subscription_status(
        self, tenant_id: str, contact_id: str, status: SubscriptionStatus
    ) -> None:
        raise FailedPrecondition("this CRM does not support writing subscription status")

"""The port's default batch methods (used by adapters/decorators without a native batch)."""

from __future__ import annotations

from typing import Any

import pytest

from crmflow.errors import InvalidArgument, NotFound
from crmflow.records.port import RecordStore, RecordUpdate
from crmflow.records.sql import SqlRecordStore


def forwarding(inner: RecordStore) -> RecordStore:
    """A decorator that writes out only the abstract methods, as a naive wrapper would."""

    def forward(name: str) -> Any:
        async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await getattr(inner, name)(*args, **kwargs)

        return method

    cls = type(
        "Naive", (RecordStore,), {name: forward(name) for name in RecordStore.__abstractmethods__}
    )
    return cls()  # type: ignore[no-any-return]


async def test_default_batch_create_validates_every_item_before_writing(
    sql_store: SqlRecordStore,
) -> None:
    store = forwarding(sql_store)
    with pytest.raises(InvalidArgument) as bad:
        await store.batch_create(
            "t1", "contact", [{"email": "ok@x.test"}, {"lifecyclestage": "astronaut"}]
        )
    assert [v.field for v in bad.value.violations] == ["records[1].properties.lifecyclestage"]
    assert await sql_store.count("t1", "contact") == 0
    made = await store.batch_create(
        "t1", "contact", [{"email": "a@x.test"}, {"email": "b@x.test"}], idempotency_key="k"
    )
    again = await store.batch_create(
        "t1", "contact", [{"email": "a@x.test"}, {"email": "b@x.test"}], idempotency_key="k"
    )
    assert [r.record_id for r in again] == [r.record_id for r in made]
    assert await sql_store.count("t1", "contact") == 2


async def test_default_batch_update_checks_existence_and_values_first(
    sql_store: SqlRecordStore,
) -> None:
    store = forwarding(sql_store)
    a = await sql_store.create("t1", "company", {"name": "A"})
    with pytest.raises(NotFound):
        await store.batch_update(
            "t1",
            "company",
            [
                RecordUpdate(record_id=a.record_id, properties={"domain": "a.test"}),
                RecordUpdate(record_id="missing", properties={"domain": "b.test"}),
            ],
        )
    with pytest.raises(InvalidArgument) as bad:
        await store.batch_update(
            "t1",
            "company",
            [
                RecordUpdate(record_id=a.record_id, properties={"domain": "a.test"}),
                RecordUpdate(record_id=a.record_id, properties={"name": None}),
            ],
        )
    assert [v.field for v in bad.value.violations] == ["records[1].properties.name"]
    assert "domain" not in (await sql_store.get("t1", "company", a.record_id)).properties

"""The store decorators forward every port method, including the port's concrete extensions."""

from __future__ import annotations

from pathlib import Path

from datasource_resolver.cache import StepCache
from datasource_resolver.delegating_store import DelegatingStore
from datasource_resolver.invalidating_store import InvalidatingStore

from crmflow.records.port import Owner, RecordStore, SubscriptionStatus
from crmflow.records.sql import SqlRecordStore


async def test_extension_methods_reach_the_inner_adapter(tmp_path: Path) -> None:
    inner = await SqlRecordStore.open(f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}", migrate=True)
    store: RecordStore = InvalidatingStore(inner, StepCache())
    assert isinstance(store, DelegatingStore)
    owner = await store.upsert_owner("t1", Owner(owner_id="u1", email="u1@example.com"))
    assert owner.owner_id == "u1"
    assert [o.owner_id for o in await store.list_owners("t1")] == ["u1"]
    made = await store.batch_create(
        "t1", "contact", [{"email": "a@x.io"}, {"email": "b@x.io"}], idempotency_key="k1"
    )
    again = await store.batch_create(
        "t1", "contact", [{"email": "a@x.io"}, {"email": "b@x.io"}], idempotency_key="k1"
    )
    # Forwarded to the SQL adapter's idempotent batch, not the port's one-by-one fallback.
    assert [r.record_id for r in again] == [r.record_id for r in made]
    await store.set_subscription_status("t1", made[0].record_id, SubscriptionStatus.UNSUBSCRIBED)
    assert await store.get_subscription_status("t1", made[0].record_id) == "unsubscribed"
    lst = await store.create_list("t1", "VIP", "contact")
    assert [x.list_id for x in await store.list_lists("t1", "contact")] == [lst.list_id]

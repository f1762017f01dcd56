"""The step cache: keys, dependencies, invalidation, TTL and bounds."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from datasource_resolver.cache import StepCache, StepData, deps_of

from crmflow.model.data_sources import ReduceRule
from crmflow.model.records import ChangeEvent, ChangeEventType, Record
from crmflow.records.sources import email_domain, reduce


def _rec(t: str, ot: str, rid: str, c: int = 0, u: int = 0) -> Record:
    return Record(
        tenant_id=t,
        object_type=ot,
        record_id=rid,
        created_at=datetime(2025, 1, 1, 0, c, tzinfo=UTC),
        updated_at=datetime(2025, 1, 1, 0, u, tzinfo=UTC),
    )


def _entry(
    cache: StepCache, tenant: str, rid: str, company: str, searched: frozenset[str] = frozenset()
) -> tuple:
    key = (tenant, "wf", 1, "contact", rid, "a1")
    rec, co = _rec(tenant, "contact", rid), _rec(tenant, "company", company)
    cache.put(key, StepData(rec, {"company": co}, deps_of(tenant, [rec, co], searched)))
    return key


def test_records_invalidate_only_their_tenants_entries() -> None:
    cache = StepCache()
    k1 = _entry(cache, "t1", "c1", "co1")
    k2 = _entry(cache, "t2", "c1", "co1")  # same ids, other tenant
    assert cache.get(k1) is not None and cache.get(k2) is not None
    assert cache.invalidate("t1", "company", ["co1"]) == 1
    assert cache.get(k1) is None
    assert cache.get(k2) is not None


def test_searched_types_are_invalidated_by_any_record_of_the_type() -> None:
    cache = StepCache()
    k = _entry(cache, "t1", "c1", "co1", searched=frozenset({"company"}))
    cache.invalidate("t1", "company", ["some-new-company"])
    assert cache.get(k) is None


def test_change_events_invalidate_both_ends_of_an_association() -> None:
    cache = StepCache()
    k = _entry(cache, "t1", "c1", "co1")
    cache.on_change_events(
        [
            ChangeEvent(
                event_id="e",
                tenant_id="t1",
                event_type=ChangeEventType.ASSOCIATION_ADDED,
                object_type="deal",
                record_id="d1",
                occurred_at=datetime.now(UTC),
                associated_object_type="contact",
                associated_record_id="c1",
            )
        ]
    )
    assert cache.get(k) is None


def test_ttl_and_size_bound() -> None:
    cache = StepCache(ttl=0.01, max_entries=3)
    keys = [_entry(cache, "t", f"c{i}", "co") for i in range(5)]
    assert len(cache) == 3
    assert cache.get(keys[0]) is None and cache.get(keys[4]) is not None
    time.sleep(0.02)
    assert cache.get(keys[4]) is None
    # Evicted and expired-and-read entries leave no dependency behind (c2, c3 remain).
    assert cache.invalidate("t", "company", ["co"]) == 2
    assert cache.invalidate("t", "company", ["co"]) == 0
    assert len(cache) == 0


def test_reduce_rules_and_ties() -> None:
    a, b, c = (
        _rec("t", "x", "a", c=1, u=9),
        _rec("t", "x", "b", c=2, u=3),
        _rec("t", "x", "c", c=3, u=3),
    )
    assert reduce([a, b, c], ReduceRule.MOST_RECENTLY_UPDATED) is a
    assert reduce([a, b, c], ReduceRule.MOST_RECENTLY_CREATED) is c
    assert reduce([a, b, c], ReduceRule.FIRST_CREATED) is a
    assert reduce([b, c], ReduceRule.MOST_RECENTLY_UPDATED) is c  # tie: highest id, as the store
    assert reduce([], ReduceRule.FIRST_CREATED) is None


def test_email_domain() -> None:
    assert email_domain("Ann@Sub.ACME.io") == "sub.acme.io"
    assert email_domain("a@b@c.dk") == "c.dk"
    for bad in ("", "no-at", "x@", None, 5, ["a@b.c"]):
        assert email_domain(bad) is None

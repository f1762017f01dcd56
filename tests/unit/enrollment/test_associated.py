"""Association-scoped filters at ingest: the associated records are fetched through the CRM
port, so "associated company's industry is tech" enrolls on the record's own change and on the
association being added, and "criteria no longer met" sees the association removed."""

from __future__ import annotations

from typing import Any

import pytest

from crmflow.model.records import ChangeEventType
from crmflow.records.port import Association
from tests.unit.enrollment.conftest import Core
from tests.unit.enrollment.test_rules import LEAD, to_lead

TECH = {
    "property": "industry",
    "operator": "eq",
    "value": "tech",
    "association": {"object_type": "company"},
}
TRIG = {"criteria": {"filter": {"filters": [LEAD, TECH]}}}


async def company(core: Core, cid: str, industry: str) -> None:
    await core.records.create(
        core.tenant, "company", {"name": cid, "industry": industry}, record_id=cid
    )


async def contact(core: Core, rid: str, stage: str, *companies: str) -> None:
    await core.records.create(core.tenant, "contact", {"lifecyclestage": stage}, record_id=rid)
    for cid in companies:
        await link(core, rid, cid)


async def link(core: Core, rid: str, cid: str, label: str = "") -> None:
    await core.records.associate(
        core.tenant,
        Association(
            from_object_type="contact",
            from_record_id=rid,
            to_object_type="company",
            to_record_id=cid,
            label=label,
        ),
    )


def link_event(core: Core, rid: str, cid: str, added: bool = True):  # type: ignore[no-untyped-def]
    return core.event(
        rid,
        kind=ChangeEventType.ASSOCIATION_ADDED if added else ChangeEventType.ASSOCIATION_REMOVED,
        associated_object_type="company",
        associated_record_id=cid,
    )


async def test_own_change_reads_the_associated_records(core: Core) -> None:
    await company(core, "tech1", "tech")
    await company(core, "shop1", "retail")
    await contact(core, "c1", "subscriber", "shop1", "tech1")
    await contact(core, "c2", "subscriber", "shop1")
    await core.publish("wf", {"triggers": [TRIG]})
    assert await core.ingest(to_lead(core, "c1")) == [("wf", "enrolled")]
    assert await core.ingest(to_lead(core, "c2")) == []


async def test_adding_and_removing_the_association(core: Core) -> None:
    await company(core, "tech1", "tech")
    await contact(core, "c1", "lead")
    await core.publish("wf", {"triggers": [TRIG], "unenroll_when_criteria_not_met": True})
    await link(core, "c1", "tech1")
    assert await core.ingest(link_event(core, "c1", "tech1")) == [("wf", "enrolled")]
    # reported again under a new id: never twice at once
    assert await core.ingest(link_event(core, "c1", "tech1")) == [("wf", "already_enrolled")]
    assert len(core.starter.runs) == 1
    await core.records.unassociate(
        core.tenant,
        Association(
            from_object_type="contact",
            from_record_id="c1",
            to_object_type="company",
            to_record_id="tech1",
        ),
    )
    assert await core.ingest(link_event(core, "c1", "tech1", added=False)) == [("wf", "unenrolled")]


async def test_explain_and_backfill_see_associated_records(core: Core) -> None:
    await company(core, "tech1", "tech")
    await contact(core, "c1", "lead", "tech1")
    await core.publish("wf", {"triggers": [TRIG]})
    cw = core.index.get(core.tenant, "wf")
    assert cw is not None
    props = (await core.enroller.enrich(cw, {"c1": {"lifecyclestage": "lead"}}))["c1"]
    assert props["@assoc:company"] == [
        {
            "name": "tech1",
            "industry": "tech",
            **{
                k: v for k, v in props["@assoc:company"][0].items() if k not in ("name", "industry")
            },
        }
    ]
    assert cw.criteria[("enroll", 0)][1](props, core.clock[0], {})
    assert core.index.association_refs(core.tenant, "contact") == {("company", "")}


# -- an associated record's own change re-evaluates the records linked to it ----------------
def company_update(core: Core, cid: str, changes: dict[str, tuple[str, str]], **kw: object):  # type: ignore[no-untyped-def]
    return core.event(cid, changes, object_type="company", **kw)


async def _set_industry(core: Core, cid: str, industry: str) -> None:
    await core.records.update(core.tenant, "company", cid, {"industry": industry})


async def outcomes_of(core: Core, ev: object) -> list[tuple[str, str, str]]:
    _, outs = await core.ingestor.ingest(ev)  # type: ignore[arg-type]
    return sorted((o.workflow_id, o.record_id, o.outcome) for o in outs)


async def test_a_company_change_re_evaluates_its_contacts(core: Core) -> None:
    await company(core, "shop1", "retail")
    await company(core, "other", "retail")
    await contact(core, "c1", "lead", "shop1")
    await contact(core, "c2", "lead", "shop1", "other")
    await contact(core, "c3", "lead", "other")  # not linked to shop1
    await contact(core, "c4", "subscriber", "shop1")  # linked, but not a lead
    await core.publish("wf", {"triggers": [TRIG], "unenroll_when_criteria_not_met": True})
    await _set_industry(core, "shop1", "tech")
    ev = company_update(core, "shop1", {"industry": ("retail", "tech")})
    assert await outcomes_of(core, ev) == [("wf", "c1", "enrolled"), ("wf", "c2", "enrolled")]
    assert sorted(core.starter.runs) == [
        f"enroll/{core.tenant}/wf/contact-c1/1",
        f"enroll/{core.tenant}/wf/contact-c2/1",
    ]
    # redelivered: a duplicate, nothing new
    dup, _ = await core.ingestor.ingest(ev)
    assert dup and len(core.starter.runs) == 2
    # and back: "criteria no longer met" for both
    await _set_industry(core, "shop1", "retail")
    ev = company_update(core, "shop1", {"industry": ("tech", "retail")})
    assert await outcomes_of(core, ev) == [("wf", "c1", "unenrolled"), ("wf", "c2", "unenrolled")]


async def test_only_properties_read_through_the_association_fan_out(core: Core) -> None:
    await company(core, "shop1", "retail")
    await contact(core, "c1", "lead", "shop1")
    await core.publish("wf", {"triggers": [TRIG]})
    calls: list[str] = []
    real = core.records.list_associations

    async def counted(*a: object, **kw: object):  # type: ignore[no-untyped-def]
        calls.append(str(a[1]))
        return await real(*a, **kw)  # type: ignore[arg-type]

    core.records.list_associations = counted  # type: ignore[method-assign]
    ev = company_update(core, "shop1", {"name": ("shop1", "Shop One")})
    assert await outcomes_of(core, ev) == []
    assert calls == []  # the name is read by no workflow: no CRM call at all
    assert core.index.association_fanout(core.tenant, "company", {"industry"}) == {"contact": {""}}
    assert core.index.association_fanout(core.tenant, "company", {"name"}) == {}
    assert core.index.association_fanout(core.tenant, "contact", {"industry"}) == {}
    await core.publish(
        "wf", {"triggers": [{"criteria": {"filter": {"filters": [LEAD]}}}]}, revision=2
    )
    assert core.index.association_fanout(core.tenant, "company", {"industry"}) == {}


async def test_a_crash_half_way_through_the_fan_out_is_redelivered_without_duplicates(
    core: Core,
) -> None:
    import pytest

    await company(core, "shop1", "retail")
    for rid in ("c1", "c2", "c3"):
        await contact(core, rid, "lead", "shop1")
    await core.publish("wf", {"triggers": [TRIG]})
    await _set_industry(core, "shop1", "tech")
    mark = core.ledger.mark_processed

    async def die_on_c2(tenant_id: str, event_id: str, *a: object, **kw: object) -> None:
        if event_id.endswith(":contact:c2"):
            raise RuntimeError("process died")
        await mark(tenant_id, event_id, *a, **kw)  # type: ignore[arg-type]

    core.ledger.mark_processed = die_on_c2  # type: ignore[method-assign]
    ev = company_update(core, "shop1", {"industry": ("retail", "tech")})
    with pytest.raises(RuntimeError):
        await core.ingestor.ingest(ev)
    core.ledger.mark_processed = mark  # type: ignore[method-assign]
    assert len(core.starter.runs) == 3  # all three enrolled; c2's event not recorded
    # redelivered: c1 and c3 are duplicates, c2's enrollment is found by its event id
    assert await outcomes_of(core, ev) == [("wf", "c2", "already_enrolled")]
    assert len(core.starter.runs) == 3
    for rid in ("c1", "c2", "c3"):
        rows = await core.ledger.history(tenant_id=core.tenant, workflow_id="wf", record_id=rid)
        assert [r.enrollment_number for r in rows] == [1]


async def test_the_fan_out_is_bounded(core: Core, caplog: object) -> None:
    import logging

    import pytest

    assert isinstance(caplog, pytest.LogCaptureFixture)
    await company(core, "shop1", "retail")
    for rid in ("c1", "c2", "c3"):
        await contact(core, rid, "lead", "shop1")
    await core.publish("wf", {"triggers": [TRIG]})
    await _set_industry(core, "shop1", "tech")
    core.ingestor.fanout_max = 2
    ev = company_update(core, "shop1", {"industry": ("retail", "tech")})
    with caplog.at_level(logging.WARNING, logger="crmflow.enrollment.ingest"):
        out = await outcomes_of(core, ev)
    assert out == [("wf", "c1", "enrolled"), ("wf", "c2", "enrolled")]  # by record id
    assert "more than 2 associated contact records, only the first 2" in caplog.text


async def test_a_labelled_association_fans_out_to_that_label_only(core: Core) -> None:
    await company(core, "shop1", "retail")
    await contact(core, "c1", "lead")
    await contact(core, "c2", "lead")
    for rid, label in (("c1", "primary"), ("c2", "")):
        await link(core, rid, "shop1", label)
    primary = {**TECH, "association": {"object_type": "company", "label": "primary"}}
    await core.publish("wf", {"triggers": [{"criteria": {"filter": {"filters": [LEAD, primary]}}}]})
    await _set_industry(core, "shop1", "tech")
    ev = company_update(core, "shop1", {"industry": ("retail", "tech")})
    assert await outcomes_of(core, ev) == [("wf", "c1", "enrolled")]


async def test_the_fan_out_reads_a_bounded_page(core: Core) -> None:
    """A company with more contacts than ``fanout_max``: the CRM is asked for fanout_max + 1
    records (in id order), not for all of them."""
    await company(core, "shop1", "retail")
    for n in (7, 3, 5, 1, 6, 2, 4):  # linked out of id order
        await contact(core, f"c{n}", "lead", "shop1")
    await core.publish("wf", {"triggers": [TRIG]})
    await _set_industry(core, "shop1", "tech")
    core.ingestor.fanout_max = 2
    reads: list[tuple[object, int]] = []
    real = core.records.list_associations

    async def counted(*a: object, **kw: object):  # type: ignore[no-untyped-def]
        got = await real(*a, **kw)  # type: ignore[arg-type]
        if a[1] == "company":  # the fan-out's reads (a contact's own are its companies)
            reads.append((kw.get("limit"), len(got)))
        return got

    core.records.list_associations = counted  # type: ignore[method-assign]
    ev = company_update(core, "shop1", {"industry": ("retail", "tech")})
    assert await outcomes_of(core, ev) == [("wf", "c1", "enrolled"), ("wf", "c2", "enrolled")]
    assert reads == [(3, 3)]  # one page of fanout_max + 1 rows of the 7


async def test_the_fan_out_merges_the_labels_pages(core: Core) -> None:
    """Two labels read through the association: the first ``fanout_max`` ids of their union
    (each label's own page is not enough: the first three here take two from 'billing')."""
    await company(core, "shop1", "retail")
    labels = {"c1": "primary", "c2": "billing", "c3": "billing", "c4": "primary"}
    labels |= {"c5": "primary", "c6": "primary", "c7": "billing"}
    for rid, label in labels.items():
        await contact(core, rid, "lead")
        await link(core, rid, "shop1", label)
    for label in ("primary", "billing"):
        reads = {**TECH, "association": {"object_type": "company", "label": label}}
        await core.publish(
            f"wf-{label}", {"triggers": [{"criteria": {"filter": {"filters": [LEAD, reads]}}}]}
        )
    assert core.index.association_fanout(core.tenant, "company", {"industry"}) == {
        "contact": {"primary", "billing"}
    }
    await _set_industry(core, "shop1", "tech")
    core.ingestor.fanout_max = 3
    ev = company_update(core, "shop1", {"industry": ("retail", "tech")})
    assert await outcomes_of(core, ev) == [
        ("wf-billing", "c2", "enrolled"),
        ("wf-billing", "c3", "enrolled"),
        ("wf-primary", "c1", "enrolled"),
    ]


async def test_deleting_the_associated_company_re_evaluates_its_contacts(core: Core) -> None:
    """The CRM reports a company's deletion with an association removal on each contact's side:
    "associated company's industry is tech" is then no longer met, and enrollment sees it."""
    from crmflow.records.outbox import OutboxDispatcher

    async def never(_: object) -> None:  # pragma: no cover - not called
        raise AssertionError

    await company(core, "tech1", "tech")
    await contact(core, "c1", "lead", "tech1")
    await contact(core, "c2", "lead", "tech1")
    await core.publish("wf", {"triggers": [TRIG], "unenroll_when_criteria_not_met": True})
    assert await core.ingest(to_lead(core, "c1")) == [("wf", "enrolled")]
    assert await core.ingest(to_lead(core, "c2")) == [("wf", "enrolled")]
    outbox = OutboxDispatcher(core.records, never)  # type: ignore[arg-type]
    before = len(await outbox.pending(core.tenant))
    await core.records.delete(core.tenant, "company", "tech1")
    events = (await outbox.pending(core.tenant))[before:]
    assert [(e.event_type, e.record_id) for e in events] == [
        (ChangeEventType.ASSOCIATION_REMOVED, "c1"),
        (ChangeEventType.ASSOCIATION_REMOVED, "c2"),
        (ChangeEventType.RECORD_DELETED, "tech1"),
    ]
    got = [await core.ingest(e) for e in events]
    assert got == [[("wf", "unenrolled")], [("wf", "unenrolled")], []]
    assert sorted(core.starter.signals) == [
        (f"enroll/{core.tenant}/wf/contact-c1/1", "criteria_not_met"),
        (f"enroll/{core.tenant}/wf/contact-c2/1", "criteria_not_met"),
    ]


async def test_more_associated_records_than_one_batch(core: Core) -> None:
    """A contact with 1,001 companies (more than the CRM's batch of 1,000): read page by page,
    the one tech company still counts. Before, the single batch read was refused and the
    criteria saw no associated company at all."""
    await core.publish("wf", {"triggers": [TRIG]})
    await contact(core, "c1", "subscriber")
    retail = await core.records.batch_create(
        core.tenant, "company", [{"name": f"co{i}", "industry": "retail"} for i in range(1000)]
    )
    await company(core, "tech1", "tech")
    for cid in [r.record_id for r in retail] + ["tech1"]:
        await link(core, "c1", cid)
    assert await core.ingest(to_lead(core, "c1")) == [("wf", "enrolled")]


async def test_associated_records_are_read_in_pages_up_to_a_bound(
    core: Core, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from enrollment import associated

    monkeypatch.setattr(associated, "PAGE", 2)
    monkeypatch.setattr(associated, "MAX_ASSOCIATED", 3)
    reads: list[tuple[int | None, str]] = []
    list_associations = core.records.list_associations

    async def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append((kwargs.get("limit"), kwargs.get("after", "")))
        return await list_associations(*args, **kwargs)

    core.records.list_associations = counted  # type: ignore[method-assign]
    await contact(core, "c1", "subscriber")
    for cid in ("a", "b", "c", "d", "e"):
        await company(core, cid, "tech" if cid == "e" else "retail")
        await link(core, "c1", cid)
    loaded = await associated.load(core.records, core.tenant, "contact", "c1", [("company", "")])
    assert [rid for rid, _ in loaded["@assoc:company"]] == ["a", "b", "c"]
    assert reads == [(2, ""), (2, "b")]
    assert "3 or more associated company records" in caplog.text

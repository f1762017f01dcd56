"""Association-scoped filters at ingest: the associated records are fetched through the CRM
port, so "associated company's industry is tech" enrolls on the record's own change and on the
association being added, and "criteria no longer met" sees the association removed."""

from __future__ import annotations

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


async def link(core: Core, rid: str, cid: str) -> None:
    await core.records.associate(
        core.tenant,
        Association(
            from_object_type="contact",
            from_record_id=rid,
            to_object_type="company",
            to_record_id=cid,
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

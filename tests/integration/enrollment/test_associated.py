"""Association-scoped filters through a real gRPC server and Temporal: the service fetches the
associated records through the CRM port, so adding the association enrolls, and Explain shows
what it saw on the associated records."""

from __future__ import annotations

import pytest

from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb
from crmflow.model.records import ChangeEventType
from crmflow.records.port import Association
from tests.integration.enrollment.conftest import Service
from tests.integration.enrollment.helpers import criteria, update
from tests.integration.enrollment.test_rpcs import LEAD, activate

pytestmark = pytest.mark.temporal

TECH = {
    "property": "industry",
    "operator": "eq",
    "value": "tech",
    "association": {"object_type": "company"},
}


async def test_association_added_enrolls(service: Service, tenant_id: str) -> None:
    store = service.records
    await store.create(tenant_id, "company", {"name": "A", "industry": "tech"}, record_id="co1")
    await store.create(tenant_id, "contact", {"lifecyclestage": "lead"}, record_id="c1")
    await activate(service, tenant_id, "wf", {"triggers": [criteria(LEAD, TECH)]})
    why = await service.stub.ExplainEnrollment(
        pb.ExplainEnrollmentRequest(tenant_id=tenant_id, workflow_id="wf", record_id="c1")
    )
    assert why.reason == "not_matching"
    await store.associate(
        tenant_id,
        Association(
            from_object_type="contact",
            from_record_id="c1",
            to_object_type="company",
            to_record_id="co1",
        ),
    )
    res = await service.stub.IngestEvents(
        pb.IngestEventsRequest(
            tenant_id=tenant_id,
            events=[
                update(
                    tenant_id,
                    "c1",
                    {},
                    event_type=ChangeEventType.ASSOCIATION_ADDED,
                    associated_object_type="company",
                    associated_record_id="co1",
                )
            ],
        )
    )
    assert [(o.workflow_id, o.outcome) for o in res.results[0].outcomes] == [("wf", "enrolled")]
    why = await service.stub.ExplainEnrollment(
        pb.ExplainEnrollmentRequest(tenant_id=tenant_id, workflow_id="wf", record_id="c1")
    )
    assert why.reason == "already_enrolled" and why.triggers[0].matched
    seen = why.triggers[0].trace[1].seen
    assert [v.string_value for v in seen.list_value.values] == ["tech"]


async def test_a_company_update_enrolls_its_contacts(service: Service, tenant_id: str) -> None:
    """The company's own change (its industry) re-evaluates the contacts associated to it:
    each enters the workflow once, in Temporal too, and a redelivery changes nothing."""
    from crmflow.temporal.ids import enrollment_workflow_id

    store = service.records
    await store.create(tenant_id, "company", {"name": "A", "industry": "retail"}, record_id="co1")
    for rid in ("c1", "c2"):
        await store.create(tenant_id, "contact", {"lifecyclestage": "lead"}, record_id=rid)
        await store.associate(
            tenant_id,
            Association(
                from_object_type="contact",
                from_record_id=rid,
                to_object_type="company",
                to_record_id="co1",
            ),
        )
    await activate(service, tenant_id, "wf", {"triggers": [criteria(LEAD, TECH)]})
    await store.update(tenant_id, "company", "co1", {"industry": "tech"})
    ev = update(
        tenant_id,
        "co1",
        {"industry": ("retail", "tech")},
        object_type="company",
        snapshot={"name": "A", "industry": "tech"},
    )
    res = await service.stub.IngestEvents(pb.IngestEventsRequest(tenant_id=tenant_id, events=[ev]))
    got = sorted((o.workflow_id, o.record_id, o.outcome) for o in res.results[0].outcomes)
    assert got == [("wf", "c1", "enrolled"), ("wf", "c2", "enrolled")]
    for rid in ("c1", "c2"):
        run = enrollment_workflow_id(tenant_id, "wf", "contact", rid, 1)
        await service.env.client.get_workflow_handle(run).describe()
    res = await service.stub.IngestEvents(pb.IngestEventsRequest(tenant_id=tenant_id, events=[ev]))
    assert res.results[0].duplicate

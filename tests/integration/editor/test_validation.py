"""Minimap/validation, publish refusals, bad input, plan entitlements, templates, 500 actions."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from crmflow.api.editor.v1 import editor_service_pb2 as pb
from crmflow.api.workflow.v1 import workflow_pb2 as wf
from crmflow.grpc.errors import bad_request_fields
from tests.integration.editor.conftest import Editor, struct


async def rpc_error(coro: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro  # type: ignore[misc]
    return info.value


def precondition_types(err: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    out = []
    for d in status.details:
        pf = error_details_pb2.PreconditionFailure()
        if d.Unpack(pf):
            out += [(v.type, v.subject) for v in pf.violations]
    return out


def definition(
    tenant: str, actions: dict[str, Any], start: str, **extra: Any
) -> wf.WorkflowDefinition:
    return json_format.ParseDict(
        {
            "object_type": "contact",
            "tenant_id": tenant,
            "actions": actions,
            "start_action_id": start,
            **extra,
        },
        wf.WorkflowDefinition(),
    )


def act(
    aid: str,
    t: str,
    fields: dict[str, Any] | None = None,
    nxt: str = "",
    goto: bool = False,
    **kw: Any,
) -> dict[str, Any]:
    a: dict[str, Any] = {"action_id": aid, "action_type": t, "fields": fields or {}, **kw}
    if nxt:
        a["connection"] = {
            "next_action_id": nxt,
            "edge_type": "EDGE_TYPE_GOTO" if goto else "EDGE_TYPE_STANDARD",
        }
    return a


async def put(editor: Editor, d: wf.WorkflowDefinition) -> str:
    w = await editor.stub.CreateWorkflow(
        pb.CreateWorkflowRequest(tenant_id=editor.tenant, definition=d)
    )
    return w.workflow.definition.workflow_id


async def test_minimap_and_every_issue_kind(editor: Editor) -> None:
    sp = "set_property"
    actions = {
        "a1": act("a1", sp, {"property": "firstname", "value": "{{ sources.gone.name }}"}, "a2"),
        "a2": act("a2", sp, {"value": "x"}, "a3"),  # missing required "property"
        "a3": act(
            "a3", sp, {"property": "no_such_prop", "value": "{{ actions.zz.outputs.x }}"}, "a4"
        ),
        "a4": act("a4", "delay", {}, "b1", placeholder=True),
        "b1": act(
            "b1",
            "if_then",
            branches=[
                {
                    "branch_id": f"b{i}",
                    "label": f"L{i}",
                    "criteria": {"filters": [{"property": "firstname", "operator": "is_known"}]},
                }
                for i in range(21)
            ],
            default_connection={"next_action_id": "r1"},
        ),
        "r1": act(
            "r1",
            "random_split",
            branches=[
                {"branch_id": "x", "percentage": 30, "connection": {"next_action_id": "l1"}},
                {"branch_id": "y", "percentage": 30},
            ],
        ),
        "l1": act("l1", sp, {"property": "firstname", "value": "v"}, "l2"),
        "l2": act("l2", sp, {"property": "lastname", "value": "v"}, "l1", goto=True),
        "orphan": act("orphan", "delay", {"seconds": 5}),
    }
    wid = await put(editor, definition(editor.tenant, actions, "a1"))
    v = await editor.validate(wid)
    assert v.properties_checked and not v.publishable and v.draft_revision == 1
    got = {(i.action_id, i.code) for i in v.issues}
    expected = {
        ("a1", "deleted_data_source"),
        ("a2", "missing_required_field"),
        ("a3", "unknown_property"),
        ("a3", "deleted_action_output"),
        ("a4", "placeholder"),
        ("b1", "branch_limit"),
        ("r1", "random_split_sum"),
        ("orphan", "unreachable_action"),
        ("l2", "goto_loop_without_delay"),
    }
    assert expected <= got, expected - got
    a2 = next(i for i in v.issues if i.code == "missing_required_field")
    assert a2.field == "fields.property"
    nodes = {n.action_id: n for n in v.nodes}
    assert len(nodes) == len(actions) and nodes["a1"].has_issues and not nodes["l1"].has_issues
    assert (nodes["a1"].y, nodes["a2"].y) == (0, 1) and nodes["orphan"].x > nodes["a1"].x
    labels = {(e.from_action_id, e.label) for e in v.edges}
    assert ("b1", "default") in labels and ("r1", "x") in labels
    assert any(e.edge_type == wf.EDGE_TYPE_GOTO for e in v.edges)

    # Publishing refuses with every issue listed, and writes nothing.
    err = await rpc_error(
        editor.stub.PublishWorkflow(
            pb.PublishWorkflowRequest(tenant_id=editor.tenant, workflow_id=wid)
        )
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert ("placeholder", "a4") in precondition_types(err)
    assert len(precondition_types(err)) == len(v.issues)
    w = await editor.get(wid)
    assert (
        w.status == wf.WORKFLOW_STATUS_DRAFT and w.draft_revision == 1 and w.published_revision == 0
    )
    assert not editor.enrollment.activated


async def test_loop_with_delay_is_fine_and_fixed_draft_publishes(editor: Editor) -> None:
    actions = {
        "a1": act("a1", "set_property", {"property": "firstname", "value": "x"}, "a2"),
        "a2": act("a2", "delay", {"seconds": 60}, "a1", goto=True),
    }
    wid = await put(editor, definition(editor.tenant, actions, "a1"))
    v = await editor.validate(wid)
    assert v.publishable, list(v.issues)
    pub = await editor.stub.PublishWorkflow(
        pb.PublishWorkflowRequest(tenant_id=editor.tenant, workflow_id=wid)
    )
    # Name and description were generated deterministically from triggers and actions.
    assert pub.workflow.definition.name.startswith("Contact workflow")
    assert "Set property value" in pub.workflow.definition.description


async def test_bad_input_names_fields(editor: Editor) -> None:
    t = editor.tenant
    err = await rpc_error(
        editor.stub.CreateWorkflow(
            pb.CreateWorkflowRequest(definition=wf.WorkflowDefinition(object_type="contact"))
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "tenant_id" in bad_request_fields(err)
    err = await rpc_error(
        editor.stub.CreateWorkflow(
            pb.CreateWorkflowRequest(tenant_id=t, definition=wf.WorkflowDefinition())
        )
    )
    assert "definition.object_type" in bad_request_fields(err)
    err = await rpc_error(editor.create(name="x" * 600))
    assert (
        err.code() == grpc.StatusCode.INVALID_ARGUMENT
        and "definition.name" in bad_request_fields(err)
    )
    err = await rpc_error(
        editor.stub.AddComment(pb.AddCommentRequest(tenant_id=t, workflow_id="w", text="hi"))
    )
    assert "action_id" in bad_request_fields(err)
    err = await rpc_error(put(editor, definition(t, {"a": act("a", "teleport")}, "a")))
    assert "definition.actions.a.action_type" in bad_request_fields(err)
    err = await rpc_error(
        put(editor, definition(t, {"a": act("a", "delay", {"seconds": 1}, "nope")}, "a"))
    )
    assert "definition.actions.a.next" in bad_request_fields(err)

    w = await editor.create()
    wid = w.definition.workflow_id
    audit = pb.ListAuditEntriesRequest(tenant_id=t, workflow_id=wid)
    audited = len((await editor.stub.ListAuditEntries(audit)).entries)
    err = await rpc_error(editor.add(wid, 0, "set_property", {"mode": "set"}))
    fields = bad_request_fields(err)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "action.fields.property" in fields
    err = await rpc_error(editor.add(wid, 0, "teleport"))
    assert "action.action_type" in bad_request_fields(err)
    err = await rpc_error(
        editor.add(wid, 0, "delay", {"seconds": 1}, position=pb.Position(after_action_id="ghost"))
    )
    assert "position.after_action_id" in bad_request_fields(err)
    err = await rpc_error(
        editor.stub.UpdateAction(
            pb.UpdateActionRequest(
                tenant_id=t,
                workflow_id=wid,
                action=wf.Action(
                    action_id="ghost", action_type="delay", fields=struct({"seconds": 1})
                ),
            )
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = await rpc_error(editor.get("wf_missing"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = await rpc_error(
        editor.stub.DeleteAction(pb.DeleteActionRequest(tenant_id=t, workflow_id=wid))
    )
    assert "action_id" in bad_request_fields(err)
    # A placeholder may be incomplete.
    ok = await editor.add(wid, 0, "set_property", {}, placeholder=True)
    assert ok.workflow.draft_revision == 2
    # The refusals above wrote nothing: one revision and one audit entry, for the placeholder.
    assert (await editor.get(wid)).draft_revision == 2
    assert len((await editor.stub.ListAuditEntries(audit)).entries) == audited + 1
    listed = await editor.stub.ListWorkflows(pb.ListWorkflowsRequest(tenant_id=t))
    assert len(listed.workflows) == 1  # the refused creates left no rows


async def test_plan_entitlements(editor: Editor) -> None:
    t = editor.tenant
    w = await editor.create()
    wid = w.definition.workflow_id
    plan = await editor.stub.SetTenantPlan(
        pb.SetTenantPlanRequest(
            tenant_id=t,
            plan=pb.TenantPlan(
                plan_name="starter",
                locked_action_types=["random_split"],
                locked_trigger_kinds=["schedule"],
                max_workflows=2,
            ),
        )
    )
    assert not plan.plan.unrestricted
    assert (
        await editor.stub.GetTenantPlan(pb.GetTenantPlanRequest(tenant_id=t))
    ).plan.max_workflows == 2
    err = await rpc_error(editor.add(wid, 0, "random_split", {}))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "starter" in (err.details() or "")
    from crmflow.api.workflow.v1 import triggers_pb2 as tr

    err = await rpc_error(
        editor.stub.UpdateTriggers(
            pb.UpdateTriggersRequest(
                tenant_id=t,
                workflow_id=wid,
                enrollment=tr.EnrollmentSettings(
                    triggers=[
                        tr.Trigger(
                            schedule=tr.ScheduleTrigger(frequency=tr.SCHEDULE_FREQUENCY_DAILY)
                        )
                    ]
                ),
            )
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    await editor.create()
    err = await rpc_error(editor.create())
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "allows 2 workflows" in (
        err.details() or ""
    )
    err = await rpc_error(
        editor.stub.SetTenantPlan(
            pb.SetTenantPlanRequest(
                tenant_id=t, plan=pb.TenantPlan(locked_trigger_kinds=["telepathy"])
            )
        )
    )
    assert "plan.locked_trigger_kinds" in bad_request_fields(err)


async def test_template_library_review_and_use(editor: Editor) -> None:
    t = editor.tenant
    lib = await editor.stub.ListTemplates(pb.ListTemplatesRequest(tenant_id=t))
    assert len(lib.templates) >= 20 and len(lib.categories) >= 6
    deals = await editor.stub.ListTemplates(pb.ListTemplatesRequest(object_type="deal"))
    assert deals.templates and all(x.object_type == "deal" for x in deals.templates)
    cat = await editor.stub.ListTemplates(pb.ListTemplatesRequest(category="renewals"))
    assert cat.templates and all(x.category == "renewals" for x in cat.templates)
    found = await editor.stub.ListTemplates(pb.ListTemplatesRequest(query="country"))
    assert [x.template_id for x in found.templates] == ["hygiene-normalise-country"]

    review = await editor.stub.GetTemplate(
        pb.GetTemplateRequest(tenant_id=t, template_id="hygiene-webhook-sync")
    )
    assert review.purpose and review.template.object_type == "company"
    assert list(review.template.required_features) == ["operations_hub"]
    assert any(a.placeholder for a in review.actions) and review.compatible_with_plan
    await editor.stub.SetTenantPlan(
        pb.SetTenantPlanRequest(tenant_id=t, plan=pb.TenantPlan(plan_name="free"))
    )
    review = await editor.stub.GetTemplate(
        pb.GetTemplateRequest(tenant_id=t, template_id="hygiene-webhook-sync")
    )
    assert not review.compatible_with_plan and "operations_hub" in review.missing_features
    err = await rpc_error(editor.stub.GetTemplate(pb.GetTemplateRequest(template_id="nope")))
    assert err.code() == grpc.StatusCode.NOT_FOUND

    made = await editor.stub.CreateWorkflow(
        pb.CreateWorkflowRequest(
            tenant_id=t,
            template_id="hygiene-normalise-country",
            definition=wf.WorkflowDefinition(name="My country fixer"),
        )
    )
    d = made.workflow.definition
    assert d.name == "My country fixer" and len(d.actions) == 3 and d.object_type == "contact"
    v = await editor.validate(d.workflow_id)
    assert v.publishable, list(v.issues)


async def test_five_hundred_actions(editor: Editor) -> None:
    n = 500
    actions = {
        f"a{i}": act(
            f"a{i}",
            "set_property" if i % 2 else "delay",
            {"property": "firstname", "value": f"v{i}"} if i % 2 else {"seconds": 60},
            f"a{i + 1}" if i + 1 < n else "",
        )
        for i in range(n)
    }
    wid = await put(editor, definition(editor.tenant, actions, "a0"))
    added = await editor.add(
        wid, 1, "delay", {"seconds": 30}, position=pb.Position(after_action_id="a250")
    )
    assert len(added.workflow.definition.actions) == n + 1
    v = await editor.validate(wid)
    assert v.publishable and len(v.nodes) == n + 1 and max(x.y for x in v.nodes) == n
    pub = await editor.stub.PublishWorkflow(
        pb.PublishWorkflowRequest(tenant_id=editor.tenant, workflow_id=wid)
    )
    assert pub.revision.revision == 1 and len(pub.revision.definition.actions) == n + 1
    assert len(editor.enrollment.activated[0].revision.definition.actions) == n + 1


async def test_template_with_placeholders_is_created_and_blocks_publish(editor: Editor) -> None:
    t = editor.tenant
    made = await editor.stub.CreateWorkflow(
        pb.CreateWorkflowRequest(tenant_id=t, template_id="lead-nurture-new-contact", actor="ann")
    )
    d = made.workflow.definition
    assert d.name == "Nurture new leads" and len(d.actions) == 5
    v = await editor.validate(d.workflow_id)
    assert {i.action_id for i in v.issues if i.code == "placeholder"} == {"a1", "a3"}
    err = await rpc_error(
        editor.stub.PublishWorkflow(
            pb.PublishWorkflowRequest(tenant_id=t, workflow_id=d.workflow_id)
        )
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert ("placeholder", "a1") in precondition_types(err)
    # A plan without the template's features refuses "use template".
    await editor.stub.SetTenantPlan(
        pb.SetTenantPlanRequest(tenant_id=t, plan=pb.TenantPlan(plan_name="free"))
    )
    err = await rpc_error(
        editor.stub.CreateWorkflow(
            pb.CreateWorkflowRequest(tenant_id=t, template_id="lead-nurture-new-contact")
        )
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "marketing_email" in (
        err.details() or ""
    )


async def test_action_catalogue_and_operators(editor: Editor) -> None:
    t = editor.tenant
    cat = await editor.stub.ListActionTypes(pb.ListActionTypesRequest(tenant_id=t))
    by = {a.action_type: a for a in cat.action_types}
    assert {"delay", "if_then", "set_property"} <= set(by) and not any(
        a.locked for a in by.values()
    )
    assert '"property"' in by["set_property"].fields_json_schema
    await editor.stub.SetTenantPlan(
        pb.SetTenantPlanRequest(
            tenant_id=t, plan=pb.TenantPlan(plan_name="starter", locked_action_types=["delay"])
        )
    )
    cat = await editor.stub.ListActionTypes(
        pb.ListActionTypesRequest(tenant_id=t, category="control")
    )
    by = {a.action_type: a for a in cat.action_types}
    assert by["delay"].locked and "starter" in by["delay"].locked_reason
    assert all(a.category == "control" for a in cat.action_types)
    ops = await editor.stub.ListFilterOperators(
        pb.ListFilterOperatorsRequest(property_type="number")
    )
    keys = {o.key for o in ops.operators}
    assert {"gt", "between"} <= keys and "contains" not in keys


async def test_enrolled_in_workflow_filters_name_existing_workflows(editor: Editor) -> None:
    from crmflow.api.workflow.v1 import triggers_pb2 as tr

    t = editor.tenant
    other = (await editor.create()).definition.workflow_id
    wid = (await editor.create()).definition.workflow_id

    def triggers(workflow_id: str, condition: str = "HAS_BEEN_ENROLLED") -> Any:
        return json_format.ParseDict(
            {
                "triggers": [
                    {
                        "criteria": {
                            "filter": {
                                "enrollment_filters": [
                                    {
                                        "workflow_id": workflow_id,
                                        "condition": f"ENROLLMENT_CONDITION_{condition}",
                                    }
                                ]
                            }
                        }
                    }
                ]
            },
            tr.EnrollmentSettings(),
        )

    def update(settings: Any) -> Any:
        return editor.stub.UpdateTriggers(
            pb.UpdateTriggersRequest(tenant_id=t, workflow_id=wid, enrollment=settings)
        )

    err = await rpc_error(update(triggers("wf_nowhere")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(bad_request_fields(err)) == [
        "enrollment.triggers[0].criteria.filter.enrollment_filters[0].workflow_id"
    ]
    # a workflow of another object type: a contact is never enrolled there
    deals = (await editor.create(object_type="deal")).definition.workflow_id
    err = await rpc_error(update(triggers(deals)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(bad_request_fields(err)) == [
        "enrollment.triggers[0].criteria.filter.enrollment_filters[0].workflow_id"
    ]
    assert "enrolls deal records" in err.details()
    # a condition must be named
    bad = triggers(other)
    bad.triggers[0].criteria.filter.enrollment_filters[0].condition = 0
    err = await rpc_error(update(bad))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any("condition" in f for f in bad_request_fields(err))
    ok = await update(triggers(other, "IS_CURRENTLY_ENROLLED"))
    ef = ok.workflow.definition.enrollment.triggers[0].criteria.filter.enrollment_filters[0]
    assert ef.workflow_id == other and ef.condition == 3
    # in if/then branches too (the executor asks the enrollment service)
    from crmflow.api.workflow.v1 import criteria_pb2

    def crit(workflow_id: str) -> criteria_pb2.FilterGroup:
        return json_format.ParseDict(
            {"enrollment_filters": [{"workflow_id": workflow_id, "condition": 1}]},
            criteria_pb2.FilterGroup(),
        )

    err = await rpc_error(
        editor.add(
            wid, 0, "if_then", {}, branches=[wf.Branch(branch_id="b1", criteria=crit("wf_gone"))]
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(bad_request_fields(err)) == [
        "action.branches[0].criteria.enrollment_filters[0].workflow_id"
    ]
    added = await editor.add(
        wid, 0, "if_then", {}, branches=[wf.Branch(branch_id="b1", criteria=crit(other))]
    )
    assert added.workflow.draft_revision > ok.workflow.draft_revision
    # the referenced workflow deleted later: edits go on, validation reports it
    await editor.stub.DeleteWorkflow(
        pb.DeleteWorkflowRequest(tenant_id=t, workflow_id=other, actor="ann")
    )
    v = await editor.validate(wid)
    branch_action = added.action_id
    assert {(i.action_id, i.field) for i in v.issues if i.code == "unknown_workflow"} == {
        ("", "enrollment.triggers[0].criteria.filter.enrollment_filters[0].workflow_id"),
        (branch_action, "branches[0].criteria.enrollment_filters[0].workflow_id"),
    }

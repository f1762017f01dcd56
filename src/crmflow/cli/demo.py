"""``crmflow demo``: load a realistic CRM, publish a sample workflow, cause enrollments.

Runs against a running stack (``crmflow up``). Everything goes through the public gRPC APIs, as
another service would: records via CrmService, the workflow via EditorService, enrollments via
the CRM's own change events reaching the enrollment service. Safe to run twice: records load
idempotently and the workflow is reused by name.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import urllib.parse

from temporalio.client import Client
from temporalio.service import RPCError

from crmflow.api.editor.v1 import editor_service_pb2 as editor_pb
from crmflow.api.editor.v1 import editor_service_pb2_grpc as editor_grpc
from crmflow.api.workflow.v1 import workflow_pb2
from crmflow.cli.exit import exit_now
from crmflow.grpc.channel import open_channel
from crmflow.model.convert import to_proto
from crmflow.model.criteria import FilterGroup
from crmflow.model.workflow import WorkflowDefinition
from crmflow.records import demo_data
from crmflow.records.grpc_adapter import GrpcRecordStore
from crmflow.settings import Settings, load_settings
from crmflow.temporal.client import connect

WORKFLOW_NAME = "Demo: welcome new marketing-qualified leads"
MQL = "marketingqualifiedlead"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="load sample data and a workflow into a running stack")
    p.add_argument("--tenant", default=demo_data.DEFAULT_TENANT)
    p.add_argument("--enroll", type=int, default=12, help="contacts to turn into MQLs")
    p.set_defaults(func=lambda args: exit_now(asyncio.run(run_demo(args))))


def demo_definition(tenant: str) -> WorkflowDefinition:
    """Set lead status, wait, then branch on country: a short run with every kind of step."""
    mql = {"filters": [{"property": "lifecyclestage", "operator": "eq", "value": MQL}]}
    return WorkflowDefinition.model_validate(
        {
            "tenant_id": tenant,
            "name": WORKFLOW_NAME,
            "description": "Marks new MQLs as open, waits a moment, then sets their language.",
            "folder": "Demo",
            "object_type": "contact",
            "enrollment": {"triggers": [{"criteria": {"filter": mql}}]},
            "start_action_id": "open",
            "actions": {
                "open": {
                    "action_id": "open",
                    "action_type": "set_property",
                    "label": "Mark lead as open",
                    "fields": {"property": "hs_lead_status", "value": "OPEN"},
                    "connection": {"next_action_id": "wait"},
                },
                "wait": {
                    "action_id": "wait",
                    "action_type": "delay",
                    "label": "Give sales a moment",
                    "fields": {"kind": "duration", "seconds": 20},
                    "connection": {"next_action_id": "nordic"},
                },
                "nordic": {
                    "action_id": "nordic",
                    "action_type": "if_then",
                    "label": "Nordic contact?",
                    "branches": [
                        {
                            "branch_id": "yes",
                            "label": "Nordic",
                            "criteria": {
                                "filters": [
                                    {
                                        "property": "country",
                                        "operator": "in",
                                        "values": ["Denmark", "Sweden", "Norway"],
                                    }
                                ]
                            },
                            "connection": {"next_action_id": "lang-da"},
                        }
                    ],
                    "default_connection": {"next_action_id": "lang-en"},
                },
                "lang-da": {
                    "action_id": "lang-da",
                    "action_type": "set_property",
                    "fields": {"property": "hs_language", "value": "da"},
                },
                "lang-en": {
                    "action_id": "lang-en",
                    "action_type": "set_property",
                    "fields": {"property": "hs_language", "value": "en"},
                },
            },
        }
    )


async def _publish(editor: editor_grpc.EditorServiceStub, tenant: str) -> tuple[str, bool]:
    listed = await editor.ListWorkflows(
        editor_pb.ListWorkflowsRequest(tenant_id=tenant, text=WORKFLOW_NAME)
    )
    for wf in listed.workflows:
        if wf.definition.name == WORKFLOW_NAME and wf.published_revision:
            return wf.definition.workflow_id, True
    made = await editor.CreateWorkflow(
        editor_pb.CreateWorkflowRequest(
            tenant_id=tenant,
            definition=to_proto(demo_definition(tenant), workflow_pb2.WorkflowDefinition),
        )
    )
    wf_id = made.workflow.definition.workflow_id
    await editor.PublishWorkflow(
        editor_pb.PublishWorkflowRequest(
            tenant_id=tenant,
            workflow_id=wf_id,
            expected_draft_revision=made.workflow.draft_revision,
            enroll_existing=False,
        )
    )
    return wf_id, False


def _progress(what: str, done: int, total: int) -> None:
    print(f"\r  loading {what:<12} {done:>4}/{total}", end="", file=sys.stderr, flush=True)
    if done == total:
        print(file=sys.stderr)


async def run_demo(args: argparse.Namespace) -> int:
    settings: Settings = load_settings(Settings)
    tenant = args.tenant
    store = GrpcRecordStore.connect(settings.datasource_resolver_address, settings)
    try:
        print(f"Loading the demo CRM for tenant {tenant!r} ...")
        counts = await demo_data.load(store, tenant, demo_data.generate(), progress=_progress)
        print("  " + ", ".join(f"{n} {k}" for k, n in counts.items()))

        async with open_channel(settings.editor_api_address, settings) as channel:
            wf_id, reused = await _publish(editor_grpc.EditorServiceStub(channel), tenant)
        verb = "reusing workflow" if reused else "published workflow"
        print(f"{verb} {wf_id!r}: {WORKFLOW_NAME}")

        leads = await store.search(
            tenant,
            "contact",
            FilterGroup.model_validate(
                {"filters": [{"property": "lifecyclestage", "operator": "eq", "value": "lead"}]}
            ),
            limit=args.enroll,
        )
        for rec in leads.records:
            await store.update(tenant, "contact", rec.record_id, {"lifecyclestage": MQL})
        print(f"turned {len(leads.records)} leads into MQLs; waiting for their enrollments ...")
    finally:
        await store.close()

    client = await connect(settings.temporal)
    query = f'CrmflowTenantId = "{tenant}" AND CrmflowWorkflowId = "{wf_id}"'
    runs = await _wait_for_runs(client, query, at_least=len(leads.records))
    ns = settings.temporal.namespace
    url = f"{settings.temporal_ui_url}/namespaces/{ns}/workflows?query={urllib.parse.quote(query)}"
    print(f"{runs} contacts enrolled in total. See the runs in the Temporal UI:\n  {url}")
    return 0


async def _wait_for_runs(client: Client, query: str, *, at_least: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        try:
            count = (await client.count_workflows(query)).count
        except RPCError:
            count = 0
        if count >= at_least:
            break
        await asyncio.sleep(0.5)
    return count

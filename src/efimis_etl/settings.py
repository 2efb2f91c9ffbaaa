"""The service's settings: one object, read from `EFIMIS_` environment variables, embedded defaults."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

TENANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
EMBEDDED_ISSUER = "urn:efimis-etl:embedded"


@dataclass(frozen=True)
class ReadPolicy:
    """How the importer reads a source: batch size, and how it survives lost connections and stalls."""

    batch_size: int
    retries: int = 5  # reconnections allowed per import after a lost connection or a stalled batch
    backoff_seconds: float = 1.0  # doubled each time, at most 30 s
    stall_seconds: int | None = None  # a batch taking longer is cancelled (then retried)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EFIMIS_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        Path("var"),
        description="Where the embedded default keeps the platform database and the tenant stores.",
    )
    tenant: str = Field(
        "default",
        pattern=TENANT_PATTERN,
        description="The demo client's tenant on the embedded default, and the pre-flight's tenant.",
    )
    batch_size: int = Field(5000, ge=1, le=100_000, description="Rows read from the source per batch.")
    read_retries: int = Field(
        5,
        ge=0,
        le=100,
        description="Reconnections allowed per import after a lost connection or stalled batch.",
    )
    retry_backoff_seconds: float = Field(
        1.0, ge=0, le=60, description="First wait before reconnecting; doubles."
    )
    stall_seconds: int = Field(
        300, ge=1, description="A batch that takes longer is cancelled and retried (a Command Timeout wins)."
    )
    findings_in_status: int = Field(20, ge=0, le=1000, description="Findings shown in the status.")
    workers: int = Field(
        2,
        ge=1,
        le=64,
        description="Embedded default: jobs (imports with their validation, promotions) run at once, each in "
        "a child process of the service. Scaled out, `efimis-etl worker --concurrency` says this instead.",
    )
    host: str = "127.0.0.1"
    port: int = 8000

    # Authentication: OAuth 2.0 client-credentials bearer tokens (JWT).
    auth_issuer: str = Field(
        EMBEDDED_ISSUER,
        description="The token issuer (iss). The default is the built-in token endpoint POST /oauth2/token.",
    )
    auth_jwks_url: str | None = Field(
        None, description="Where the issuer publishes its keys (JWKS); unset means the built-in issuer."
    )
    auth_audience: str = Field("efimis-etl", description="The audience (aud) tokens must carry.")
    tenant_claim: str = Field("tenant", description="The token claim that names the caller's tenant.")
    token_ttl_seconds: int = Field(3600, ge=60, le=86_400)
    demo_client_id: str = Field(
        "demo", description="The built-in issuer's demo client, created on first start."
    )
    demo_client_secret: SecretStr | None = Field(
        None, description="The demo client's secret; when unset one is generated and printed once."
    )

    # Hostile input.
    allowed_networks: list[str] = Field(
        ["127.0.0.0/8", "::1/128"],
        description="Non-public networks a source may be in (loopback on the embedded default, for the demo). "
        "Everything else that is not a public address (private, link-local, cloud metadata) is refused.",
    )
    allow_dev_sources: bool = Field(True, description="Accept sqlite:/// and postgresql:// sources.")
    max_body_bytes: int = Field(65_536, ge=1024, description="Largest request body accepted.")
    max_running_imports: int = Field(
        4, ge=1, description="Imports a tenant may have queued or running at once."
    )

    # Scaling out: PostgreSQL instead of the embedded SQLite files (see README, "Running at scale").
    platform_database_url: str | None = Field(
        None, description="PostgreSQL URL of the platform's own tables (requests, audit, jobs)."
    )
    staging_url: str | None = Field(
        None, description="PostgreSQL URL where staging tenants live, one schema per import request."
    )
    production_url: str | None = Field(
        None, description="PostgreSQL URL where production tenants live, one schema per tenant."
    )
    staging_retention_hours: float = Field(
        168, gt=0, description="How long a finished import's staging data is kept (for findings, id maps)."
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Fernet key that encrypts connection strings while their import waits in the distributed "
        "queue. Required when scaled out (the embedded worker keeps them in memory only).",
    )

    def read_policy(self) -> ReadPolicy:
        return ReadPolicy(
            batch_size=self.batch_size,
            retries=self.read_retries,
            backoff_seconds=self.retry_backoff_seconds,
            stall_seconds=self.stall_seconds,
        )

    @property
    def scaled_out(self) -> bool:
        return self.platform_database_url is not None

    @property
    def platform_url(self) -> str:
        return self.platform_database_url or f"sqlite:///{self.data_dir / 'platform.sqlite'}"


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""The service's settings: one object, read from `EFIMIS_` environment variables, embedded defaults."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

TENANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
EMBEDDED_ISSUER = "urn:efimis-etl:embedded"


@dataclass(frozen=True)
class ReadPolicy:
    """How the importer reads a source: batch size, and how it survives lost connections and stalls."""

    batch_size: int
    retries: int = 5  # reconnections allowed per import after a lost connection or a stalled batch
    backoff_seconds: float = 1.0  # doubled each time, at most 30 s
    stall_seconds: int | None = None  # a batch taking longer is cancelled (then retried)


# The embedded default runs on the operator's own machine, where the demo reads a SQLite file and the test
# SQL Server on loopback; a shared, scaled-out deployment runs tenants' connection strings on workers next
# to the platform's own databases, so there nothing non-public is reachable unless the operator says so.
EMBEDDED_NETWORKS = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class SourcePolicy:
    """Which sources an import may name: development sources or not, and the non-public networks allowed
    (every public address is). `explicit_*` say whether the operator set them or they are the defaults."""

    allowed_networks: tuple[str, ...]
    allow_dev_sources: bool
    explicit_networks: bool
    explicit_dev_sources: bool

    def describe(self) -> list[str]:
        """What `serve` and `worker` print at start: what they accept, and which setting changes it."""
        networks = ", ".join(self.allowed_networks) or "none"
        dev = "sqlite:///, postgresql://" if self.allow_dev_sources else "off"
        return [
            "Sources: SQL Server at public addresses; non-public networks allowed: "
            f"{networks} ({'EFIMIS_ALLOWED_NETWORKS' if self.explicit_networks else 'default'})",
            f"Development sources: {dev} "
            f"({'EFIMIS_ALLOW_DEV_SOURCES' if self.explicit_dev_sources else 'default'})",
        ]


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
    allowed_networks: Annotated[list[str] | None, NoDecode] = Field(
        None,
        description="Non-public networks a source may be in, as CIDR: a JSON list or comma-separated. Unset: "
        "loopback on the embedded default (for the demo), none when any PostgreSQL URL is configured. "
        "Everything else that is not a public address (private, link-local, cloud metadata) is refused.",
    )
    allow_dev_sources: bool | None = Field(
        None,
        description="Accept sqlite:/// and postgresql:// sources. Unset: yes on the embedded default, no when "
        "any PostgreSQL URL is configured (a sqlite:/// source would read files on the workers' disks).",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="GET /metrics is served only when this is set, to scrapers sending it as a bearer token.",
    )
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
    revert_days: float = Field(
        30,
        gt=0,
        description="How long a promotion can be reverted: its before-images are kept this many days.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Fernet key that encrypts connection strings while their import waits in the distributed "
        "queue. Required when scaled out (the embedded worker keeps them in memory only).",
    )

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        """Accept `10.0.0.0/8,192.168.0.0/16` as well as JSON, and refuse a typo at start, not at import."""
        if isinstance(value, str):
            text = value.strip()
            value = (
                json.loads(text)
                if text.startswith("[")
                else [n.strip() for n in text.split(",") if n.strip()]
            )
        for network in value or ():
            try:
                ipaddress.ip_network(network, strict=False)
            except (TypeError, ValueError):
                raise ValueError(
                    f"EFIMIS_ALLOWED_NETWORKS: {network!r} is not a network; write CIDR such as 10.0.0.0/8"
                ) from None
        return value

    @property
    def embedded(self) -> bool:
        """Everything in SQLite files under data_dir: no PostgreSQL URL of any kind is configured."""
        return not (self.platform_database_url or self.staging_url or self.production_url)

    def source_policy(self) -> SourcePolicy:
        embedded = self.embedded
        networks = self.allowed_networks
        dev_sources = self.allow_dev_sources
        return SourcePolicy(
            allowed_networks=tuple(
                networks if networks is not None else EMBEDDED_NETWORKS if embedded else ()
            ),
            allow_dev_sources=dev_sources if dev_sources is not None else embedded,
            explicit_networks=networks is not None,
            explicit_dev_sources=dev_sources is not None,
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

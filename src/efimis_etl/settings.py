"""The service's settings: one object, read from `EFIMIS_` environment variables, embedded defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EFIMIS_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        Path("var"),
        description="Where the embedded default keeps the platform database and the tenant stores.",
    )
    tenant: str = Field(
        "default",
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="The tenant this service imports into (until authentication brings it per request).",
    )
    batch_size: int = Field(5000, ge=1, le=100_000, description="Rows read from the source per batch.")
    findings_in_status: int = Field(20, ge=0, le=1000, description="Findings shown in the status.")
    host: str = "127.0.0.1"
    port: int = 8000

    @property
    def platform_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'platform.sqlite'}"

    def staging_path(self, request_id: str) -> Path:
        return self.data_dir / "staging" / f"{request_id}.sqlite"

    def production_path(self, tenant: str) -> Path:
        return self.data_dir / "production" / f"{tenant}.sqlite"


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""Alembic migrations of the platform's own tables (requests, progress, audit, clients, queued secrets).

`upgrade(engine)` brings a platform database to the newest revision; `check(engine)` refuses a database
that is behind, uninitialised, or at a revision this version does not know (a newer deployment's).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

HERE = Path(__file__).parent


class PlatformVersionError(RuntimeError):
    """The platform database is not at the revision this version of the service expects."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return config


def head() -> str:
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the platform database to `revision` (the newest by default; tests build older ones)."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check(engine: Engine) -> None:
    found = current(engine)
    expected = head()
    if found == expected:
        return
    known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
    if found is None:
        raise PlatformVersionError(
            "The platform database has no Efimis ETL tables yet: run `efimis-etl migrate` first."
        )
    if found not in known:
        raise PlatformVersionError(
            f"The platform database is at revision {found}, which this version of Efimis ETL does not know "
            f"(it expects {expected}): a newer version has migrated it. Run that version, or restore a backup."
        )
    raise PlatformVersionError(
        f"The platform database is at revision {found}; this version needs {expected}: run `efimis-etl migrate`."
    )

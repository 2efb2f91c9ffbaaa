"""The key that encrypts a queued import's connection string while it waits for a worker (scaled out)."""

from __future__ import annotations

from cryptography.fernet import Fernet

from efimis_etl.settings import Settings


def secret_box(settings: Settings) -> Fernet:
    if settings.secret_key is None:
        raise ValueError(
            "EFIMIS_SECRET_KEY is required when scaled out: it encrypts connection strings while their import "
            "is queued. Generate one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        )
    try:
        return Fernet(settings.secret_key.get_secret_value().encode())
    except ValueError:
        raise ValueError(
            "EFIMIS_SECRET_KEY is not a Fernet key (32 url-safe base64-encoded bytes)."
        ) from None

"""Who may call the API: OAuth 2.0 client-credentials bearer tokens (JWT, RS256), as the Efimis APIs do.

Two halves:
- `TokenVerifier` checks a bearer token's signature, expiry, issuer and audience, and reads the caller's
  tenant from a claim. Keys come from the configured issuer's JWKS, or from the built-in issuer.
- `EmbeddedIssuer`, for the embedded default only, is that built-in issuer: it keeps an RSA signing key
  under the data directory and issues tokens at `POST /oauth2/token` to the `Clients` of the platform
  database (secrets stored as scrypt hashes, never in clear). A demo client is created on first start and
  its secret printed once, so the README's commands work without an outside identity provider.

`efimis-etl clients add|list|revoke` changes `Clients` while services run: nothing caches them, and every
request's token is checked against its client, so a revoked client's tokens stop working at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Column, Engine, MetaData, String, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from efimis_etl.settings import EMBEDDED_ISSUER, TENANT_PATTERN, Settings
from efimis_etl.timestamps import UtcDateTime, utc_now

log = logging.getLogger(__name__)
ALGORITHM = "RS256"

CLIENTS = MetaData()
OAUTH_CLIENT = Table(
    "oauth_client",
    CLIENTS,
    Column("client_id", String(100), primary_key=True),
    Column("secret_hash", String(200), nullable=False),
    Column("tenant", String(63), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime()),  # kept, not deleted: a client id is never given out twice
)
CLIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class AuthError(Exception):
    """The caller is not authenticated; the message says why (never echoing the token)."""


@dataclass(frozen=True)
class Principal:
    tenant: str
    client_id: str


class ClientError(ValueError):
    """A client cannot be added or revoked as asked; the message says what to do instead."""


@dataclass(frozen=True)
class Client:
    """A client of the built-in issuer, as `efimis-etl clients list` shows it (no secret, no hash)."""

    client_id: str
    tenant: str
    created_at: datetime
    revoked_at: datetime | None


class Clients:
    """The built-in issuer's clients in the platform database, read afresh on every use (never cached),
    so that clients added or revoked by `efimis-etl clients` count in running services at once."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, tenant: str, client_id: str | None = None) -> tuple[Client, str]:
        """A new client for the tenant, and its secret: shown to the operator once, stored only hashed."""
        secret = secrets.token_urlsafe(32)
        client_id = client_id or f"{tenant}-{secrets.token_hex(4)}"
        return self.register(client_id, secret, tenant), secret

    def register(self, client_id: str, secret: str, tenant: str) -> Client:
        if not re.fullmatch(TENANT_PATTERN, tenant):
            raise ClientError(
                f"The tenant {tenant!r} is not a valid tenant name: use lowercase letters, digits and "
                "hyphens, starting with a letter or digit, at most 63 characters."
            )
        if not re.fullmatch(CLIENT_ID_PATTERN, client_id):
            raise ClientError(
                f"The client id {client_id!r} is not valid: use letters, digits, '.', '_' and '-', starting "
                "with a letter or digit, at most 100 characters."
            )
        client = Client(client_id, tenant, utc_now(), None)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(OAUTH_CLIENT).values(
                        client_id=client_id,
                        secret_hash=_hash_secret(secret),
                        tenant=tenant,
                        created_at=client.created_at,
                    )
                )
        except IntegrityError:
            raise ClientError(
                f"A client {client_id!r} exists already (a revoked client's id is never reused): choose "
                "another --client-id, or leave it out to have one made up."
            ) from None
        return client

    def all(self) -> list[Client]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    OAUTH_CLIENT.c.client_id,
                    OAUTH_CLIENT.c.tenant,
                    OAUTH_CLIENT.c.created_at,
                    OAUTH_CLIENT.c.revoked_at,
                ).order_by(OAUTH_CLIENT.c.tenant, OAUTH_CLIENT.c.client_id)
            ).all()
        return [Client(*row) for row in rows]

    def revoke(self, client_id: str) -> Client:
        """Revoke the client (its tokens stop working at once); revoking twice changes nothing."""
        with self.engine.begin() as conn:
            conn.execute(
                update(OAUTH_CLIENT)
                .where(OAUTH_CLIENT.c.client_id == client_id, OAUTH_CLIENT.c.revoked_at.is_(None))
                .values(revoked_at=utc_now())
            )
        found = [c for c in self.all() if c.client_id == client_id]
        if not found:
            raise ClientError(f"There is no client {client_id!r}: `efimis-etl clients list` shows them.")
        return found[0]

    def authenticate(self, client_id: str, secret: str) -> str:
        """The tenant of an active client whose secret matches, else AuthError."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(OAUTH_CLIENT.c.secret_hash, OAUTH_CLIENT.c.tenant).where(
                    OAUTH_CLIENT.c.client_id == client_id, OAUTH_CLIENT.c.revoked_at.is_(None)
                )
            ).first()
        if row is None or not _secret_matches(secret, row.secret_hash):
            raise AuthError("Unknown client or wrong client secret.")
        return str(row.tenant)

    def active(self, client_id: str, tenant: str) -> bool:
        """Whether a token's client still exists, is not revoked, and belongs to the token's tenant: one
        primary-key lookup per request, the price of revocation taking effect at once."""
        with self.engine.connect() as conn:
            found = conn.execute(
                select(OAUTH_CLIENT.c.tenant).where(
                    OAUTH_CLIENT.c.client_id == client_id, OAUTH_CLIENT.c.revoked_at.is_(None)
                )
            ).scalar()
        return found == tenant


def _hash_secret(secret: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=2**14, r=8, p=1)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def _secret_matches(secret: str, stored: str) -> bool:
    _, salt, _ = stored.split("$")
    return hmac.compare_digest(_hash_secret(secret, base64.b64decode(salt)), stored)


class EmbeddedIssuer:
    """The built-in token issuer of the embedded default."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine  # the platform database, whose migrations create `oauth_client`
        self.clients = Clients(engine)
        self._key = self._load_or_create_key(settings.data_dir / "identity" / "signing-key.pem")
        public = self._key.public_key()
        self.kid = hashlib.sha256(
            public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ).hexdigest()[:16]
        self._public_jwk = {
            **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public)),
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
        }

    @staticmethod
    def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        return key

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._public_jwk]}

    def ensure_demo_client(self) -> str | None:
        """Create the demo client on first start; return its secret if it was generated (to print once)."""
        settings = self.settings
        with self.engine.connect() as conn:
            exists = conn.execute(
                select(OAUTH_CLIENT.c.client_id).where(OAUTH_CLIENT.c.client_id == settings.demo_client_id)
            ).first()
        if exists:
            return None
        given = settings.demo_client_secret.get_secret_value() if settings.demo_client_secret else None
        secret = given or secrets.token_urlsafe(32)
        self.clients.register(settings.demo_client_id, secret, settings.tenant)
        return None if given else secret

    def register(self, client_id: str, secret: str, tenant: str) -> None:
        self.clients.register(client_id, secret, tenant)

    def issue(self, client_id: str, secret: str) -> dict[str, Any]:
        """An access token for valid client credentials (RFC 6749 §4.4), else AuthError."""
        tenant = self.clients.authenticate(client_id, secret)
        now = int(time.time())
        claims = {
            "iss": self.settings.auth_issuer,
            "sub": client_id,
            "aud": self.settings.auth_audience,
            "iat": now,
            "nbf": now,
            "exp": now + self.settings.token_ttl_seconds,
            self.settings.tenant_claim: tenant,
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.settings.token_ttl_seconds}


class TokenVerifier:
    """Checks bearer tokens against the issuer's keys."""

    def __init__(self, settings: Settings, issuer: EmbeddedIssuer | None) -> None:
        self.settings = settings
        self._embedded = issuer
        self._jwks = (
            jwt.PyJWKClient(settings.auth_jwks_url, cache_keys=True) if settings.auth_jwks_url else None
        )
        if self._jwks is None and (issuer is None or settings.auth_issuer != EMBEDDED_ISSUER):
            raise ValueError("Set EFIMIS_AUTH_JWKS_URL for an outside issuer (EFIMIS_AUTH_ISSUER).")

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthError("Missing bearer token: send Authorization: Bearer <access token>.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("The Authorization header must be: Bearer <access token>.")
        try:
            key = self._key_for(token.strip())
            claims = jwt.decode(
                token.strip(),
                key,
                algorithms=[ALGORITHM],
                audience=self.settings.auth_audience,
                issuer=self.settings.auth_issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
                leeway=30,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("The access token has expired: request a new one.") from None
        except jwt.InvalidAudienceError:
            raise AuthError(
                f"The access token is not for this service (audience must be "
                f"{self.settings.auth_audience!r})."
            ) from None
        except jwt.InvalidIssuerError:
            raise AuthError("The access token comes from another issuer.") from None
        except (jwt.PyJWTError, ValueError) as error:
            raise AuthError(f"The access token is not valid ({type(error).__name__}).") from None
        tenant = claims.get(self.settings.tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise AuthError(
                f"The access token has no {self.settings.tenant_claim!r} claim naming the tenant."
            )
        if not re.fullmatch(TENANT_PATTERN, tenant):
            raise AuthError("The access token's tenant is not a valid tenant name.")
        client_id = str(claims["sub"])
        # An outside issuer revokes its own clients; the built-in one's are checked on every request.
        if self._embedded is not None and not self._embedded.clients.active(client_id, tenant):
            raise AuthError(
                "The access token's client has been revoked: ask the operator for new client credentials."
            )
        return Principal(tenant=tenant, client_id=client_id)

    def _key_for(self, token: str) -> Any:
        if self._jwks is not None:
            return self._jwks.get_signing_key_from_jwt(token).key
        assert self._embedded is not None
        header = jwt.get_unverified_header(token)
        if header.get("kid") != self._embedded.kid:
            raise ValueError("unknown signing key")
        return self._embedded._key.public_key()

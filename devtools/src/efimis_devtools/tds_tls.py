"""Certificates and TLS settings for the test SQL Server (`tds_server`): test-and-demo code only.

* `self_signed(folder)`: a self-signed certificate for `localhost` and 127.0.0.1, as SQL Server makes for
  itself when no certificate is configured. Clients must set `TrustServerCertificate=yes`.
* `TestCertificateAuthority`: a throw-away CA that issues server certificates for any host name, so that
  a test can make Microsoft's driver *trust* a certificate (by pointing OpenSSL's `SSL_CERT_FILE` at the
  CA's `ca.pem`; ODBC Driver 18 calls `SSL_CTX_set_default_verify_paths`) and still see what happens
  when the certificate names another host.
* `server_context(...)`: the server's `ssl.SSLContext` for one TLS version ("1.2" or "1.3").

Facts about ODBC Driver 18.6 (in `mssql-python` 1.16) observed with these:

* It checks the host name against the certificate's common name and DNS names only: a certificate for
  `localhost` with IP address 127.0.0.1 in its subjectAltName still fails for `Server=127.0.0.1` with
  "certificate verify failed:subject name does not match host name". `HostNameInCertificate=<name>`
  makes it check `<name>` instead.
* Its TDS 7.x in-band handshake offers TLS 1.3 in the ClientHello, and when the server picks 1.3 it sends
  its ChangeCipherSpec and Finished *raw* (not inside PRELOGIN packets). SQL Server offers TLS 1.3 only
  with TDS 8.0 (`Encrypt=strict`); with TLS 1.2 disabled it closes the connection at the ClientHello.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TlsVersion = Literal["1.2", "1.3"]
TDS8_ALPN = "tds/8.0"  # the ALPN protocol of TDS 8.0 (Encrypt=strict)
_VALIDITY = dt.timedelta(days=7)


@dataclass(frozen=True)
class ServerCertificate:
    """A server certificate (PEM, followed by its issuer's for a CA-issued one) and its private key."""

    certificate: Path
    key: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(
    folder: Path,
    stem: str,
    certificate: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    chain: bytes = b"",
) -> ServerCertificate:
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + chain)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return ServerCertificate(cert_path, key_path)


def _alternative_names(
    host_names: tuple[str, ...], ip_addresses: tuple[str, ...]
) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in host_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    return x509.SubjectAlternativeName(names)


def _common_name(name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def self_signed(
    folder: Path, host_names: tuple[str, ...] = ("localhost",), ip_addresses: tuple[str, ...] = ("127.0.0.1",)
) -> ServerCertificate:
    """A self-signed certificate (valid for a week) for these names, written to `folder`."""
    key = _new_key()
    name = _common_name(host_names[0])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(_alternative_names(host_names, ip_addresses), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(folder, "self-signed", certificate, key)


class TestCertificateAuthority:
    """A certificate authority for tests: `ca.pem` in `folder`, and `issue()` for server certificates.

    Trust it in Microsoft's driver by setting the environment variable `SSL_CERT_FILE` to `ca_file` (for
    the process running the driver) before connecting; nothing on the machine is changed.
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, folder: Path, name: str = "Efimis Test CA (tests only)") -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._key = _new_key()
        self._name = _common_name(name)
        now = dt.datetime.now(dt.UTC)
        public_key = self._key.public_key()
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        certificate = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self._pem = certificate.public_bytes(serialization.Encoding.PEM)
        self.ca_file = self.folder / "ca.pem"
        self.ca_file.write_bytes(self._pem)

    def issue(
        self, host_names: tuple[str, ...], *, ip_addresses: tuple[str, ...] = (), valid: bool = True
    ) -> ServerCertificate:
        """A server certificate for these names (common name: the first), signed by this CA.

        `valid=False` makes one that expired yesterday."""
        key = _new_key()
        now = dt.datetime.now(dt.UTC)
        start, end = (now - dt.timedelta(minutes=5), now + _VALIDITY)
        if not valid:
            start, end = now - dt.timedelta(days=30), now - dt.timedelta(days=1)
        issuer_key = x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_common_name(host_names[0]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(_alternative_names(host_names, ip_addresses), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(issuer_key, critical=False)
            .sign(self._key, hashes.SHA256())
        )
        stem = "server-" + host_names[0].replace("*", "star") + ("" if valid else "-expired")
        return _write(self.folder, stem, certificate, key, chain=self._pem)


def server_context(
    certificate: ServerCertificate, version: TlsVersion, *, strict: bool = False
) -> ssl.SSLContext:
    """The server side of TLS with exactly this version; `strict` adds TDS 8.0's ALPN protocol."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    exact = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    context.minimum_version = context.maximum_version = exact
    context.load_cert_chain(certificate.certificate, certificate.key)
    if strict:
        context.set_alpn_protocols([TDS8_ALPN])
    return context

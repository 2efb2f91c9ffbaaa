"""Where a source may be: a connection string is user input that makes this service open a socket.

Without a policy, `Server=169.254.169.254` (cloud metadata), `Server=10.0.0.5,22` or `Server=localhost`
would let any caller probe or reach the operator's own network from inside it. So a source host must
resolve only to public addresses, or to networks the operator allows; development sources (SQLite files,
PostgreSQL URLs) are accepted only when the operator enables them. `Settings.source_policy()` decides the
defaults: loopback and development sources on the embedded default (so the demo works), nothing when
scaled out. The check runs when the import is submitted and again when its job connects.
"""

from __future__ import annotations

import ipaddress
import socket

from efimis_etl.settings import SourcePolicy
from efimis_etl.source.connstr import Source, SqlAlchemySource, SqlServerSource

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SourceRefused(ValueError):
    """A source this service will not connect to; the message says why and which setting allows it."""


def _addresses(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise SourceRefused(
            f"The host {host!r} cannot be resolved: check Server in the connection string."
        ) from None
    return sorted({ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}, key=str)


def check_source(source: Source, policy: SourcePolicy) -> None:
    """Raise SourceRefused unless the source is somewhere this service may connect to."""
    if isinstance(source, SqlAlchemySource):
        if not policy.allow_dev_sources:
            raise SourceRefused(
                "Development sources (sqlite://, postgresql://) are disabled on this service: give a SQL Server "
                "connection string (an operator enables them with EFIMIS_ALLOW_DEV_SOURCES=true)."
            )
        if source.url.get_backend_name() == "sqlite":
            return  # a local file: the operator enabled development sources on purpose
        host, port = source.url.host or "localhost", source.url.port or 5432
    else:
        assert isinstance(source, SqlServerSource)
        host, port = source.host, source.port or 1433
    networks = [ipaddress.ip_network(n, strict=False) for n in policy.allowed_networks]
    for resolved in _addresses(host, port):
        # ::ffff:169.254.169.254 is 169.254.169.254: judge the IPv4 address an IPv4-mapped one carries.
        mapped = getattr(resolved, "ipv4_mapped", None)
        address = mapped if mapped is not None else resolved
        if any(address in network for network in networks):
            continue
        if not address.is_global or address.is_multicast:
            if address.is_loopback:
                kind = "loopback"
            elif address.is_link_local:
                kind = "link-local (this includes cloud metadata endpoints)"
            elif address.is_unspecified:
                kind = "unspecified"
            elif address.is_private:
                kind = "private"
            else:
                kind = "non-public"
            raise SourceRefused(
                f"The source host {host} resolves to {address}, a {kind} address, which this service does "
                "not connect to. Give the database's public host name, or ask the operator to allow its "
                "network (EFIMIS_ALLOWED_NETWORKS)."
            )

"""A stand-in for the SQL Server Browser service (MC-SQLR, UDP 1434): test-and-demo code only.

Clients resolve a named instance (`Server=host\\INSTANCE` without a port) by asking the SQL Server
Browser on the host, over UDP port 1434, which TCP port the instance listens on. This responder answers
for the instances it is given, on 127.0.0.1 only:

* CLNT_UCAST_INST (0x04, the instance name, NUL-terminated, at most 32 bytes): SVR_RESP (0x05, the
  length as a little-endian USHORT, then
  `ServerName;EFIMIS-TEST-TDS;InstanceName;INST;IsClustered;No;Version;16.0.4000.0;tcp;PORT;;`).
  Instance names are compared without regard to case (ODBC Driver 18 sends them in lower case). For an
  instance it does not know it sends nothing, as SQL Server Browser does; the client then times out.
* CLNT_BCAST_EX / CLNT_UCAST_EX (0x02 / 0x03): one SVR_RESP listing every instance.
* Anything else (CLNT_UCAST_DAC 0x0F, garbage) is ignored.

Only one process can listen on 127.0.0.1:1434 at a time: `start()` raises OSError (EADDRINUSE) if
another Browser (or another test run's responder) holds it.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading

from efimis_devtools import tds_protocol as tds

log = logging.getLogger(__name__)

BROWSER_PORT = 1434
CLNT_BCAST_EX, CLNT_UCAST_EX, CLNT_UCAST_INST, CLNT_UCAST_DAC, SVR_RESP = 0x02, 0x03, 0x04, 0x0F, 0x05
_MAX_INSTANCE_BYTES = 32  # MC-SQLR 2.2.3: INSTANCENAME, including its terminating NUL
_VERSION = "{}.{}.{}.0".format(*tds.SERVER_VERSION)


def instance_record(instance: str, port: int, server_name: str = tds.SERVER_NAME) -> str:
    """One instance's RESP_DATA entry, as SQL Server Browser words it (TCP only)."""
    return f"ServerName;{server_name};InstanceName;{instance};IsClustered;No;Version;{_VERSION};tcp;{port};;"


def svr_resp(data: str) -> bytes:
    encoded = data.encode("ascii")
    return bytes([SVR_RESP]) + len(encoded).to_bytes(2, "little") + encoded


def answer(request: bytes, instances: dict[str, int]) -> bytes | None:
    """The reply to one datagram, or None for no reply."""
    if not request:
        return None
    if request[0] == CLNT_UCAST_INST:
        name = request[1 : 1 + _MAX_INSTANCE_BYTES].split(b"\0", 1)[0].decode("ascii", errors="replace")
        for instance, port in instances.items():
            if instance.lower() == name.lower():
                return svr_resp(instance_record(instance, port))
        return None
    if request[0] in (CLNT_BCAST_EX, CLNT_UCAST_EX) and instances:
        return svr_resp("".join(instance_record(i, p) for i, p in instances.items()))
    return None


class SqlBrowser:
    """The responder on 127.0.0.1:`port` (1434 by default), in a thread: `start()`, then `stop()`.

    `instances` maps instance names to TCP ports; `requests` records (request byte, instance name) of
    every datagram received, for tests. Run it in the process of the test SQL Server, not beside
    Microsoft's driver: that driver may hold the GIL while it waits for the answer.
    """

    def __init__(
        self, instances: dict[str, int], *, port: int = BROWSER_PORT, host: str = "127.0.0.1"
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the test SQL Server Browser listens on loopback only")
        self.instances = dict(instances)
        self.host = host
        self.requests: list[tuple[int, str]] = []
        self._requested_port = port
        self._socket: socket.socket | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the Browser responder is not running")
        return int(self._socket.getsockname()[1])

    def start(self) -> SqlBrowser:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # No SO_REUSEADDR: a second responder on the port must fail, not share (and steal) requests.
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name=f"sql-browser-{self.port}", daemon=True)
        self._thread.start()
        log.info("SQL Server Browser responder on %s:%s for %s", self.host, self.port, self.instances)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> SqlBrowser:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _serve(self) -> None:
        sock = self._socket
        assert sock is not None
        while not self._stopping.is_set():
            readable, _, _ = select.select([sock], [], [], 0.05)
            if not readable:
                continue
            try:
                request, client = sock.recvfrom(4096)
            except OSError:
                continue
            name = ""
            if request[:1] == bytes([CLNT_UCAST_INST]):
                name = request[1:].split(b"\0", 1)[0].decode("ascii", errors="replace")
            self.requests.append((request[0] if request else -1, name))
            reply = answer(request, self.instances)
            log.info(
                "SQL Server Browser: request 0x%02x %r from %s: %s",
                request[0] if request else 0,
                name,
                client,
                "answered" if reply else "no such instance, no answer",
            )
            if reply is not None:
                with contextlib.suppress(OSError):
                    sock.sendto(reply, client)

"""A test-and-demo stand-in for Microsoft SQL Server: NOT a database server.

It speaks just enough of MS-TDS 7.4 for Microsoft's driver (`mssql-python`, ODBC Driver 18 inside) to log
in with SQL authentication and run the read-only SELECT batches the importer sends, and answers them from
a SQLite file (`efimis_etl.demo.write_demo_source`, or any file with the schema's tables). It exists so
that tests and demos can exercise the real SQL Server path (driver, TDS, type decoding, failures) on a
machine where no SQL Server can run. It listens on 127.0.0.1 only, knows one login and one database, keeps
no state, and has no security worth the name: never point anything real at it.

How it answers:

* Logins: PRELOGIN, then LOGIN7 with SQL authentication. The reply is what SQL Server sends: LOGINACK with
  ENVCHANGEs (database, collation, packet size), or error 18456 "Login failed for user '...'." for a
  wrong user or password, or 4060 "Cannot open database ..." (followed by 18456, as SQL Server does) for
  another database. TLS (`tls=True`): the in-band handshake inside PRELOGIN packets at TLS 1.2, with a
  self-signed certificate made at start (`Encrypt=yes` then needs `TrustServerCertificate=yes`) or the
  certificate given (`tls_certificate`, e.g. from `tds_tls.TestCertificateAuthority`, to see the
  driver verify a trusted certificate's host name); `Encrypt=no` gets the login packet encrypted only,
  as with SQL Server. A client that opens with a TLS ClientHello (`Encrypt=strict`) gets TDS 8.0: TLS
  straight on TCP with ALPN `tds/8.0`, then PRELOGIN and LOGIN7 inside it. `tls_version="1.3"` offers
  TLS 1.3 only, which SQL Server does only with TDS 8.0: an in-band handshake is closed at the
  ClientHello, as SQL Server closes it. Without TLS, `Encrypt=no` or `optional` connect in plain text
  and `Encrypt=yes` is refused by the driver itself.
* Named instances (`instance="INST"`): a SQL Server Browser responder (`tds_browser`, UDP 1434 on
  127.0.0.1) answers for that instance with this server's port, so `Server=127.0.0.1\\INST` resolves.
* SQL batches are translated from T-SQL to SQLite with sqlglot and run on an in-memory database to which
  the source file is ATTACHed read-only `AS etl` (so `etl.[WorkItem]` resolves), beside an
  `INFORMATION_SCHEMA` with `COLUMNS` and `TABLES` built from the SQLite tables' declared types mapped to
  SQL Server's (VARCHAR(n) → nvarchar(n), TEXT → nvarchar(max), DECIMAL(p, s) → decimal(p, s),
  INTEGER → int, BOOLEAN → bit, DATE → date, ...). SET, USE and transaction statements are accepted and
  do nothing; anything that writes gets error 3906 (the database is read-only). RPC requests (the driver
  sends them only for parameterised queries, which the importer never uses) get error 2812.
* Result columns carry the SQL Server type of the source column they name (a plain column reference),
  COUNT(*) is int, and other expressions get a type from their values. Values are converted back
  exactly: decimals from SQLite's REAL through repr() (or from INTEGER or TEXT) rounded half away from
  zero to the column's scale, dates from ISO text. A stored value the column's type cannot hold (the text
  'ninety' in an INTEGER column, a 9-character string in a VARCHAR(2)) is one no SQL Server table could
  contain, so the whole statement fails with the error SQL Server reports for that conversion (245
  "Conversion failed when converting the nvarchar value 'ninety' to data type int.", 241 for dates,
  8114 for decimals, 2628 for too-long strings), and no row of that result is sent.
* Comparison and ordering follow SQLite (binary), not SQL Server's case-insensitive collation.

Fault injection (`Faults`, changeable while running): refuse every login (error 18401), never answer
PRELOGIN (a hung server: the client's login timeout fires), refuse an unknown database with 4060 alone
(not as SQL Server does), stall before each result (the driver's query timeout then cancels with an
ATTENTION, which is acknowledged), drop the connection once N rows have been sent, counted per
connection or per query, stall or drop once mid-result in the first query returning more than N rows,
optionally only for batches whose SQL contains a given text.

Running it: `TdsServer` is the threaded server (one thread per connection, so a stalled connection
blocks no other; `stop()` closes every socket and joins every thread). `TdsServerProcess` runs it in a
spawned child process, and is what tests must use: `mssql-python` keeps the GIL while it waits for rows
(observed with 1.16), so with the server in the same process a server thread that has not yet sent them
can never run, and both hang. `efimis-etl dev-sql-server` (`tds_cli`) runs `TdsServer` in its own process.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import multiprocessing.process
import select
import socket
import sqlite3
import ssl
import struct
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

from efimis_devtools import tds_protocol as tds
from efimis_devtools.tds_browser import BROWSER_PORT, SqlBrowser
from efimis_devtools.tds_sqlite import SqlFailure, SqliteBackend
from efimis_devtools.tds_tls import ServerCertificate, TlsVersion, self_signed, server_context

log = logging.getLogger(__name__)

HOST = "127.0.0.1"  # loopback only, always
DEFAULT_USER = "etl"
DEFAULT_PASSWORD = "Dev-Only-Pa55"
DEFAULT_DATABASE = "Firm"
DEFAULT_PACKET_SIZE = 4096


@dataclass
class Faults:
    """Faults to inject. They are read at each login and each batch, so a test may change them while the
    server runs (`server.set_faults(Faults(stall_seconds=5))`).

    * `refuse_logins`: answer every LOGIN7 with error 18401 ("Login failed for user '...'. Reason: Server
      is in script upgrade mode. ...").
    * `never_answer_prelogin`: accept the connection, read the client's PRELOGIN and never answer (the
      client's login timeout ends it): a server that is up but hung, or a port that swallows packets.
    * `only_4060_for_unknown_database`: refuse an unknown database with error 4060 alone. SQL Server sends
      4060 and then 18456, and mssql-python then shows only 18456 ("Login failed for user ..."); this is
      the only way to see what the driver does with 4060 itself.
    * `close_after_rows`: once this many rows have been sent, send what is buffered and close the socket
      mid-result (no DONE). Rows are counted over the whole connection (`rows_counted_per="connection"`,
      so INFORMATION_SCHEMA rows count too) or afresh for each query (`"query"`).
    * `stall_seconds`: wait this long before answering a batch (or, with `stall_after_rows`, once,
      mid-result). An ATTENTION from the client (its query timeout) ends the wait and is acknowledged, as
      SQL Server does; stopping the server ends it too.
    * `stall_after_rows`: stall once instead of before every batch: the first query that returns more
      than this many rows sends them, then waits `stall_seconds` before the rest (a server that hangs
      mid-table, with the client holding part of a result). Later queries are answered at once.
    * `drop_after_rows`: once, the first query that returns more than this many rows sends them, then the
      connection is closed mid-result (one lost connection; the client's reconnection is served normally).
    * `when_sql_contains`: if set, stalls, drops and row counting apply only to batches whose SQL contains
      this text (case-insensitive), e.g. "[WorkItem]" to let the schema checks through.

    The one-time faults (`stall_after_rows`, `drop_after_rows`) fire once per server, counted again from
    each `set_faults`.
    """

    refuse_logins: bool = False
    never_answer_prelogin: bool = False
    only_4060_for_unknown_database: bool = False
    close_after_rows: int | None = None
    rows_counted_per: Literal["connection", "query"] = "connection"
    stall_seconds: float = 0.0
    stall_after_rows: int | None = None
    drop_after_rows: int | None = None
    when_sql_contains: str | None = None

    def applies_to(self, sql: str) -> bool:
        return self.when_sql_contains is None or self.when_sql_contains.lower() in sql.lower()


class BrowserPortTaken(OSError):
    """The SQL Server Browser port (UDP 1434) is held by another process."""

    def __str__(self) -> str:
        return str(self.strerror)


class _Closed(Exception):
    """The connection is gone (client closed it, server stopping, or a fault closed it)."""


# --------------------------------------------------------------------------------------------------
# The wire: packets, optionally inside TLS


class _Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.packet_size = DEFAULT_PACKET_SIZE
        self._buffer = bytearray()  # received plaintext not yet consumed
        self._tls: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._packet_id = itertools.count(1)

    # reading
    def _fill(self) -> None:
        try:
            data = self.sock.recv(65536)
        except OSError:
            raise _Closed from None
        if not data:
            raise _Closed
        if self._tls is None:
            self._buffer += data
            return
        self._incoming.write(data)
        while True:
            try:
                plain = self._tls.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                return
            if not plain:
                return
            self._buffer += plain

    def peek(self) -> int:
        """The first byte not yet consumed, without consuming it (waits for it)."""
        while not self._buffer:
            self._fill()
        return self._buffer[0]

    def _take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def read_message(self) -> tuple[int, bytes]:
        """One client message (all its packets up to end-of-message): (packet type, payload)."""
        kind, payload = -1, bytearray()
        while True:
            kind, status, length, *_ = tds.HEADER.unpack(self._take(tds.HEADER.size))
            if length < tds.HEADER.size:
                raise tds.ProtocolError("packet length shorter than its header")
            payload += self._take(length - tds.HEADER.size)
            if status & tds.STATUS_EOM:
                return kind, bytes(payload)

    def message_waiting(self, timeout: float) -> bool:
        if self._buffer:
            return True
        readable, _, _ = select.select([self.sock], [], [], timeout)
        return bool(readable)

    # writing
    def _send(self, data: bytes) -> None:
        try:
            if self._tls is None:
                self.sock.sendall(data)
            else:
                self._tls.write(data)
                self.sock.sendall(self._outgoing.read())
        except (OSError, ssl.SSLError):
            raise _Closed from None

    def send_packets(self, kind: int, payload: bytes, *, end: bool = True, raw: bool = False) -> None:
        """Send `payload` as packets of the negotiated size; the last one ends the message if `end`."""
        room = self.packet_size - tds.HEADER.size
        chunks = [payload[i : i + room] for i in range(0, len(payload), room)] or [b""]
        out = bytearray()
        for i, chunk in enumerate(chunks):
            status = tds.STATUS_EOM if end and i == len(chunks) - 1 else 0
            out += tds.HEADER.pack(
                kind, status, len(chunk) + tds.HEADER.size, 0, next(self._packet_id) % 256, 0
            )
            out += chunk
        if raw:
            try:
                self.sock.sendall(out)
            except OSError:
                raise _Closed from None
        else:
            self._send(bytes(out))

    # TLS
    def start_tls(self, context: ssl.SSLContext) -> None:
        """The TDS 7.x in-band handshake: TLS handshake records travel inside PRELOGIN packets."""
        tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        while True:
            try:
                tls.do_handshake()
                finished = True
            except ssl.SSLWantReadError:
                finished = False
            pending = self._outgoing.read()
            if pending:
                self.send_packets(tds.PRELOGIN, pending, raw=True)
            if finished:
                break
            kind, payload = self.read_message()
            if kind != tds.PRELOGIN:
                raise tds.ProtocolError(f"expected a TLS handshake packet, got type {kind}")
            self._incoming.write(payload)
        self._tls = tls

    def start_tls_direct(self, context: ssl.SSLContext) -> None:
        """TDS 8.0 (`Encrypt=strict`): TLS straight on TCP, raw records, before any TDS packet."""
        tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._incoming.write(bytes(self._buffer))
        self._buffer.clear()
        while True:
            try:
                tls.do_handshake()
                finished = True
            except ssl.SSLWantReadError:
                finished = False
            pending = self._outgoing.read()
            if pending:
                try:
                    self.sock.sendall(pending)
                except OSError:
                    raise _Closed from None
            if finished:
                break
            try:
                data = self.sock.recv(65536)
            except OSError:
                raise _Closed from None
            if not data:
                raise _Closed
            self._incoming.write(data)
        self._tls = tls
        # Application data that arrived with the client's last handshake flight.
        while True:
            try:
                plain = tls.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not plain:
                break
            self._buffer += plain

    def tls_version(self) -> str:
        return (self._tls.version() or "TLS") if self._tls is not None else "none"

    def stop_tls(self) -> None:
        """After a login-only encryption the rest of the conversation is plain text again."""
        self._tls = None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


# --------------------------------------------------------------------------------------------------
# One client connection


_TLS_HANDSHAKE_RECORD = 0x16  # the first byte of a TLS ClientHello; a TDS 7.x client starts with 0x12

_ENCRYPTION_NAMES = {
    tds.ENCRYPT_NOT_SUP: "none",
    tds.ENCRYPT_OFF: "login packet only",
    tds.ENCRYPT_ON: "TLS 1.2",
}


class _Session:
    def __init__(self, server: TdsServer, sock: socket.socket, spid: int) -> None:
        self.server = server
        self.spid = spid
        self.channel = _Channel(sock)
        self.backend: SqliteBackend | None = None
        self.rows_sent = 0  # rows counted for `Faults.close_after_rows` over the connection
        self.transaction: bytes | None = None
        self._descriptors = itertools.count(1)

    def run(self) -> None:
        try:
            if self._login():
                while not self.server._stopping.is_set():
                    kind, payload = self.channel.read_message()
                    self._dispatch(kind, payload)
        except _Closed:
            pass
        except (tds.ProtocolError, ssl.SSLError, OSError, UnicodeDecodeError, struct.error) as error:
            log.info("connection %s: closed after a protocol error: %s", self.spid, error)
        except Exception:  # a bug here must not take the server down with it
            log.exception("connection %s: unexpected error", self.spid)
        finally:
            if self.backend is not None:
                self.backend.close()
            self.channel.close()

    # login
    def _login(self) -> bool:
        """PRELOGIN (with TLS as negotiated), then LOGIN7: True once the login is acknowledged, False when
        the connection ends without one (refused, or a fault)."""
        strict = self._start_strict_tls_if_asked()
        prelogin = self._read_prelogin()
        if self.server.faults.never_answer_prelogin:
            log.info("connection %s: PRELOGIN left unanswered (fault)", self.spid)
            self._wait_for_close()
            return False
        encryption = self._answer_prelogin(prelogin, strict=strict)
        if not self._start_in_band_tls(encryption):
            return False
        login = self._read_login7(encryption, strict=strict)
        errors = self._authenticate(login)
        if errors:
            self._refuse_login(errors)
            return False
        self._acknowledge_login(login)
        return True

    def _start_strict_tls_if_asked(self) -> bool:
        """TDS 8.0 (Encrypt=strict) opens with a TLS ClientHello: TLS first, then PRELOGIN and LOGIN7 inside
        it. True when the client did so."""
        strict = self.channel.peek() == _TLS_HANDSHAKE_RECORD
        if strict:
            if self.server._strict_context is None:
                raise tds.ProtocolError("a TLS ClientHello (Encrypt=strict) but this server offers no TLS")
            self.channel.start_tls_direct(self.server._strict_context)
        return strict

    def _read_prelogin(self) -> bytes:
        kind, payload = self.channel.read_message()
        if kind != tds.PRELOGIN:
            raise tds.ProtocolError(f"expected PRELOGIN, got packet type {kind}")
        return payload

    def _answer_prelogin(self, payload: bytes, *, strict: bool) -> int:
        """Reply to the client's PRELOGIN; the encryption agreed (a `tds.ENCRYPT_*` value)."""
        options = tds.parse_prelogin(payload)
        asked = options.get(tds.PL_ENCRYPTION, b"\x00")[:1] or b"\x00"
        if strict or self.server._tls_context is None:
            # TDS 8.0 ignores it (the whole connection is TLS already); without TLS there is none to offer.
            answer = tds.ENCRYPT_NOT_SUP
        else:
            answer = {tds.ENCRYPT_OFF: tds.ENCRYPT_OFF, tds.ENCRYPT_NOT_SUP: tds.ENCRYPT_NOT_SUP}.get(
                asked[0], tds.ENCRYPT_ON
            )
        reply = tds.build_prelogin(answer, fedauth=tds.PL_FEDAUTH in options)
        self.channel.send_packets(tds.TABULAR_RESULT, reply)
        return answer

    def _start_in_band_tls(self, encryption: int) -> bool:
        """The TDS 7.x handshake inside PRELOGIN packets, if the encryption agreed needs one; False when the
        connection is closed instead (TLS 1.3 only)."""
        context = self.server._tls_context
        if context is None or encryption == tds.ENCRYPT_NOT_SUP:
            return True
        if self.server.tls_version == "1.3":
            # As SQL Server does with TLS 1.2 disabled: TLS 1.3 only with TDS 8.0, so the in-band
            # handshake ends at the ClientHello with the connection closed.
            self.channel.read_message()
            log.info(
                "connection %s: in-band TLS refused (TLS 1.3 only, which needs Encrypt=strict); "
                "closing after the ClientHello",
                self.spid,
            )
            return False
        self.channel.start_tls(context)
        return True

    def _read_login7(self, encryption: int, *, strict: bool) -> tds.Login:
        kind, payload = self.channel.read_message()
        if kind != tds.LOGIN7:
            raise tds.ProtocolError(f"expected LOGIN7, got packet type {kind}")
        if encryption == tds.ENCRYPT_OFF:
            self.channel.stop_tls()  # only the login packet was encrypted
        login = tds.parse_login7(payload)
        log.info(
            "connection %s: login of %r to %r from %r (encryption: %s)",
            self.spid,
            login.user,
            login.database,
            login.app_name,
            f"TDS 8.0, {self.channel.tls_version()}" if strict else _ENCRYPTION_NAMES[encryption],
        )
        return login

    def _authenticate(self, login: tds.Login) -> list[tuple[int, str, int]]:
        """Check the login against the one user and database and open the source for it: the errors that
        refuse it (number, message, severity), none when it is accepted."""
        failed = f"Login failed for user '{login.user}'."
        settings = self.server
        database = login.database or settings.database
        errors: list[tuple[int, str, int]] = []
        if settings.faults.refuse_logins:
            reason = "Reason: Server is in script upgrade mode. Only administrator can connect at this time."
            errors = [(18401, f"{failed} {reason}", 14)]
        elif login.user.lower() != settings.user.lower() or login.password != settings.password:
            errors = [(18456, failed, 14)]
        elif database.lower() != settings.database.lower():
            # SQL Server sends both; mssql-python shows only 18456 ("Login failed for user ..."), whatever
            # their order. `Faults.only_4060_for_unknown_database` leaves 18456 out, which SQL Server
            # does not do: the only way to see 4060 through that driver.
            opening = f'Cannot open database "{database}" requested by the login. The login failed.'
            errors = [(4060, opening, 11)]
            if not settings.faults.only_4060_for_unknown_database:
                errors.append((18456, failed, 14))
        else:
            try:
                self.backend = SqliteBackend(settings.source, settings.database, self.spid)
            except sqlite3.Error as error:
                log.warning("connection %s: cannot open %s: %s", self.spid, settings.source, error)
                opening = f'Cannot open database "{database}" requested by the login. The login failed.'
                errors = [(4060, opening, 11), (18456, failed, 14)]
        return errors

    def _refuse_login(self, errors: list[tuple[int, str, int]]) -> None:
        for number, text, _ in errors:
            log.info("connection %s: login refused with error %s: %s", self.spid, number, text)
        tokens = b"".join(tds.message(n, text, severity=severity) for n, text, severity in errors)
        self.channel.send_packets(tds.TABULAR_RESULT, tokens + tds.done(tds.DONE_ERROR))

    def _acknowledge_login(self, login: tds.Login) -> None:
        if 512 <= login.packet_size <= 32767:
            self.channel.packet_size = login.packet_size
        database = self.server.database
        reply = (
            tds.env_database(database)
            + tds.message(5701, f"Changed database context to '{database}'.", severity=0, info=True)
            + tds.env_collation()
            + tds.login_ack()
            + tds.env_packet_size(self.channel.packet_size)
            + tds.done()
        )
        self.channel.send_packets(tds.TABULAR_RESULT, reply)

    def _wait_for_close(self) -> None:
        """Say nothing until the client gives up (closes) or the server stops."""
        while not self.server._stopping.is_set():
            if self.channel.message_waiting(0.05):
                try:
                    data = self.channel.sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return

    # requests
    def _dispatch(self, kind: int, payload: bytes) -> None:
        if kind == tds.SQL_BATCH:
            self._batch(_skip_headers(payload).decode("utf-16-le", errors="surrogatepass"))
        elif kind == tds.ATTENTION:
            self.channel.send_packets(tds.TABULAR_RESULT, tds.done(tds.DONE_ATTN))
        elif kind == tds.TRANSACTION_MANAGER:
            self._transaction_manager(_skip_headers(payload))
        elif kind == tds.RPC:
            name = _rpc_name(_skip_headers(payload))
            log.info("connection %s: RPC %s refused", self.spid, name)
            error = tds.message(2812, f"Could not find stored procedure '{name}'.")
            self.channel.send_packets(tds.TABULAR_RESULT, error + tds.done(tds.DONE_ERROR))
        else:
            raise tds.ProtocolError(f"unsupported packet type {kind}")

    def _batch(self, sql: str) -> None:
        log.info("connection %s: SQL batch: %s", self.spid, sql)
        self.server.batches.append(sql)
        faults = self.server.faults
        applies = faults.applies_to(sql)
        stall_first = faults.stall_seconds > 0 and faults.stall_after_rows is None
        if applies and stall_first and self._stall(faults.stall_seconds):
            return
        assert self.backend is not None
        out = _Response(self.channel)
        try:
            trees = self.backend.parse(sql)
            if not trees:
                out.write(tds.done())
            for i, tree in enumerate(trees):
                more = tds.DONE_MORE if i < len(trees) - 1 else 0
                result = self.backend.execute(tree)
                if result.database_changed:
                    out.write(tds.env_database(result.database_changed, result.database_changed))
                if result.columns is None:
                    out.write(tds.done(more))
                    continue
                out.write(tds.col_metadata(result.columns))
                if not self._send_rows(out, result.rows, faults if applies else None):
                    return  # cancelled by the client while stalled mid-result; acknowledged
                out.write(tds.done(more | tds.DONE_COUNT, command=tds.CMD_SELECT, rows=len(result.rows)))
        except SqlFailure as failure:
            # Nothing of the failed statement was written (it is encoded whole first); earlier
            # statements' results stand, as in SQL Server.
            out.write(tds.message(failure.number, failure.message, severity=failure.severity))
            out.write(tds.done(tds.DONE_ERROR))
        out.finish()

    def _send_rows(self, out: _Response, rows: list[list[bytes | None]], faults: Faults | None) -> bool:
        """Write a result's rows, with the faults that apply to this batch (None: none do). False when the
        client cancelled (ATTENTION) during a mid-result stall: the acknowledgement ended the reply."""
        stall_at = drop_at = None
        if faults is not None:
            # One-time faults are claimed only by a query long enough to be cut by them.
            stall_at = self.server.claim_once("stall", faults.stall_after_rows, len(rows))
            drop_at = self.server.claim_once("drop", faults.drop_after_rows, len(rows))
        for index, values in enumerate(rows):
            if index == drop_at:
                log.warning("connection %s: closing the connection after %s rows (fault)", self.spid, index)
                out.flush_partial()
                self.channel.close()
                raise _Closed
            if index == stall_at:
                assert faults is not None
                # What is sent so far reaches the client: it holds part of the result while the rest waits.
                out.flush_partial()
                log.warning(
                    "connection %s: stalling %g s after %s rows (fault)",
                    self.spid,
                    faults.stall_seconds,
                    index,
                )
                if self._stall(faults.stall_seconds):
                    return False
            out.write(tds.row(values))
            if faults is not None and faults.close_after_rows is not None:
                self._count_row_for_close(out, faults, index + 1)
        return True

    def _count_row_for_close(self, out: _Response, faults: Faults, rows_this_query: int) -> None:
        """`Faults.close_after_rows`: close the connection once the count is reached."""
        assert faults.close_after_rows is not None
        self.rows_sent += 1
        counted = self.rows_sent if faults.rows_counted_per == "connection" else rows_this_query
        if counted >= faults.close_after_rows:
            log.info("connection %s: closing after %s rows (fault)", self.spid, counted)
            out.flush_partial()
            self.channel.close()
            raise _Closed

    def _stall(self, seconds: float) -> bool:
        """Wait before answering; True if the client cancelled (ATTENTION), which is then acknowledged."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.server._stopping.is_set():
                raise _Closed
            if self.channel.message_waiting(min(left, 0.05)):
                kind, _ = self.channel.read_message()
                if kind == tds.ATTENTION:
                    log.info("connection %s: cancelled by the client while stalled", self.spid)
                    self.channel.send_packets(tds.TABULAR_RESULT, tds.done(tds.DONE_ATTN))
                    return True
                raise tds.ProtocolError(f"packet type {kind} while a request is running")
        return False

    def _transaction_manager(self, payload: bytes) -> None:
        request = struct.unpack_from("<H", payload)[0] if len(payload) >= 2 else 0
        tokens = b""
        if request == 5:  # TM_BEGIN_XACT
            tokens += self._begin()
        elif request in (7, 8):  # TM_COMMIT_XACT, TM_ROLLBACK_XACT: name, then fBeginXact
            if self.transaction is not None:
                tokens += tds.env_end_transaction(self.transaction, commit=request == 7)
                self.transaction = None
            name_length = payload[2] if len(payload) > 2 else 0
            flag_at = 3 + 2 * name_length
            if len(payload) > flag_at and payload[flag_at] & 1:
                tokens += self._begin()
        self.channel.send_packets(tds.TABULAR_RESULT, tokens + tds.done())

    def _begin(self) -> bytes:
        self.transaction = struct.pack("<Q", next(self._descriptors))
        return tds.env_begin_transaction(self.transaction)


class _Response:
    """Tokens of one reply, sent a packet at a time as they fill up, ended by `finish`."""

    def __init__(self, channel: _Channel) -> None:
        self.channel = channel
        self.pending = bytearray()

    def write(self, data: bytes) -> None:
        self.pending += data
        room = self.channel.packet_size - tds.HEADER.size
        if len(self.pending) > room:
            whole = len(self.pending) // room * room
            if whole == len(self.pending):
                whole -= room  # keep something back for the packet that ends the message
            self.channel.send_packets(tds.TABULAR_RESULT, bytes(self.pending[:whole]), end=False)
            del self.pending[:whole]

    def flush_partial(self) -> None:
        if self.pending:
            self.channel.send_packets(tds.TABULAR_RESULT, bytes(self.pending), end=False)
            self.pending.clear()

    def finish(self) -> None:
        self.channel.send_packets(tds.TABULAR_RESULT, bytes(self.pending))
        self.pending.clear()


def _skip_headers(payload: bytes) -> bytes:
    """Drop ALL_HEADERS (TDS 7.2+): a total length that counts itself, then the headers."""
    if len(payload) < 4:
        return payload
    total = struct.unpack_from("<I", payload)[0]
    return payload[total:] if 4 <= total <= len(payload) else payload


def _rpc_name(payload: bytes) -> str:
    if len(payload) < 2:
        return "?"
    length = struct.unpack_from("<H", payload)[0]
    if length == 0xFFFF:
        special = {
            10: "sp_executesql",
            11: "sp_prepare",
            12: "sp_execute",
            13: "sp_prepexec",
            15: "sp_unprepare",
        }
        return special.get(struct.unpack_from("<H", payload, 2)[0], "special procedure")
    return payload[2 : 2 + 2 * length].decode("utf-16-le", errors="replace")


# --------------------------------------------------------------------------------------------------
# The server


def _tls_contexts(
    certificate: ServerCertificate | None, version: TlsVersion
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(in-band TDS 7.x context, TDS 8.0 strict context) for one TLS version, with the given certificate or
    a self-signed one for localhost and 127.0.0.1 made now (its files are deleted once loaded)."""
    if certificate is not None:
        return server_context(certificate, version), server_context(certificate, version, strict=True)
    with tempfile.TemporaryDirectory(prefix="efimis-tds-") as folder:
        made = self_signed(Path(folder))
        return server_context(made, version), server_context(made, version, strict=True)


class _ConnectionStrings:
    """Connection strings for a running server (either kind)."""

    user: str
    password: str
    database: str
    tls: bool
    instance: str | None

    @property
    def port(self) -> int:
        raise NotImplementedError

    def odbc_connection_string(
        self,
        *,
        encrypt: str = "no",
        trust_server_certificate: bool = True,
        host: str = HOST,
        host_name_in_certificate: str | None = None,
    ) -> str:
        """What `mssql_python.connect()` takes (pass the login timeout as its `timeout=`)."""
        text = (
            f"Server=tcp:{host},{self.port};Database={self.database};UID={self.user};"
            f"PWD={_braced(self.password)};Encrypt={encrypt};"
            f"TrustServerCertificate={'yes' if trust_server_certificate else 'no'}"
        )
        return text + (
            f";HostNameInCertificate={host_name_in_certificate}" if host_name_in_certificate else ""
        )

    def ado_connection_string(
        self,
        *,
        password: str | None = None,
        database: str | None = None,
        encrypt: bool | str | None = None,
        trust_server_certificate: bool | None = True,
        host_name_in_certificate: str | None = None,
        host: str = HOST,
        instance: str | None = None,
        with_port: bool = True,
        timeout: int = 5,
        command_timeout: int | None = None,
    ) -> str:
        """An ADO.NET connection string as a customer would paste it; Encrypt follows the server's TLS.

        `instance` writes `Server=host\\instance` (with `,port` too unless `with_port=False`, when the
        client must ask the SQL Server Browser). `encrypt`/`trust_server_certificate` None leave the
        keyword out (the importer's defaults: Encrypt=yes, TrustServerCertificate=no)."""
        server = host + (f"\\{instance}" if instance else "") + (f",{self.port}" if with_port else "")
        parts = [
            f"Server=tcp:{server}" if with_port else f"Server={server}",
            f"Initial Catalog={self.database if database is None else database}",
            f"User ID={self.user}",
            f"Password={_braced(self.password if password is None else password)}",
        ]
        encrypted = self.tls if encrypt is None else encrypt
        parts.append(f"Encrypt={encrypted}")
        if trust_server_certificate is not None:
            parts.append(f"TrustServerCertificate={trust_server_certificate}")
        if host_name_in_certificate:
            parts.append(f"HostNameInCertificate={host_name_in_certificate}")
        parts.append(f"Connection Timeout={timeout}")
        if command_timeout is not None:
            parts.append(f"Command Timeout={command_timeout}")
        return ";".join(parts)


class TdsServer(_ConnectionStrings):
    """The test SQL Server on 127.0.0.1, threaded, in this process: `start()` then `stop()`, or `with`.

    Do not run Microsoft's driver in the same process: `mssql-python` keeps the GIL while it waits for
    rows, so a server thread that has not sent them yet can never run and both hang. Tests use
    `TdsServerProcess`, which runs this server in a child process; `efimis-etl dev-sql-server` runs it
    in its own process.

    `port=0` picks a free port (read `port` after start). `batches` records every SQL batch received, in
    order, over all connections. `faults` may be changed at any time.

    TLS (`tls=True`): `tls_certificate` is the certificate to present (default: a self-signed one for
    localhost and 127.0.0.1, made at start; `tds_tls.TestCertificateAuthority` issues others), and
    `tls_version` the one TLS version offered: "1.2" (in-band TDS 7.x handshake and TDS 8.0), or "1.3",
    offered with TDS 8.0 only (`Encrypt=strict`), as SQL Server does: an in-band handshake is then
    closed at the ClientHello. A client opening with a TLS ClientHello gets TDS 8.0: TLS straight on TCP
    (ALPN `tds/8.0`), then PRELOGIN and LOGIN7 inside it.

    `instance`: also answer SQL Server Browser requests (UDP `browser_port` on 127.0.0.1, 1434 by default)
    for this instance name, with this server's port (see `tds_browser`).
    """

    def __init__(
        self,
        source: Path,
        *,
        user: str = DEFAULT_USER,
        password: str = DEFAULT_PASSWORD,
        database: str = DEFAULT_DATABASE,
        port: int = 0,
        tls: bool = False,
        tls_certificate: ServerCertificate | None = None,
        tls_version: TlsVersion = "1.2",
        instance: str | None = None,
        browser_port: int = BROWSER_PORT,
        faults: Faults | None = None,
    ) -> None:
        self.source = Path(source)
        if not self.source.is_file():
            raise FileNotFoundError(f"The SQLite source {self.source} does not exist.")
        if tls_version not in ("1.2", "1.3"):
            raise ValueError(f"tls_version must be '1.2' or '1.3', not {tls_version!r}")
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
        self.tls_certificate = tls_certificate
        self.tls_version = tls_version
        self.instance = instance
        self.browser_port = browser_port
        self.browser: SqlBrowser | None = None
        self.faults = faults or Faults()
        self._claimed: set[str] = set()  # the one-time faults that have fired
        self.batches: list[str] = []
        self._requested_port = port
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._accepting: threading.Thread | None = None
        self._sessions: dict[int, tuple[threading.Thread, _Session]] = {}
        self._lock = threading.Lock()
        self._spids = itertools.count(51)
        self._tls_context: ssl.SSLContext | None = None
        self._strict_context: ssl.SSLContext | None = None

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the server is not running")
        return int(self._listener.getsockname()[1])

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            self._claimed.clear()  # new faults: their one-time faults may fire again

    def claim_once(self, kind: str, after_rows: int | None, rows: int) -> int | None:
        """Where a one-time fault (`Faults.stall_after_rows`, `drop_after_rows`) cuts a result of `rows` rows:
        `after_rows` for the first result longer than that, claimed for good (across connections); else None."""
        if after_rows is None or rows <= after_rows:
            return None
        with self._lock:
            if kind in self._claimed:
                return None
            self._claimed.add(kind)
        return after_rows

    def start(self) -> TdsServer:
        if self.tls:
            self._tls_context, self._strict_context = _tls_contexts(self.tls_certificate, self.tls_version)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, self._requested_port))
            listener.listen(16)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._stopping.clear()
        self._accepting = threading.Thread(
            target=self._accept_loop, name=f"tds-accept-{self.port}", daemon=True
        )
        self._accepting.start()
        if self.instance is not None:
            try:
                self.browser = SqlBrowser({self.instance: self.port}, port=self.browser_port).start()
            except OSError as error:
                self.stop()
                raise BrowserPortTaken(
                    error.errno,
                    f"Cannot answer SQL Server Browser requests on UDP {HOST}:{self.browser_port} "
                    f"({error.strerror}): another SQL Server Browser (or test run) holds the port.",
                ) from None
        log.info("test SQL Server on %s,%s serving %s", HOST, self.port, self.source)
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and wait for their threads to end."""
        self._stopping.set()
        if self.browser is not None:
            self.browser.stop()
            self.browser = None
        if self._accepting is not None:
            self._accepting.join(5)
            self._accepting = None
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            sessions = list(self._sessions.values())
        for _, session in sessions:
            with contextlib.suppress(OSError):
                session.channel.sock.shutdown(socket.SHUT_RDWR)
        for thread, _ in sessions:
            thread.join(5)

    def __enter__(self) -> TdsServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            readable, _, _ = select.select([self._listener], [], [], 0.05)
            if not readable:
                continue
            try:
                sock, _ = self._listener.accept()
            except OSError:
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            spid = next(self._spids)
            session = _Session(self, sock, spid)
            thread = threading.Thread(
                target=self._run_session, args=(spid, session), name=f"tds-{spid}", daemon=True
            )
            with self._lock:
                self._sessions[spid] = (thread, session)
            thread.start()

    def _run_session(self, spid: int, session: _Session) -> None:
        try:
            session.run()
        finally:
            with self._lock:
                self._sessions.pop(spid, None)


class TdsServerProcess(_ConnectionStrings):
    """`TdsServer` in a child process (spawned), driven from this one: what tests should use.

    Same arguments as `TdsServer`, plus `log_level` for the child's log (to its stderr). `set_faults`
    and `batches()` talk to the child over a pipe; `stop()` stops it and waits for it to exit.
    """

    def __init__(self, source: Path, *, log_level: int = logging.WARNING, **options: Any) -> None:
        self.user = str(options.get("user", DEFAULT_USER))
        self.password = str(options.get("password", DEFAULT_PASSWORD))
        self.database = str(options.get("database", DEFAULT_DATABASE))
        self.tls = bool(options.get("tls", False))
        self.instance = options.get("instance")
        self._options = {"source": Path(source), **options}
        self._log_level = log_level
        self._port: int | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._pipe: Connection | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not running")
        return self._port

    def start(self, timeout: float = 30) -> TdsServerProcess:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_serve_in_child,
            args=(theirs, self._options, self._log_level),
            name="tds-server",
            daemon=True,
        )
        process.start()
        theirs.close()
        self._process, self._pipe = process, ours
        if not ours.poll(timeout):
            self.stop()
            raise RuntimeError(f"the test SQL Server did not start within {timeout} s")
        kind, value = ours.recv()
        if kind != "ready":
            self.stop()
            raise RuntimeError(f"the test SQL Server did not start: {value}")
        self._port = int(value)
        return self

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def _call(self, *request: object) -> Any:
        if self._pipe is None:
            raise RuntimeError("the server is not running")
        with self._lock:
            self._pipe.send(request)
            return self._pipe.recv()

    def set_faults(self, faults: Faults) -> None:
        self._call("faults", faults)

    def batches(self) -> list[str]:
        """Every SQL batch received so far, in order."""
        return list(self._call("batches"))

    def browser_requests(self) -> list[tuple[int, str]]:
        """(request type, instance name) of every SQL Server Browser request received (with `instance`)."""
        return [tuple(r) for r in self._call("browser_requests")]  # type: ignore[misc]

    def stop(self) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError, EOFError):
                self._call("stop")
            self._pipe.close()
            self._pipe = None
        if self._process is not None:
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5)
            self._process.close()
            self._process = None
        self._port = None

    def __enter__(self) -> TdsServerProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _serve_in_child(pipe: Connection, options: dict[str, Any], log_level: int) -> None:
    logging.basicConfig(level=log_level, format="tds-server %(levelname)s %(message)s")
    try:
        server = TdsServer(**options).start()
    except Exception as error:
        pipe.send(("error", f"{type(error).__name__}: {error}"))
        return
    pipe.send(("ready", server.port))
    try:
        while True:
            try:
                request = pipe.recv()
            except (EOFError, OSError):  # the parent is gone
                return
            match request:
                case ("faults", Faults() as faults):
                    server.set_faults(faults)
                    pipe.send(None)
                case ("batches",):
                    pipe.send(list(server.batches))
                case ("browser_requests",):
                    pipe.send(list(server.browser.requests) if server.browser else [])
                case ("stop",):
                    server.stop()
                    pipe.send(None)
                    return
                case _:
                    pipe.send(None)
    finally:
        server.stop()


def _braced(value: str) -> str:
    if any(c in value for c in ";{}="):
        return "{" + value.replace("}", "}}") + "}"
    return value

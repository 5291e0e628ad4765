"""A minimal HTTP/2-over-TLS server on asyncio (the `h2` state machine), and a throwaway CA.

Only what a fake Google API needs: TLS with ALPN `h2` (a client that cannot speak HTTP/2 is refused,
so whatever the handler sees really arrived over HTTP/2), requests buffered whole, one response per
stream, responses sent within HTTP/2 flow control. Every request carries the number of the TLS
connection it came on, so callers can check connection reuse."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Certificates:
    """PEM files: the CA a client trusts, and the server's chain and key (127.0.0.1, localhost)."""

    ca_file: str
    cert_file: str
    key_file: str

    def server_context(self, alpn: list[str]) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.set_alpn_protocols(alpn)
        return ctx


def make_certificates(directory: Path) -> Certificates:
    """A fresh CA and a server certificate it signed, written under `directory`."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gigwire test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = Certificates(
        str(directory / "ca.pem"), str(directory / "server.pem"), str(directory / "server-key.pem")
    )
    Path(paths.ca_file).write_bytes(ca.public_bytes(pem))
    Path(paths.cert_file).write_bytes(cert.public_bytes(pem))
    Path(paths.key_file).write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@dataclass
class H2Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int  # the number of the TLS connection it came on, from 1
    http_version: str = "HTTP/2"


@dataclass
class H2Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[H2Request], Awaitable[H2Response]]


class H2Server:
    """Serves `handler` over HTTP/2 + TLS; `connections` counts the TLS connections accepted and
    `refused` those whose client did not offer h2 in ALPN."""

    def __init__(self, handler: Handler, certificates: Certificates, max_streams: int = 100) -> None:
        self.handler = handler
        self.max_streams = max_streams
        self.connections = 0
        self.refused = 0
        self._ssl = certificates.server_context(["h2"])
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.open: set[asyncio.Transport] = set()

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, ssl=self._ssl)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for transport in list(self.open):
            transport.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Connection(asyncio.Protocol):
    def __init__(self, server: H2Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.number = 0
        self.streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        self.window_open = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.open.add(transport)
        tls = transport.get_extra_info("ssl_object")
        if tls is None or tls.selected_alpn_protocol() != "h2":
            self.server.refused += 1
            transport.close()
            return
        self.server.connections += 1
        self.number = self.server.connections
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.server.max_streams},
        )
        self.h2.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.server.open.discard(self.transport)
        self.transport = None
        self.window_open.set()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                headers = {str(k): str(v) for k, v in event.headers or []}
                self.streams[event.stream_id] = (headers, bytearray())
            elif isinstance(event, h2.events.DataReceived):
                if event.stream_id in self.streams and event.data:
                    self.streams[event.stream_id][1].extend(event.data)
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                headers, body = self.streams.pop(event.stream_id, ({}, bytearray()))
                request = H2Request(
                    headers.get(":method", ""), headers.get(":path", ""), headers, bytes(body), self.number
                )
                self.server.spawn(self._respond(event.stream_id, request))
            elif isinstance(event, h2.events.StreamReset):
                self.streams.pop(event.stream_id, None)
            elif isinstance(event, h2.events.WindowUpdated):
                self.window_open.set()
            elif isinstance(event, h2.events.ConnectionTerminated) and self.transport is not None:
                self.transport.close()
        self._flush()

    async def _respond(self, stream_id: int, request: H2Request) -> None:
        try:
            response = await self.server.handler(request)
        except Exception as exc:  # a broken fake must fail the test, not hang the client
            response = H2Response(500, repr(exc).encode(), {"content-type": "text/plain"})
        if self.transport is None:
            return
        headers = [
            (":status", str(response.status)),
            ("content-length", str(len(response.body))),
            *response.headers.items(),
        ]
        try:
            self.h2.send_headers(stream_id, headers, end_stream=not response.body)
            body = memoryview(response.body)
            while body:
                # Flow control: send what the peer's windows allow, wait for WINDOW_UPDATE for more.
                window = min(self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size)
                if window <= 0:
                    self.window_open.clear()
                    self._flush()
                    await self.window_open.wait()
                    if self.transport is None:
                        return
                    continue
                chunk, body = body[:window], body[window:]
                self.h2.send_data(stream_id, bytes(chunk), end_stream=not body)
        except h2.exceptions.StreamClosedError:
            return  # the client reset the stream meanwhile
        self._flush()

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

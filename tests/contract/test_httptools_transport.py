"""The production webhook transport against real servers on loopback: keep-alive reuse, every
answer framing, stale pooled connections, timeouts, refusals, oversized answers and TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from summon.webhooks.httptools_transport import ANSWER_KEPT, HttptoolsTransport
from summon.webhooks.transport import DeliveryError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """A raw HTTP server: ``answer(request_number)`` gives the bytes to write back (None: say
    nothing, leave the connection open)."""

    def __init__(self, answer: Callable[[int], bytes | None], close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self, tls: ssl.SSLContext | None = None) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answer(len(self.requests))
                if answer is None:
                    await asyncio.sleep(3600)
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def drop_idle(self) -> None:
        for writer in self.writers:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        await self.drop_idle()
        self.server.close()


def ok(body: bytes = b"ok") -> Callable[[int], bytes]:
    return lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


@pytest.fixture
async def transport() -> HttptoolsTransport:
    t = HttptoolsTransport()
    yield t  # type: ignore[misc]
    await t.close()


async def test_connections_are_kept_alive_and_the_request_is_what_was_asked(transport: HttptoolsTransport) -> None:
    server = Server(ok())
    port = await server.start()
    for _ in range(20):
        assert await transport.post(f"http://127.0.0.1:{port}/hooks?x=1", {"webhook-id": "msg_1"}, b'{"a":1}', 5) == (200, b"ok")
    assert server.connections == 1
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /hooks?x=1 HTTP/1.1" and body == b'{"a":1}'
    assert f"Host: 127.0.0.1:{port}".encode() in lines and b"webhook-id: msg_1" in lines
    await server.stop()


async def test_every_header_is_sent_once(transport: HttptoolsTransport) -> None:
    """Strict servers (aiohttp among them) refuse a request with a repeated Content-Type: the
    signed headers carry their own, and framing headers cannot be overridden."""
    server = Server(ok())
    port = await server.start()
    headers = {"content-type": "application/json", "webhook-id": "msg_1", "Content-Length": "1",
               "Host": "elsewhere.example"}
    assert await transport.post(f"http://127.0.0.1:{port}/", headers, b'{"a":1}', 5) == (200, b"ok")
    head = server.requests[0].partition(b"\r\n\r\n")[0].lower()
    names = [line.split(b":")[0] for line in head.split(b"\r\n")[1:]]
    assert sorted(set(names)) == sorted(names), names
    assert {b"content-type", b"content-length", b"host", b"user-agent", b"webhook-id"} <= set(names)
    assert b"host: 127.0.0.1:%d" % port in head and b"content-length: 7" in head
    await server.stop()


async def test_a_strict_server_accepts_signed_webhooks(transport: HttptoolsTransport) -> None:
    """aiohttp's server, which refuses repeated headers, takes a signed webhook as it is sent."""
    from aiohttp import web

    from summon.domain.webhooks import signature_headers

    got: list[tuple[str | None, bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append((request.headers.get("Content-Type"), await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        body = b'{"event":"bot.done"}'
        headers = signature_headers("msg_1", 1_700_000_000, body, ["whsec_" + "A" * 32])
        assert await transport.post(f"http://127.0.0.1:{port}/hook", headers, body, 5) == (200, b"ok")
        assert got == [("application/json", body)]
    finally:
        await runner.cleanup()


async def test_chunked_and_close_delimited_answers_and_the_answer_kept(transport: HttptoolsTransport) -> None:
    big = b"x" * (ANSWER_KEPT + 1000)
    chunked = Server(lambda _: b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                               b"6\r\n world\r\n0\r\n\r\n")
    until_close = Server(lambda _: b"HTTP/1.0 500 Oops\r\n\r\n" + big, close_after=True)
    p1, p2 = await chunked.start(), await until_close.start()
    assert await transport.post(f"http://127.0.0.1:{p1}/", {}, b"{}", 5) == (202, b"hello world")
    status, answer = await transport.post(f"http://127.0.0.1:{p2}/", {}, b"{}", 5)
    assert status == 500 and answer == big[:ANSWER_KEPT]
    assert await transport.post(f"http://127.0.0.1:{p2}/", {}, b"{}", 5) == (500, big[:ANSWER_KEPT])
    assert until_close.connections == 2  # not reused after an answer delimited by the close
    await chunked.stop()
    await until_close.stop()


async def test_a_pooled_connection_the_server_closed_is_replaced(transport: HttptoolsTransport) -> None:
    server = Server(ok())
    port = await server.start()
    assert (await transport.post(f"http://127.0.0.1:{port}/", {}, b"{}", 5))[0] == 200
    await server.drop_idle()
    await asyncio.sleep(0.05)  # let the close reach us (either way the post must succeed)
    assert (await transport.post(f"http://127.0.0.1:{port}/", {}, b"{}", 5))[0] == 200
    assert server.connections == 2
    await server.stop()


async def test_silence_refusal_oversize_and_bad_urls_are_delivery_errors(transport: HttptoolsTransport) -> None:
    silent = Server(lambda _: None)
    port = await silent.start()
    with pytest.raises(DeliveryError, match="no answer within"):
        await transport.post(f"http://127.0.0.1:{port}/", {}, b"{}", 0.3)
    await silent.stop()
    from tests.e2e.conftest import free_port

    with pytest.raises(DeliveryError, match="cannot connect"):
        await transport.post(f"http://127.0.0.1:{free_port()}/", {}, b"{}", 5)
    huge = Server(lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n" + b"y" * 5_000_000)
    port = await huge.start()
    status, answer = await transport.post(f"http://127.0.0.1:{port}/", {}, b"{}", 5)
    assert status == 200 and len(answer) == ANSWER_KEPT
    await huge.stop()
    for url in ("ftp://127.0.0.1/x", "http:///nohost", "http://127.0.0.1/a b"):
        with pytest.raises(DeliveryError):
            await transport.post(url, {}, b"{}", 5)
    with pytest.raises(DeliveryError):
        await transport.post(f"http://127.0.0.1:{port}/", {"x-evil": "a\r\nx-injected: 1"}, b"{}", 5)


def _certificate(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_https_verifies_the_certificate(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    server = Server(ok(b"secure"))
    port = await server.start(server_tls)
    trusting = HttptoolsTransport(ssl_context=ssl.create_default_context(cafile=str(cert)))
    default = HttptoolsTransport()
    try:
        assert await trusting.post(f"https://127.0.0.1:{port}/", {}, b"{}", 5) == (200, b"secure")
        with pytest.raises(DeliveryError, match="cannot connect"):
            await default.post(f"https://127.0.0.1:{port}/", {}, b"{}", 5)  # self-signed: refused
    finally:
        await trusting.close()
        await default.close()
        await server.stop()

"""HTTPS upstreams go through the same client as plain ones: a real TLS stub on 127.0.0.1
with a self-signed certificate made at test time."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tierserve.dev.stub import Behaviour, Stub
from tierserve.dev.testing import Served, router, served, simple_config
from tierserve.dev.waiting import wait_until_async
from tierserve.routing.upstream import UpstreamClient, UpstreamConnectError

BODY = {"model": "m", "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A self-signed certificate for 127.0.0.1 (IP SAN) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName(
                       [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                  critical=True)
                   .sign(key, hashes.SHA256()))
    d = tmp_path_factory.mktemp("tls")
    (d / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    yield d / "cert.pem", d / "key.pem"


def _trusting(cert_path: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert_path))


@pytest.fixture
async def tls_stub(cert: tuple[Path, Path]) -> AsyncIterator[tuple[Stub, Served]]:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    stub = Stub(Behaviour(name="tls", tokens=3))
    async with served(stub.app(), ssl_context=server_ctx) as server:
        yield stub, server


async def test_buffered_and_streamed_requests_reach_an_https_endpoint(
        cert: tuple[Path, Path], tls_stub: tuple[Stub, Served]) -> None:
    stub, server = tls_stub
    assert server.url.startswith("https://")
    cfg = simple_config({"d": [server.url]}, {"m": {"d": 1}})
    async with router(cfg, upstream_ssl=_trusting(cert[0])) as (_r, url), \
            aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/chat/completions", json=BODY) as resp:
            assert resp.status == 200
            answer = await resp.json()
        assert answer["choices"][0]["message"]["content"] == "tls tls tls"
        async with s.post(url + "/v1/chat/completions", json={**BODY, "stream": True}) as resp:
            assert resp.status == 200
            text = await resp.text()
        assert text.count("data: ") == 5  # three tokens, the finish chunk, [DONE]
        assert text.rstrip().endswith("data: [DONE]")
        assert server.connections() == 1  # both on one kept-alive TLS connection
    assert stub.hits == 2
    await wait_until_async(lambda: server.connections() == 0, 5, "the router to close its pool")


async def test_one_tls_connection_is_kept_alive_across_requests(
        cert: tuple[Path, Path], tls_stub: tuple[Stub, Served]) -> None:
    stub, server = tls_stub
    client = UpstreamClient(ssl_context=_trusting(cert[0]))
    try:
        for _ in range(3):
            got = await client.buffered(server.url, "/v1/chat/completions",
                                        b'{"model": "m", "max_tokens": 1}', timeout_s=5,
                                        connect_timeout_s=2)
            assert got.status == 200
        assert server.connections() == 1
        assert stub.hits == 3
    finally:
        client.close()


async def test_an_untrusted_certificate_is_a_connect_error_and_a_502(
        tls_stub: tuple[Stub, Served]) -> None:
    stub, server = tls_stub
    client = UpstreamClient()  # the system's CAs: the self-signed certificate fails
    try:
        with pytest.raises(UpstreamConnectError):
            await client.buffered(server.url, "/v1/chat/completions", b"{}", timeout_s=5,
                                  connect_timeout_s=2)
    finally:
        client.close()
    cfg = simple_config({"d": [server.url]}, {"m": {"d": 1}})
    async with router(cfg) as (_r, url), aiohttp.ClientSession() as s, \
            s.post(url + "/v1/chat/completions", json=BODY) as resp:
        assert resp.status == 502
        assert (await resp.json())["error"]["code"] == "bad_gateway"
    assert stub.hits == 0

"""TLS contexts over a real loopback socket with trio's SSLStream: a certificate of the local CA
is trusted, one of another CA is not, plaintext is refused, and bad files are one-line errors."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest
import trio

from ringd.auth.tls import (
    LocalCA,
    TLSConfigError,
    client_context,
    make_local_ca,
    server_context,
)

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return make_local_ca(tmp_path_factory.mktemp("ca"), [HOST, "127.0.0.2", "node1.example"])


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return make_local_ca(tmp_path_factory.mktemp("other-ca"), [HOST])


class EchoServer:
    """A loopback TLS echo server; records how each connection's handshake ended."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.port = 0
        self.failures: list[BaseException] = []
        self.handled = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host=HOST)
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, tcp: trio.SocketStream) -> None:
        stream = trio.SSLStream(tcp, self.ctx, server_side=True)
        try:
            with trio.fail_after(5):
                await stream.do_handshake()
                while data := await stream.receive_some(65536):
                    await stream.send_all(data)
        except (trio.BrokenResourceError, trio.TooSlowError) as exc:
            self.failures.append(exc)
        finally:
            await trio.aclose_forcefully(stream)
            self.handled.set()


async def connect(
    port: int, ctx: ssl.SSLContext, host: str = HOST
) -> trio.SSLStream[trio.SocketStream]:
    tcp = await trio.open_tcp_stream(HOST, port)
    stream = trio.SSLStream(tcp, ctx, server_hostname=host)
    with trio.fail_after(5):
        await stream.do_handshake()
    return stream


async def roundtrip(stream: trio.SSLStream[trio.SocketStream], payload: bytes) -> bytes:
    await stream.send_all(payload)
    got = b""
    with trio.fail_after(5):
        while len(got) < len(payload):
            got += await stream.receive_some(65536)
    return got


async def test_a_client_trusting_the_local_ca_round_trips_bytes(ca: LocalCA) -> None:
    cert, key = ca.nodes[HOST]
    server = EchoServer(server_context(cert, key))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        stream = await connect(server.port, client_context(ca.ca_cert))
        payload = bytes(range(256)) * 1000
        assert await roundtrip(stream, payload) == payload
        assert stream.version() in ("TLSv1.2", "TLSv1.3")
        await stream.aclose()
        nursery.cancel_scope.cancel()
    assert server.failures == []


async def test_a_client_of_another_ca_refuses_the_server(ca: LocalCA, other_ca: LocalCA) -> None:
    cert, key = ca.nodes[HOST]
    server = EchoServer(server_context(cert, key))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        with pytest.raises(trio.BrokenResourceError) as info:
            await connect(server.port, client_context(other_ca.ca_cert))
        assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
        assert "certificate verify failed" in str(info.value.__cause__)
        nursery.cancel_scope.cancel()


async def test_the_server_name_is_checked(ca: LocalCA) -> None:
    cert, key = ca.nodes["127.0.0.2"]  # a valid certificate, for another address
    server = EchoServer(server_context(cert, key))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        with pytest.raises(trio.BrokenResourceError) as info:
            await connect(server.port, client_context(ca.ca_cert))
        assert "IP address mismatch" in str(info.value.__cause__)
        nursery.cancel_scope.cancel()


async def test_a_plaintext_client_is_refused_cleanly(ca: LocalCA) -> None:
    cert, key = ca.nodes[HOST]
    server = EchoServer(server_context(cert, key))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        plain = await trio.open_tcp_stream(HOST, server.port)
        hello = b"\x00\x00\x00\x36" + b"\xa3" + b"\x00" * 53  # a frame, as a plaintext client sends
        await plain.send_all(hello)
        received = b""
        with trio.fail_after(5):
            while chunk := await plain.receive_some(4096):
                received += chunk
            await server.handled.wait()
        await plain.aclose()
        nursery.cancel_scope.cancel()
    assert hello not in received  # nothing was echoed: at most a TLS alert, then the close
    assert len(server.failures) == 1
    assert isinstance(server.failures[0], trio.BrokenResourceError)
    assert isinstance(server.failures[0].__cause__, ssl.SSLError)


async def test_required_client_certificates_for_internode(ca: LocalCA, other_ca: LocalCA) -> None:
    cert, key = ca.nodes[HOST]
    server = EchoServer(server_context(cert, key, ca.ca_cert, require_client_cert=True))
    peer_cert, peer_key = ca.nodes["127.0.0.2"]
    stranger_cert, stranger_key = other_ca.nodes[HOST]
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        peer = await connect(server.port, client_context(ca.ca_cert, peer_cert, peer_key))
        assert await roundtrip(peer, b"gossip") == b"gossip"
        await peer.aclose()
        for ctx in (
            client_context(ca.ca_cert),  # no certificate at all
            client_context(ca.ca_cert, stranger_cert, stranger_key),  # one of another CA
        ):
            # with TLS 1.3 the client may finish its handshake before the server refuses
            with pytest.raises(trio.BrokenResourceError):
                stream = await connect(server.port, ctx)
                await roundtrip(stream, b"x")
        nursery.cancel_scope.cancel()
    assert len(server.failures) == 2
    assert all(isinstance(f.__cause__, ssl.SSLError) for f in server.failures)


def test_local_ca_files(ca: LocalCA) -> None:
    assert set(ca.nodes) == {HOST, "127.0.0.2", "node1.example"}
    for key in [ca.ca_key, *(k for _, k in ca.nodes.values())]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # a DNS-named node certificate loads and is checked by name
    cert, key = ca.nodes["node1.example"]
    server_context(cert, key)


def test_reusing_the_ca_issues_certificates_it_signs(ca: LocalCA, tmp_path: Path) -> None:
    again = make_local_ca(ca.ca_cert.parent, ["127.0.0.9"])
    assert again.ca_cert.read_bytes() == ca.ca_cert.read_bytes()
    cert, key = again.nodes["127.0.0.9"]
    ctx = client_context(ca.ca_cert)
    ctx.load_cert_chain(cert, key)  # the key matches
    import cryptography.x509 as x509

    issued = x509.load_pem_x509_certificate(cert.read_bytes())
    root = x509.load_pem_x509_certificate(ca.ca_cert.read_bytes())
    issued.verify_directly_issued_by(root)


def test_a_bad_host_name_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(TLSConfigError, match="neither an IP address nor a DNS name"):
        make_local_ca(tmp_path / "ca", ["127.0.0.1", "../../etc/passwd"])
    assert not (tmp_path / "ca").exists()


def test_missing_and_unreadable_files_are_one_line(ca: LocalCA, tmp_path: Path) -> None:
    cert, key = ca.nodes[HOST]
    with pytest.raises(TLSConfigError) as info:
        server_context(tmp_path / "absent.pem", key)
    assert str(info.value) == (
        f"cannot read TLS certificate file {tmp_path / 'absent.pem'}: No such file or directory"
    )
    with pytest.raises(TLSConfigError, match=r"cannot read TLS key file .*Is a directory"):
        server_context(cert, tmp_path)
    with pytest.raises(TLSConfigError, match="cannot read TLS CA file"):
        client_context(tmp_path / "absent-ca.pem")
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"hello")
    with pytest.raises(TLSConfigError, match=f"TLS CA file {junk} is not a PEM file"):
        client_context(junk)


def test_a_key_that_does_not_match_is_one_line(ca: LocalCA) -> None:
    cert, _ = ca.nodes[HOST]
    _, other_key = ca.nodes["127.0.0.2"]
    with pytest.raises(TLSConfigError) as info:
        server_context(cert, other_key)
    assert str(info.value) == f"TLS key file {other_key} does not match certificate {cert}"


def test_a_damaged_pem_is_one_line(ca: LocalCA, tmp_path: Path) -> None:
    _, key = ca.nodes[HOST]
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(TLSConfigError, match=f"cannot load TLS certificate {bad}") as info:
        server_context(bad, key)
    assert "\n" not in str(info.value)
    with pytest.raises(TLSConfigError, match=f"cannot load TLS CA file {bad}"):
        client_context(bad)


def test_an_encrypted_key_is_refused_without_prompting(ca: LocalCA, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    cert, key = ca.nodes[HOST]
    loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted-key.pem"
    encrypted.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    with pytest.raises(TLSConfigError, match="encrypted private keys are not supported"):
        server_context(cert, encrypted)


def test_client_certificates_need_a_ca_and_both_files(ca: LocalCA) -> None:
    cert, key = ca.nodes[HOST]
    with pytest.raises(TLSConfigError, match="require_client_cert needs a CA file"):
        server_context(cert, key, require_client_cert=True)
    with pytest.raises(TLSConfigError, match="needs both a certificate and a key"):
        client_context(ca.ca_cert, cert=cert)

"""TLS on a real node: optional TLS serves both kinds of client, required TLS refuses plaintext
with a clear error, and SIGHUP re-reads the certificate files (docs/security.md)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from nodes import Ringd, free_port, wait_for

from ringctl.client import Client, ConnectError
from ringd.auth.tls import make_local_ca
from ringd.protocol.errors import ProtocolError


def tls_flags(directory: Path, mode: str) -> dict[str, object]:
    ca = make_local_ca(directory, ["127.0.0.1"])
    cert, key = ca.nodes["127.0.0.1"]
    return {
        "tls_cert_file": cert,
        "tls_key_file": key,
        "tls_ca_file": ca.ca_cert,
        "client_tls": mode,
    }


def test_optional_tls_serves_both_and_sighup_reloads_certificates(
    ringd_factory: Callable[..., Ringd], tmp_path: Path
) -> None:
    flags = tls_flags(tmp_path / "ca1", "optional")
    node = ringd_factory(**flags)
    ca1 = str(flags["tls_ca_file"])
    with Client(node.address, timeout=5) as plain:
        assert plain.ping()
    with Client(node.address, timeout=5, tls_ca=ca1) as secure:
        assert secure.ping()

    # new certificate files from another CA, then SIGHUP: new connections use them
    ca2 = make_local_ca(tmp_path / "ca2", ["127.0.0.1"])
    cert2, key2 = ca2.nodes["127.0.0.1"]
    shutil.copyfile(cert2, Path(str(flags["tls_cert_file"])))
    shutil.copyfile(key2, Path(str(flags["tls_key_file"])))
    assert node.proc is not None
    node.proc.send_signal(signal.SIGHUP)

    def reloaded() -> bool:
        with Client(node.address, timeout=5, tls_ca=str(ca2.ca_cert)) as db:
            return bool(db.ping())

    wait_for(reloaded, 20, "the node to present the new certificate")
    with pytest.raises(ConnectError, match="TLS handshake"):
        Client(node.address, timeout=5, tls_ca=ca1).connect()
    assert "reloaded the TLS certificate files" in node.log()


def test_required_tls_refuses_plaintext_clients(
    ringd_factory: Callable[..., Ringd], tmp_path: Path
) -> None:
    flags = tls_flags(tmp_path / "ca", "required")
    node = ringd_factory(wait=False, **flags)
    ca = str(flags["tls_ca_file"])

    def up() -> bool:
        with Client(node.address, timeout=2, tls_ca=ca) as db:
            return bool(db.ping())

    wait_for(up, 20, "the node to serve over TLS")
    with pytest.raises(ProtocolError, match="requires TLS"):
        Client(node.address, timeout=5).connect()
    done = subprocess.run(
        [sys.executable, "-m", "ringctl", "ping", "--host", node.address],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 4, done
    assert "requires TLS" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    secure = subprocess.run(
        [sys.executable, "-m", "ringctl", "--tls-ca", ca, "ping", "--host", node.address],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert secure.returncode == 0, secure


def test_tls_required_without_a_certificate_does_not_start(tmp_path: Path) -> None:
    node = Ringd(tmp_path / "n", port=free_port(), client_tls="required")
    try:
        node.start(wait=False)
        assert node.proc is not None
        assert node.proc.wait(timeout=30) != 0
        assert "tls_cert_file" in node.log().replace("-", "_")
    finally:
        node.kill()

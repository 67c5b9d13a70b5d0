"""``ringctl cluster create --tls``: three nodes with TLS required between nodes and from
clients serve put/get through ringctl with no extra flags; a plaintext client is refused with a
clear error on its side (docs/security.md)."""

from __future__ import annotations

import pytest
from cluster.kit import Ringctl, cluster_port

from ringctl.client import Client, ConnectError
from ringd.protocol.errors import ProtocolError


def test_tls_cluster_serves_and_refuses_plaintext(ringctl: Ringctl) -> None:
    port = cluster_port(3)
    ringctl.ok("cluster", "create", "-n", "3", "--port", str(port), "--tls")
    tls = ringctl.home / "clusters" / "local" / "tls"
    assert (tls / "ca.pem").exists()
    assert (tls / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    conf = (ringctl.home / "clusters" / "local" / "node2" / "ringd.toml").read_text()
    assert 'client_tls = "required"' in conf and 'internode_tls = "required"' in conf
    ringctl.ok("cluster", "start")  # waits until every node sees every node up: gossip over TLS
    ringctl.ok("keyspace", "create", "demo", "--rf", "3")
    ringctl.ok("put", "demo", "k", '{"v": 1}', "-c", "ALL")
    assert ringctl.json("get", "demo", "k", "-c", "ALL")["columns"] == {"v": 1}
    status = ringctl.json("status")["nodes"]
    assert [n["status"] for n in status] == ["UP"] * 3

    password = (ringctl.home / "clusters" / "local" / "admin.password").read_text().strip()
    admin = {"user": "admin", "password": password}
    with pytest.raises(ProtocolError, match="requires TLS"):  # plaintext: refused, and why
        with Client(f"127.0.0.1:{port}", timeout=5, credentials=admin) as db:
            db.ping()
    plain = ringctl("--tls-ca", "/dev/null", "get", "demo", "k")  # a CA that verifies nothing
    assert plain.returncode == 4, plain
    assert len(plain.stderr.strip().splitlines()) == 1, plain.stderr
    with Client(
        f"127.0.0.2:{port}", timeout=5, credentials=admin, tls_ca=str(tls / "ca.pem")
    ) as db:
        assert db.get("demo", "k")["columns"] == {"v": 1}
    # a CA of another cluster does not verify these nodes
    from ringd.auth.tls import make_local_ca

    other = make_local_ca(ringctl.home / "other-ca", ["127.0.0.1"])
    with pytest.raises(ConnectError, match="TLS handshake"):
        with Client(
            f"127.0.0.1:{port}", timeout=5, credentials=admin, tls_ca=str(other.ca_cert)
        ) as db:
            db.ping()

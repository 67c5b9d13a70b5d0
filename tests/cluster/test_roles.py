"""``ringctl role`` on a ``ringctl cluster`` cluster: a change reaches every node, a readonly
role reads but cannot write, a wrong password or a dropped role cannot log in."""

from __future__ import annotations

from pathlib import Path

from cluster.kit import Ringctl, cluster_port


def test_readonly_role_on_every_node(ringctl: Ringctl, tmp_path: Path) -> None:
    port = str(cluster_port(2))
    ringctl.ok("cluster", "start", "-n", "2", "--rf", "2", "--port", port)
    ringctl.ok("put", "demo", "k", '{"v": 1}', "-c", "ALL")
    pw = tmp_path / "ro.password"
    pw.write_text("reader-secret\n")
    made = ringctl.ok("role", "create", "reader", "--kind", "readonly", "--password-file", str(pw))
    assert "2 nodes" in made.stdout, made.stdout
    roles = ringctl.json("role", "list", "--host", f"127.0.0.2:{port}")["roles"]
    assert {"reader": "readonly"}.items() <= {r["name"]: r["kind"] for r in roles}.items()

    as_reader = ("--user", "reader", "--password-file", str(pw))
    for n in (1, 2):  # every node knows the role
        got = ringctl.json(*as_reader, "get", "demo", "k", "--host", f"127.0.0.{n}:{port}")
        assert got["columns"] == {"v": 1}
    put = ringctl(*as_reader, "put", "demo", "k", '{"v": 2}')
    assert put.returncode == 4, put
    assert "UNAUTHORIZED" in put.stderr or "may not use put" in put.stderr, put.stderr
    assert len(put.stderr.strip().splitlines()) == 1, put.stderr
    # a readonly role cannot manage roles either
    listed = ringctl(*as_reader, "role", "list")
    assert listed.returncode == 4, listed

    wrong = tmp_path / "wrong"
    wrong.write_text("not-it\n")
    bad = ringctl("--user", "reader", "--password-file", str(wrong), "get", "demo", "k")
    assert bad.returncode == 4, bad
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr

    new = tmp_path / "ro2.password"
    new.write_text("second-secret\n")
    ringctl.ok("role", "alter", "reader", "--password-file", str(new))
    assert ringctl(*as_reader, "get", "demo", "k").returncode == 4
    ringctl.ok("--user", "reader", "--password-file", str(new), "get", "demo", "k")

    ringctl.ok("role", "drop", "reader")
    gone = ringctl("--user", "reader", "--password-file", str(new), "get", "demo", "k")
    assert gone.returncode == 4, gone
    names = [r["name"] for r in ringctl.json("role", "list")["roles"]]
    assert names == ["admin"]
    last = ringctl("role", "drop", "admin")
    assert last.returncode != 0 and "last admin" in last.stderr, last


def test_role_create_needs_a_password_file_without_a_terminal(ringctl: Ringctl) -> None:
    done = ringctl("role", "create", "x", "--kind", "readonly", "--host", "127.0.0.1:1")
    assert done.returncode == 2, done
    assert "--password-file" in done.stderr

"""The man pages and shell completions match what the current command tree generates.

When a command, option or help text changes, these fail until the files are regenerated with
``python -m ringctl.docgen``. The completion scripts are also checked by the shells themselves
(syntax always for bash; zsh and fish when installed) and, for bash and fish, by completing a
few command lines.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from nodes import Ringd, free_port
from typer import _click

from ringctl import docgen
from ringctl.app import app
from ringctl.cluster import layout
from ringctl.completion import CLUSTERS
from ringctl.options import READ_LEVELS, WRITE_LEVELS

ROOT = docgen.REPO_ROOT
REGENERATE = "run 'python -m ringctl.docgen' and commit the result"


def _click_paths() -> list[tuple[str, ...]]:
    """Every command path of the app, walked straight from the click tree typer builds."""
    root = typer.main.get_command(app)
    out: list[tuple[str, ...]] = []

    def walk(cmd: object, ctx: _click.Context, path: tuple[str, ...]) -> None:
        out.append(path)
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    walk(sub, _click.Context(sub, info_name=name, parent=ctx), (*path, name))

    walk(root, _click.Context(root, info_name="ringctl"), ())
    return out


def test_outputs_match_the_command_tree() -> None:
    outdated = docgen.stale(ROOT)
    assert not outdated, f"stale generated files: {', '.join(outdated)}; {REGENERATE}"


def test_every_command_is_in_the_man_page() -> None:
    man = (ROOT / "man" / "ringctl.1").read_text(encoding="utf-8")
    missing = []
    for path in _click_paths()[1:]:
        heading = '.SS "' + docgen.roff(" ".join(("ringctl", *path))) + '"'
        if heading not in man:
            missing.append(" ".join(path))
    assert not missing, f"commands missing from man/ringctl.1: {missing}; {REGENERATE}"


def test_every_option_is_documented_and_completed() -> None:
    man = (ROOT / "man" / "ringctl.1").read_text(encoding="utf-8")
    bash = (ROOT / "completions" / "ringctl.bash").read_text(encoding="utf-8")
    for cmd in docgen.command_tree().walk():
        for opt in (o for p in cmd.options for o in p.all_opts):
            assert f"\\fB{docgen.roff(opt)}\\fR" in man, f"{opt} of {cmd.path} not in the man page"
            assert opt in bash, f"{opt} of {cmd.path} not in the bash completion"


def test_ringd_man_page_lists_every_flag() -> None:
    from ringd.config import argument_parser

    man = (ROOT / "man" / "ringd.8").read_text(encoding="utf-8")
    for action in argument_parser()._actions:
        for opt in action.option_strings:
            assert f"\\fB{docgen.roff(opt)}\\fR" in man, f"{opt} not in man/ringd.8; {REGENERATE}"


def test_generation_is_deterministic() -> None:
    first, second = docgen.generate(), docgen.generate()
    assert first == second
    for text in first.values():
        assert "\r" not in text and text.endswith("\n")


def test_check_names_stale_files_and_write_fixes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "man/ringctl.1" in err and "python -m ringctl.docgen" in err
    assert docgen.main(["--root", str(tmp_path)]) == 0
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "completions" / "ringctl.fish").write_text("stale\n")
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 1
    assert "completions/ringctl.fish" in capsys.readouterr().err


def _shell(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def test_bash_completion_parses() -> None:
    bash = _shell("bash")
    result = subprocess.run(
        [bash, "-n", str(ROOT / "completions" / "ringctl.bash")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("shell", "flag", "file"), [("zsh", "-n", "_ringctl"), ("fish", "-n", "ringctl.fish")]
)
def test_zsh_and_fish_completions_parse(shell: str, flag: str, file: str) -> None:
    result = subprocess.run(
        [_shell(shell), flag, str(ROOT / "completions" / file)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def _bash_run(*words: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Complete the last of ``words`` with the generated bash function, as bash would."""
    script = (
        f"source {ROOT / 'completions' / 'ringctl.bash'}\n"
        "COMP_WORDS=(" + " ".join(f"'{w}'" for w in words) + ")\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_ringctl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    return subprocess.run(
        [_shell("bash"), "-c", script], capture_output=True, text=True, env=env, timeout=30
    )


def _bash_complete(*words: str, env: dict[str, str] | None = None) -> list[str]:
    result = _bash_run(*words, env=env)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def _words_to(tree: docgen.Command, path: tuple[str, ...]) -> list[str]:
    """Command words reaching ``path``; a group taking arguments before its sub-command
    (``cluster node N ...``) gets a sample value for each."""
    words = ["ringctl"] + ["1"] * len(tree.arguments)
    node = tree
    for name in path:
        node = next(s for s in node.subcommands if s.name == name)
        words.append(name)
        if node.is_group:
            words += ["1"] * len(node.arguments)
    return words


def test_bash_completes_every_group_and_its_options() -> None:
    tree = docgen.command_tree()
    for cmd in tree.walk():
        if cmd.is_group:
            words = _words_to(tree, cmd.path)
            assert _bash_complete(*words, "") == [s.name for s in cmd.subcommands], words
    put = _bash_complete("ringctl", "put", "demo", "k", "--t")
    assert put == ["--text", "--timeout", "--timestamp", "--trace", "--ttl"]
    assert _bash_complete("ringctl", "get", "--host", "") == []


def test_fish_completes_sub_commands() -> None:
    fish = _shell("fish")
    tree = docgen.command_tree()
    script = (
        f"source {ROOT / 'completions' / 'ringctl.fish'}\n"
        "complete -C'ringctl ' | string replace -r '\\t.*' ''\n"
    )
    result = subprocess.run([fish, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [s.name for s in tree.subcommands]


def test_bash_completes_consistency_levels() -> None:
    assert _bash_complete("ringctl", "put", "ks", "k", "v", "-c", "") == list(WRITE_LEVELS)
    assert _bash_complete("ringctl", "delete", "ks", "k", "--consistency", "") == list(WRITE_LEVELS)
    assert _bash_complete("ringctl", "load", "ks", "-", "-c", "") == list(WRITE_LEVELS)
    reads = _bash_complete("ringctl", "get", "ks", "k", "-c", "")
    assert reads == list(READ_LEVELS) and "ANY" not in reads
    assert _bash_complete("ringctl", "dump", "ks", "--consistency", "") == list(READ_LEVELS)
    assert _bash_complete("ringctl", "get", "-c", "LOCAL_") == ["LOCAL_ONE", "LOCAL_QUORUM"]
    assert _bash_complete("ringctl", "stress", "write", "-cl", "Q") == ["QUORUM"]
    # stress -c is --concurrency, a number
    assert _bash_complete("ringctl", "stress", "write", "-c", "") == []


def _fake_clusters(root: Path, *names: str) -> None:
    for name in names:
        (root / "clusters" / name).mkdir(parents=True)
        (root / "clusters" / name / layout.SPEC_FILE).write_text("{}")
    (root / "clusters" / "not-a-cluster").mkdir(parents=True, exist_ok=True)


def _env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def test_bash_completes_cluster_names(tmp_path: Path) -> None:
    _fake_clusters(tmp_path, "alpha", "beta")
    env = _env(RINGCTL_HOME=str(tmp_path))
    assert _bash_complete("ringctl", "cluster", "switch", "", env=env) == ["alpha", "beta"]
    assert _bash_complete("ringctl", "cluster", "remove", "b", env=env) == ["beta"]
    assert _bash_complete("ringctl", "cluster", "status", "--name", "", env=env) == [
        "alpha",
        "beta",
    ]
    assert _bash_complete("ringctl", "cluster", "node", "2", "--name", "a", env=env) == ["alpha"]
    # a new cluster's name is not one that exists
    assert _bash_complete("ringctl", "cluster", "create", "--name", "", env=env) == []


def test_cluster_names_without_ringctl_home_match_the_managers_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scripts' fallback is the directory the manager uses on Linux."""
    xdg, home = tmp_path / "xdg", tmp_path / "home"
    _fake_clusters(xdg / "ringctl", "gamma")
    _fake_clusters(home / ".local" / "share" / "ringctl", "delta")
    monkeypatch.delenv("RINGCTL_HOME")
    for data_home, expected in ((str(xdg), ["gamma"]), (None, ["delta"])):
        env = _env(RINGCTL_HOME=None, XDG_DATA_HOME=data_home, HOME=str(home))
        assert _bash_complete("ringctl", "cluster", "switch", "", env=env) == expected
        if sys.platform.startswith("linux"):
            monkeypatch.setenv("HOME", str(home))
            if data_home is None:
                monkeypatch.delenv("XDG_DATA_HOME", raising=False)
            else:
                monkeypatch.setenv("XDG_DATA_HOME", data_home)
            assert CLUSTERS("") == expected


def _ringctl_env(host: str) -> dict[str, str]:
    """RINGCTL_HOST set and this environment's ringctl first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    return _env(RINGCTL_HOST=host, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))


def test_bash_completes_keyspace_names_from_the_node(node: Ringd) -> None:
    with node.client() as db:
        db.keyspace_create("dogs")
    env = _ringctl_env(node.address)
    assert _bash_complete("ringctl", "put", "", env=env) == ["demo", "dogs"]
    assert _bash_complete("ringctl", "get", "-c", "ONE", "do", env=env) == ["dogs"]
    assert _bash_complete("ringctl", "keyspace", "drop", "de", env=env) == ["demo"]
    assert _bash_complete("ringctl", "tablestats", "", env=env) == ["demo", "dogs"]
    assert _bash_complete("ringctl", "stress", "read", "--keyspace", "", env=env) == [
        "demo",
        "dogs",
    ]
    # only the first argument is a keyspace; a new keyspace's name is not one that exists
    assert _bash_complete("ringctl", "get", "demo", "", env=env) == []
    assert _bash_complete("ringctl", "keyspace", "create", "", env=env) == []
    # --host on the command line wins over RINGCTL_HOST
    closed = _ringctl_env(f"127.0.0.1:{free_port()}")
    words = ("ringctl", "dump", "--host", node.address, "")
    assert _bash_complete(*words, env=closed) == ["demo", "dogs"]


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """An address that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("where", ["closed port", "silent listener"])
def test_bash_keyspace_completion_without_a_node_is_quick_and_silent(
    where: str, silent_listener: str
) -> None:
    host = silent_listener if where == "silent listener" else f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = _bash_run("ringctl", "get", "", env=_ringctl_env(host))
    elapsed = time.monotonic() - started
    assert result.returncode == 0
    assert (result.stdout.strip(), result.stderr) == ("", "")
    assert elapsed < 5.0, f"completion took {elapsed:.1f}s"


def _fish_complete(line: str, env: dict[str, str]) -> list[str]:
    script = (
        f"source {ROOT / 'completions' / 'ringctl.fish'}\n"
        f"complete -C'{line}' | string replace -r '\\t.*' ''\n"
    )
    result = subprocess.run(
        [_shell("fish"), "-c", script], capture_output=True, text=True, env=env, timeout=30
    )
    assert not result.stderr, result.stderr  # (string replace exits 1 when nothing had a tab)
    return result.stdout.split()


def test_fish_completes_levels_clusters_and_keyspaces(tmp_path: Path) -> None:
    _fake_clusters(tmp_path, "alpha", "beta")
    env = _ringctl_env(f"127.0.0.1:{free_port()}")
    env["RINGCTL_HOME"] = str(tmp_path)
    assert _fish_complete("ringctl put ks k v -c ", env) == sorted(WRITE_LEVELS)
    assert "ANY" not in _fish_complete("ringctl get ks k --consistency ", env)
    assert _fish_complete("ringctl stress write -cl LOCAL_", env) == ["LOCAL_ONE", "LOCAL_QUORUM"]
    assert _fish_complete("ringctl cluster switch ", env) == ["alpha", "beta"]
    assert _fish_complete("ringctl cluster node 1 --name b", env) == ["beta"]
    assert _fish_complete("ringctl get ", env) == []  # no node answers


def test_zsh_lists_cluster_and_keyspace_names(tmp_path: Path, node: Ringd) -> None:
    """The listing functions the zsh script's specs call (compadd stubbed to print)."""
    _fake_clusters(tmp_path, "alpha", "beta")
    script = (
        "compadd() { [[ $1 == -a ]] && print -l -- ${(P)2} }\n"
        f"source <(sed '$d' {ROOT / 'completions' / '_ringctl'})\n"
        "_ringctl_cluster_names\n"
        "words=(get ''); CURRENT=2; _ringctl_keyspace_names\n"
        f"words=(get --host 127.0.0.1:{free_port()} ''); CURRENT=4; _ringctl_keyspace_names\n"
    )
    env = _ringctl_env(node.address)
    env["RINGCTL_HOME"] = str(tmp_path)
    result = subprocess.run(
        [_shell("zsh"), "-f", "-c", script], capture_output=True, text=True, env=env, timeout=30
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.split() == ["alpha", "beta", "demo"]

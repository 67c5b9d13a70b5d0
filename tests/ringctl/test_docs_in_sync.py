"""The man pages and shell completions match what the current command tree generates.

When a command, option or help text changes, these fail until the files are regenerated with
``python -m ringctl.docgen``. The completion scripts are also checked by the shells themselves
(syntax always for bash; zsh and fish when installed) and, for bash and fish, by completing a
few command lines.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import typer.main
from typer import _click

from ringctl import docgen
from ringctl.app import app

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


def _bash_complete(*words: str) -> list[str]:
    script = (
        f"source {ROOT / 'completions' / 'ringctl.bash'}\n"
        "COMP_WORDS=(" + " ".join(f"'{w}'" for w in words) + ")\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_ringctl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run([_shell("bash"), "-c", script], capture_output=True, text=True)
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
    assert put == ["--text", "--timeout", "--timestamp", "--ttl"]
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

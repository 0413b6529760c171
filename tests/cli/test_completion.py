"""`memplace completion`: the generated bash script completes what the parser accepts."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from memplace.cli import SUBCOMMANDS, main


def script(capsys, shell: str) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


def bash_complete(capsys, tmp_path, words: list[str]) -> set[str]:
    """What bash offers for ``words`` (the last one being typed), through the real function."""
    path = tmp_path / "memplace.bash"
    path.write_text(script(capsys, "bash"))
    line = " ".join(words)
    program = (
        f"source {path}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
        f"COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; _shtab_memplace; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return {w.strip() for w in done.stdout.splitlines() if w.strip()}


@pytest.mark.skipif(not shutil.which("bash"), reason="bash is not installed")
def test_bash_completes_every_subcommand(capsys, tmp_path):
    assert bash_complete(capsys, tmp_path, ["memplace", "''"]) >= set(SUBCOMMANDS)
    assert bash_complete(capsys, tmp_path, ["memplace", "pl"]) == {"plan"}


@pytest.mark.skipif(not shutil.which("bash"), reason="bash is not installed")
def test_bash_completes_an_option_s_choices(capsys, tmp_path):
    offered = bash_complete(capsys, tmp_path, ["memplace", "plan", "-o", "''"])
    assert offered == {"table", "wide", "json", "yaml", "manifests"}


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh is not installed")
def test_the_zsh_script_parses(capsys, tmp_path):
    path = tmp_path / "_memplace"
    path.write_text(script(capsys, "zsh"))
    subprocess.run(["zsh", "-n", str(path)], check=True)


def test_version_is_the_package_s(capsys):
    from memplace import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"memplace {__version__}\n"

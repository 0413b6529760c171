"""The README works as written: every command block that runs offline is run, every sample
output is compared with what the code prints now, and the illustrative `kubectl get mdep -A`
table is re-rendered from the CRD's printer columns and the planner's status.

Blocks:
- ```` ```console ````: ``$ command`` lines, each followed by its exact output (trailing spaces
  aside); a last line ``...`` means the rest of the output is left out.
- ```` ```sh ````: commands to type. Each is run when it can run offline (``memplace``,
  ``make plan``, ``kubectl kustomize``) and must succeed; the others must start with a tool
  that needs a cluster, a registry or Docker (``NEEDS_A_CLUSTER``), so a new kind of command
  cannot slip past unclassified.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
MDEP_MARKER = "<!-- kubectl-get-mdep: rendered and checked by tests/test_readme.py -->"
ILLUSTRATIVE_AGE = "5m"

RUNNABLE = ("memplace ", ".venv/bin/memplace ", "make plan", "kubectl kustomize ")
NEEDS_A_CLUSTER = {
    "kubectl": "talks to an API server",
    "helm": "installs into a cluster",
    "docker": "needs a Docker engine",
    "cosign": "reaches a registry",
    "E2E_KUBECONFIG=": "the e2e suite against a real cluster",
    "e2e/kind-up.sh": "needs Docker and kind",
    "make test": "is this test suite",
    ".venv/bin/python bench/": "a benchmark: it prints figures, it is not a test",
}


def blocks(kind: str) -> list[tuple[int, str]]:
    """(line number, body) of every fenced block of ``kind`` in the README."""
    text = README.read_text()
    return [(text[: m.start()].count("\n") + 1, m[2]) for m in FENCE.finditer(text) if m[1] == kind]


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    """Run a README command line as a user would: bash, in the repository, with ``memplace``
    on PATH (this checkout), no cluster configured, a scratch HOME."""
    home = tmp_path_factory.mktemp("home")
    bin_dir = tmp_path_factory.mktemp("bin")
    shim = bin_dir / "memplace"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m memplace "$@"\n')
    shim.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "HOME": str(home),
        "NO_COLOR": "1",
        "LANG": "C.UTF-8",
    }

    def run(command: str) -> subprocess.CompletedProcess:
        command = command.replace(".venv/bin/memplace", "memplace")
        for target in re.findall(r">\s*~/(\S+)", command):
            (home / target).parent.mkdir(parents=True, exist_ok=True)
        return subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    return run


def console_steps() -> list[tuple[str, str, list[str]]]:
    steps = []
    for line_no, body in blocks("console"):
        current: tuple[str, list[str]] | None = None
        for line in body.splitlines():
            if line.startswith("$ "):
                if current:
                    steps.append((f"README.md:{line_no}", *current))
                current = (line[2:], [])
            else:
                assert current, f"README.md:{line_no}: output before a $ command"
                current[1].append(line)
        if current:
            steps.append((f"README.md:{line_no}", *current))
    return steps


def sh_commands() -> list[tuple[str, str]]:
    found = []
    for line_no, body in blocks("sh"):
        for line in body.splitlines():
            command = re.sub(r"(^|\s+)#\s.*$", "", line).strip()
            if command:
                found.append((f"README.md:{line_no}", command))
    return found


@pytest.mark.parametrize(("where", "command", "expected"), console_steps(),
                         ids=[s[1][:60] for s in console_steps()])  # fmt: skip
def test_each_sample_output_is_what_the_code_prints(shell, where, command, expected):
    if command.startswith("script ") and not shutil.which("script"):
        pytest.skip("script (util-linux) is not installed: no terminal to size")
    done = shell(command)
    output = (done.stdout + done.stderr).replace("\r", "")  # script's terminal ends lines CRLF
    lines = [line.rstrip() for line in output.rstrip("\n").splitlines()]
    expected = [line.rstrip() for line in expected]
    if expected and expected[-1] == "...":
        expected = expected[:-1]
        lines = lines[: len(expected)]
    assert lines == expected, f"{where}: `{command}` prints something else now"


@pytest.mark.parametrize(("where", "command"), sh_commands(),
                         ids=[c[1][:60] for c in sh_commands()])  # fmt: skip
def test_each_command_runs_offline_or_says_why_it_cannot(shell, where, command):
    if command.startswith(RUNNABLE):
        if command.startswith("kubectl") and not shutil.which("kubectl"):
            pytest.skip("kubectl is not installed")
        if command.startswith("make plan"):
            command = make_recipe("plan")
        done = shell(command)
        assert done.returncode == 0, f"{where}: `{command}` failed:\n{done.stderr[-2000:]}"
        return
    tool = next((tool for tool in NEEDS_A_CLUSTER if command.startswith(tool)), None)
    assert tool, f"{where}: `{command}`: neither run here nor known to need a cluster"
    pytest.skip(f"{tool.rstrip('=')}: {NEEDS_A_CLUSTER[tool]}")


def make_recipe(target: str) -> str:
    """The Makefile's recipe for ``target``, with ``.venv/bin/`` tools taken from PATH."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = [line.strip() for line in lines[start + 1 :] if line.startswith("\t")][:1]
    return recipe[0].replace("$(BIN)/", "")


def test_every_runnable_block_kind_is_present():
    assert console_steps() and sh_commands()  # the parser found the README's blocks


# --- `kubectl get mdep -A`, as the API server's table printer would show the examples -----------


def planned() -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "memplace", "plan", "examples/", "-o", "json"],
                          cwd=ROOT, capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(done.stdout)


def printer_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # Go's %v of a float64: the shortest repr, as Python's
    return str(value)


def kubectl_get_mdep_all() -> str:
    crd = yaml.safe_load((ROOT / "crds" / "modeldeployments.memplace.io.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    columns = [c for c in version["additionalPrinterColumns"] if not c.get("priority")]
    header = ["NAMESPACE", "NAME", *(c["name"].upper() for c in columns)]
    rows = [header]
    for p in planned():
        obj = {"status": p}
        cells = [p["namespace"], p["name"]]
        for column in columns:
            if column["jsonPath"] == ".metadata.creationTimestamp":
                cells.append(ILLUSTRATIVE_AGE)
                continue
            value: Any = obj
            for key in column["jsonPath"].lstrip(".").split("."):
                value = value.get(key) if isinstance(value, dict) else None
            cells.append(printer_cell(value))
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join(
        "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows
    )


def test_the_illustrative_kubectl_table_matches_the_columns_and_the_plans():
    text = README.read_text()
    assert MDEP_MARKER in text
    block = text.split(MDEP_MARKER, 1)[1].split("```text\n", 1)[1].split("\n```", 1)[0]
    assert block == kubectl_get_mdep_all(), "re-render it: print(kubectl_get_mdep_all())"

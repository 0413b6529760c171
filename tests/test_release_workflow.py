"""The GitHub Actions workflows: actionlint passes, and release.yml does what a release needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def actionlint() -> str | None:
    here = Path(sys.executable).parent / "actionlint"  # the test extra installs it in the venv
    return str(here) if here.exists() else shutil.which("actionlint")


@pytest.mark.skipif(actionlint() is None, reason="actionlint is not installed (pip: test extra)")
def test_actionlint_finds_nothing():
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}  # shellcheck for run: blocks
    done = subprocess.run(
        [actionlint(), "-no-color", *map(str, WORKFLOWS)],
        capture_output=True, text=True, env=env, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def steps() -> list[dict]:
    workflow = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())
    # PyYAML reads the key `on` as True (YAML 1.1)
    assert workflow[True]["push"]["tags"] == ["v*.*.*"]
    (job,) = workflow["jobs"].values()
    assert job["permissions"]["id-token"] == "write"  # keyless signing needs the OIDC token
    return job["steps"]


def test_the_release_builds_for_two_architectures_with_the_version_label():
    (build,) = [s for s in steps() if str(s.get("uses", "")).startswith("docker/build-push")]
    assert set(build["with"]["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["with"]["push"] is True
    assert "VERSION=${{ steps.version.outputs.version }}" in build["with"]["build-args"]


def test_the_release_signs_the_image_by_digest_and_pushes_the_chart_as_oci():
    runs = "\n".join(s.get("run", "") for s in steps())
    assert 'cosign sign --yes "${IMAGE}@${DIGEST}"' in runs
    assert 'helm push "dist/memplace-${VERSION}.tgz" "${CHARTS}"' in runs
    assert "GITHUB_REF_NAME#v" in runs  # the tag must be the version

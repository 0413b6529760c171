"""One version, from one place (memplace/__init__.py): the package, `memplace --version`, the
image label's default, Chart.yaml's appVersion and version, and the chart's default image tag."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

import memplace

ROOT = Path(__file__).resolve().parents[1]


def test_the_cli_prints_the_package_version():
    done = subprocess.run([sys.executable, "-m", "memplace", "--version"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.strip() == f"memplace {memplace.__version__}"


def test_pyproject_reads_the_version_from_the_package():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "memplace.__version__"}


def test_the_image_label_defaults_to_the_version():
    (default,) = re.findall(r"^ARG VERSION=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert default == memplace.__version__


def test_the_chart_and_its_default_image_follow_the_version():
    chart = yaml.safe_load((ROOT / "charts/memplace/Chart.yaml").read_text())
    assert chart["appVersion"] == chart["version"] == memplace.__version__
    from chart.rendering import one, render_chart

    deployment = one(render_chart(), "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/memplace/memplace:{memplace.__version__}"

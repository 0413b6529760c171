"""Print, per fixture config, the parameter counts memplace derives beside the publisher's figure.

The family tests in tests/planning/test_architecture.py assert the same numbers; this script shows
the margins, so a reader can see how close each family is rather than only that it passed.

    python bench/family_table.py            # every entry of tests/fixtures/configs/published.yaml
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from memplace.planning.architecture import architecture_from_config

CONFIGS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "configs"


def _cells(counted: float, published) -> str:
    """The published figure and the derived count's error against it, or dashes."""
    if not published:
        return f" {'-':>10} {'-':>8}"
    error = 100 * (counted / float(published) - 1)
    return f" {float(published) / 1e9:10.3f} {error:+7.2f}%"


def main() -> None:
    entries = yaml.safe_load((CONFIGS / "published.yaml").read_text())
    print(
        f"{'file':44} {'model_type':18} {'total B':>9} {'published':>10} {'error':>8}"
        f" {'active B':>9} {'read B':>8} {'published':>10} {'error':>8}"
    )
    for entry in entries:
        arch = architecture_from_config(json.loads((CONFIGS / entry["file"]).read_text()))
        total, active = arch.total_parameters, arch.active_parameters
        print(
            f"{entry['file']:44} {entry['model_type']:18} {total / 1e9:9.3f}"
            + _cells(total, entry.get("total_parameters"))
            + f" {active / 1e9:9.3f} {arch.active_parameters_read_per_token / 1e9:8.3f}"
            + _cells(active, entry.get("active_parameters"))
        )


if __name__ == "__main__":
    main()

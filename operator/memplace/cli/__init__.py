"""The ``memplace`` command line: one module per subcommand, each with ``register(subparsers)``.

``plan``, ``estimate`` and ``catalog`` call the planning core only (they work offline, in a pull
request); ``run`` starts the operator and ``agent`` the NVML agent. Errors a user can fix end as
one line on stderr and exit code 2, never a traceback: a subcommand raises ``UsageError``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from memplace import __version__

__all__ = ["UsageError", "main"]

SUBCOMMANDS = ("plan", "estimate", "catalog", "run", "agent", "completion")


class UsageError(Exception):
    """A problem the user can fix (bad file, unknown model type, network down): message, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memplace",
        description="Place ML models on a Kubernetes cluster by memory.",
    )
    parser.add_argument("--version", action="version", version=f"memplace {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"memplace.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UsageError as error:
        print(f"memplace {args.command}: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `memplace plan … | head`: the reader left; no traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it

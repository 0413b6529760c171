"""``memplace completion bash|zsh|tcsh``: a shell completion script, generated from the parser.

shtab writes it from the same argparse parser the command runs (subcommands, flags, choices
such as ``-o table|wide|json|yaml``), so completion cannot drift from the CLI. Chosen over
argcomplete, which starts Python on every TAB and needs a global hook; and over a generator of
our own, which would re-implement shtab's quoting for three shells. Install, e.g.:

    memplace completion bash > ~/.local/share/bash-completion/completions/memplace
    memplace completion zsh > "${fpath[1]}/_memplace"
"""

from __future__ import annotations

import argparse

__all__ = ["register"]

SHELLS = ("bash", "zsh", "tcsh")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh, tcsh)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("shell", choices=SHELLS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import shtab

    from memplace.cli import build_parser

    print(shtab.complete(build_parser(), shell=args.shell), end="")
    return 0

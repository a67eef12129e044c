"""`meshbook sandbox ...` subcommands: start, stop and inspect the built-in local cluster."""

from __future__ import annotations

import argparse

from meshbook.errors import NotAvailableError


def _not_yet(args: argparse.Namespace) -> int:
    raise NotAvailableError(f"meshbook sandbox {args.sandbox_command}: not available in this version yet")


def add_sandbox_commands(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND", required=True)
    for name, text in [
        ("up", "start the sandbox in the background and write its kubeconfig"),
        ("down", "stop the sandbox (its state stays on disk)"),
        ("status", "show whether the sandbox runs, where, and what it holds"),
        ("kubeconfig", "print the path of the sandbox's kubeconfig"),
    ]:
        p = sub.add_parser(name, help=text)
        p.add_argument("--state", metavar="DIR", help="state directory")
        p.set_defaults(handler=_not_yet)

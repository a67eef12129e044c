"""`meshbook sandbox ...` subcommands: start, stop and inspect the built-in local cluster."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from meshbook.errors import ExitCode
from meshbook.param_enums import SandboxSpeed
from meshbook.sandbox import control


def _state(args: argparse.Namespace) -> Path:
    return Path(args.state).expanduser().resolve() if args.state else control.default_state_dir()


def _up(args: argparse.Namespace) -> int:
    info, started = control.up(_state(args), SandboxSpeed(args.speed), args.kubernetes_version)
    verb = "started" if started else "already running"
    print(f"sandbox {verb}: {info.server} (pid {info.pid}, speed {info.speed}, state {info.state_dir})")
    print(f"  export KUBECONFIG={info.kubeconfig}")
    print("  kubectl get namespaces")
    return ExitCode.OK


def _down(args: argparse.Namespace) -> int:
    state = _state(args)
    if control.down(state, keep_state=args.keep_state):
        print("sandbox stopped")
    else:
        print(f"no sandbox running for {state}")
    if args.keep_state:
        print(f"  its objects and Vault data (unseal keys and root token included) stay in {state}")
    else:
        print(f"  its objects and Vault data (unseal keys and root token included) were deleted from {state}")
    return ExitCode.OK


def _status(args: argparse.Namespace) -> int:
    """One sandbox with --state; else every running sandbox (the default one and those runs kept)."""
    if args.state:
        state = _state(args)
        info = control.running(state)
        if info is None:
            print(f"sandbox: not running (state {state})")
            return ExitCode.UNREACHABLE
        found = [info]
    else:
        found = control.all_running()
        if not found:
            default = control.default_state_dir()
            print(f"no sandbox running (default state {default}); start one with `meshbook sandbox up`")
            return ExitCode.UNREACHABLE
    for info in found:
        age = _age(time.time() - control.started_at(info))
        print(f"sandbox: running at {info.server} (pid {info.pid}, speed {info.speed}, up {age})")
        print(f"  state {info.state_dir}")
        print(f"  export KUBECONFIG={info.kubeconfig}")
    return ExitCode.OK


def _age(seconds: float) -> str:
    """Like kubectl's AGE column: 45s, 12m, 3h, 2d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _reset(args: argparse.Namespace) -> int:
    info = control.reset(_state(args))
    print(f"sandbox reset: {info.server} is empty again (state {info.state_dir}); its kubeconfig still works")
    return ExitCode.OK


def _kubeconfig(args: argparse.Namespace) -> int:
    state = _state(args)
    info = control.running(state)
    if info is None:
        print(f"meshbook: no sandbox running for {state}; start one with `meshbook sandbox up`")
        return ExitCode.UNREACHABLE
    print(control.write_kubeconfig(info))
    return ExitCode.OK


def add_sandbox_commands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    sub = parser.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND", required=True)
    state_help = f"state directory (default {control.default_state_dir()})"

    p = sub.add_parser("up", help="start the sandbox in the background and write its kubeconfig")
    p.add_argument("--state", metavar="DIR", help=state_help)
    p.add_argument("--speed", choices=[s.value for s in SandboxSpeed], default=SandboxSpeed.INSTANT.value)
    p.add_argument("--kubernetes-version", default="1.33", help="version the sandbox reports (default 1.33)")
    p.set_defaults(handler=_up)

    p = sub.add_parser("down", help="stop the sandbox and delete its objects and Vault data (keys included)")
    p.add_argument("--state", metavar="DIR", help=state_help)
    p.add_argument(
        "--keep-state",
        action="store_true",
        help="keep objects and Vault data (unseal keys and root token) on disk for the next `sandbox up`",
    )
    p.set_defaults(handler=_down)

    p = sub.add_parser("status", help="list the running sandboxes, or show one with --state (exit 3 when none)")
    p.add_argument("--state", metavar="DIR", help=state_help)
    p.set_defaults(handler=_status)

    p = sub.add_parser("reset", help="return the running sandbox to empty: no objects, no Vault data or keys")
    p.add_argument("--state", metavar="DIR", help=state_help)
    p.set_defaults(handler=_reset)

    p = sub.add_parser("kubeconfig", help="print the path of the running sandbox's kubeconfig")
    p.add_argument("--state", metavar="DIR", help=state_help)
    p.set_defaults(handler=_kubeconfig)
    return sub

"""The `meshbook` command: parses arguments and hands each subcommand to the library.

Every error meshbook raises on purpose is a MeshbookError carrying its exit code; this module is the only
place that turns those into messages on stderr and process exit codes.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import NoReturn

import yaml

from meshbook import __version__
from meshbook.errors import ExitCode, MeshbookError, ParameterError
from meshbook.params import SandboxSpeed, load_params, notebook_parameters, params_schema

Handler = Callable[[argparse.Namespace], int]

EXIT_CODES_HELP = """exit codes:
  0  every expectation held
  1  an expectation failed
  2  bad input (parameters, files, arguments); nothing was executed
  3  the cluster, Vault or a kernel was unreachable or died
  4  a timeout
  5  the feature is not available in this version yet
  129, 130, 143  interrupted by SIGHUP, SIGINT (Ctrl-C) or SIGTERM: the run was cleaned up and marked INCOMPLETE
"""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, so every `finally` (sandbox, kernels, INCOMPLETE) runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _signals_unwind() -> Iterator[None]:
    """CI timeouts and `docker stop` send SIGTERM, a closed terminal SIGHUP: both unwind like Ctrl-C.

    SIGINT is set too: Python keeps an inherited SIG_IGN (a job started with `&` by a script, a test
    runner's worker), and the run then ignored `kill -INT` and went on to exit 0 with nothing cleaned up."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    saved = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    saved[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _add_param_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params",
        "-p",
        metavar="FILE",
        action="append",
        default=[],
        help="YAML parameter file (repeatable; later files override earlier ones)",
    )
    parser.add_argument(
        "--set",
        "-s",
        metavar="KEY=VALUE",
        dest="overrides",
        action="append",
        default=[],
        help="override one parameter, e.g. istio.sidecar_mode=native (repeatable; applied last)",
    )


def _cmd_params(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(params_schema(), indent=2))
        return ExitCode.OK
    params = load_params(args.params, args.overrides)
    data = notebook_parameters(params)
    if args.format == "json":
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")
    return ExitCode.OK


def _cmd_run(args: argparse.Namespace) -> int:
    from meshbook.runbook.summary import run_and_summarize

    params = load_params(args.params, args.overrides)  # bad input exits 2 before anything else happens
    return run_and_summarize(params, Path(args.out), only=args.only, keep_sandbox=args.keep_sandbox)


def _cmd_audit(args: argparse.Namespace) -> int:
    from meshbook.audit.fleet import audit_fleet, kubeconfig_contexts
    from meshbook.audit.run import audit_one

    contexts: list[str] = list(args.contexts)
    if args.all_contexts:
        contexts = kubeconfig_contexts(args.kubeconfig)
        if not contexts:
            raise ParameterError([f"kubeconfig {args.kubeconfig or '(default)'}: no contexts to audit"])
    if len(contexts) <= 1:
        return audit_one(args.kubeconfig, contexts[0] if contexts else None, Path(args.out))
    return audit_fleet(args.kubeconfig, contexts, Path(args.out), workers=args.workers)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from meshbook.runbook.summary import print_catalogue

    print_catalogue()
    return ExitCode.OK


def _cmd_manifests(args: argparse.Namespace) -> int:
    from meshbook.manifests import check_name, render, to_yaml

    name = check_name(args.name)  # an unknown name exits 2 before parameters are read
    params = load_params(args.params, args.overrides)
    print(to_yaml(render(name, params)), end="")
    return ExitCode.OK


def _cmd_report(args: argparse.Namespace) -> int:
    from meshbook.report import build_reports

    paths = build_reports([Path(d) for d in args.run_dirs], Path(args.out) if args.out else None)
    for path in paths:
        print(path)
    return ExitCode.OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from meshbook.evidence.manifest import verify_manifest

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise ParameterError([f"{run_dir}: not a run directory"])
    problems = verify_manifest(run_dir)
    for line in problems:
        print(line)
    if problems:
        print(f"meshbook: {run_dir}: {len(problems)} difference(s) from manifest.json", file=sys.stderr)
        return ExitCode.EXPECTATION_FAILED
    print(f"{run_dir}: intact (every file matches manifest.json)")
    return ExitCode.OK


def _cmd_explain(args: argparse.Namespace) -> int:
    from meshbook.report.guide_map import explain_text, find_entries, known_names, markdown_page

    if args.markdown:
        print(markdown_page(), end="")
        return ExitCode.OK
    name = " ".join(args.name)
    entries = find_entries(name)
    if not entries:
        known = ", ".join(known_names())
        problem = f"explain {name!r}: not an object or command of the guide" if name else "explain: give a NAME"
        raise ParameterError([f"{problem}; known names: {known}"])
    print(explain_text(entries), end="")
    return ExitCode.OK


def _cmd_lab(args: argparse.Namespace) -> int:
    from meshbook.lab import run_lab
    from meshbook.sandbox import control

    state = Path(args.state).expanduser().resolve() if args.state else control.default_state_dir()
    extra = args.jupyter_args[1:] if args.jupyter_args[:1] == ["--"] else args.jupyter_args
    return run_lab(
        state,
        speed=args.speed,
        port=args.port,
        notebook_dir=Path(args.notebook_dir) if args.notebook_dir else None,
        token=args.token,
        extra=extra,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshbook",
        description="Executable runbooks for the Bank-Vaults secret webhook on Istio.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"meshbook {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("params", help="validate and show parameters, or print their JSON Schema")
    _add_param_options(p)
    p.add_argument("--schema", action="store_true", help="print the JSON Schema of all parameters")
    p.add_argument("--format", choices=["yaml", "json"], default="yaml", help="output format (default yaml)")
    p.set_defaults(handler=_cmd_params)

    p = sub.add_parser("run", help="execute the runbooks with papermill and write a run directory")
    _add_param_options(p)
    p.add_argument("--only", metavar="NAME", action="append", default=[], help="run only this runbook")
    p.add_argument("--out", metavar="DIR", default="runs", help="parent of run directories (default runs/)")
    p.add_argument("--keep-sandbox", action="store_true", help="leave the run's sandbox running")
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser(
        "audit",
        help="read-only audit of clusters: will every container that asks for a secret get it? (exit 1: errors)",
    )
    p.add_argument(
        "--context", metavar="NAME", dest="contexts", action="append", default=[], help="kube context (repeatable)"
    )
    p.add_argument("--all-contexts", action="store_true", help="every context of the kubeconfig, in parallel")
    p.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--out", metavar="DIR", default="runs", help="parent of run directories (default runs/)")
    p.add_argument("--workers", type=int, default=4, help="contexts audited at once (default 4)")
    p.set_defaults(handler=_cmd_audit)

    p = sub.add_parser("sandbox", help="the built-in local cluster: up, down, status, kubeconfig, install")
    from meshbook.sandbox.cli import add_sandbox_commands
    from meshbook.sandbox_install import add_install_command

    add_install_command(add_sandbox_commands(p))

    p = sub.add_parser("report", help="build report.html, report.md and junit.xml from run directories")
    p.add_argument("run_dirs", metavar="RUN_DIR", nargs="+")
    p.add_argument("--out", metavar="DIR", help="output directory (default: the run directory; needed for several)")
    p.set_defaults(handler=_cmd_report)

    p = sub.add_parser("verify", help="check a run directory against its manifest.json (exit 1 if changed)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.set_defaults(handler=_cmd_verify)

    p = sub.add_parser("explain", help="what replaced an object or command of the guide, and the cell that does it")
    p.add_argument("name", metavar="NAME", nargs="*", help="e.g. meshpolicy, 'backyards mtls', 'helm repo add'")
    p.add_argument("--markdown", action="store_true", help="print the whole mapping as docs/guide-to-today.md")
    p.set_defaults(handler=_cmd_explain)

    p = sub.add_parser("inspect", help="list the runbooks and their parameters")
    p.set_defaults(handler=_cmd_inspect)

    from meshbook.manifests import MANIFEST_NAMES

    p = sub.add_parser("manifests", help="print one of meshbook's manifests as YAML")
    p.add_argument("name", metavar="NAME", help=f"one of: {', '.join(MANIFEST_NAMES)}")
    _add_param_options(p)
    p.set_defaults(handler=_cmd_manifests)

    p = sub.add_parser("lab", help="start (or reuse) a sandbox and JupyterLab on the notebooks; print its URL")
    p.add_argument("--state", metavar="DIR", help="sandbox state directory (default: the default sandbox's)")
    p.add_argument(
        "--speed",
        choices=[s.value for s in SandboxSpeed],
        default=SandboxSpeed.INSTANT.value,
        help="a new sandbox's speed",
    )
    p.add_argument("--port", type=int, help="JupyterLab's port (default 8888, or a free one if taken; 0: any free one)")
    p.add_argument("--notebook-dir", metavar="DIR", help="directory JupyterLab opens (default: notebooks/)")
    p.add_argument("--token", help="JupyterLab's access token (default: a random one, printed in the URL)")
    p.add_argument("jupyter_args", nargs=argparse.REMAINDER, help="after --: more arguments for `jupyter lab`")
    p.set_defaults(handler=_cmd_lab)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return ExitCode.BAD_INPUT
    try:
        with _signals_unwind():
            return int(handler(args))
    except MeshbookError as exc:
        print(f"meshbook: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        print(f"meshbook: interrupted by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + int(signum)


def console() -> NoReturn:
    """The `meshbook` command as a process: `main`, then an exit without the interpreter's teardown
    (`process_exit`), which after a run took longer than writing its reports. Errors and `--help`
    still end through SystemExit, the usual way."""
    from meshbook.process_exit import exit_without_teardown

    exit_without_teardown(main())


if __name__ == "__main__":  # pragma: no cover
    console()

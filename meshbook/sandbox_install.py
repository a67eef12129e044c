"""`meshbook sandbox install istio|bank-vaults`: the objects a real install creates, applied to a sandbox.

The sandbox has no Helm and no istioctl; these commands apply the same kinds of objects those tools
create (see `mesh.istio_objects` and `bankvaults.chart_objects`) with server-side apply, so running
them twice changes nothing. `--set` takes meshbook parameters and, for bank-vaults, the webhook chart's
values (`bankvaults.chart_values`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from meshbook import manifests
from meshbook.bankvaults.chart_objects import bank_vaults_objects
from meshbook.bankvaults.chart_values import params_sets, webhook_values
from meshbook.errors import ExitCode, UnreachableError
from meshbook.mesh.istio_objects import istio_objects
from meshbook.params import RunbookParams, load_params
from meshbook.sandbox import control

if TYPE_CHECKING:  # the Kubernetes client loads when a command runs, not when the CLI's parser is built
    from meshbook.kube.apply import AppliedObject, Applier


def _sandbox_api(state: str | None) -> Applier:
    # Without --state: the sandbox the current KUBECONFIG points at when it is one, else the default one.
    behind_kubeconfig = control.from_kubeconfig(os.environ.get("KUBECONFIG"))
    state_dir = Path(state).expanduser().resolve() if state else (behind_kubeconfig or control.default_state_dir())
    info = control.running(state_dir)
    if info is None:
        raise UnreachableError(f"no sandbox running for {state_dir}; start one with `meshbook sandbox up`")
    from meshbook.kube.apply import Applier
    from meshbook.kube.client import api_client

    return Applier(api_client(info.kubeconfig))


def _print(applied: list[AppliedObject]) -> None:
    for item in applied:
        verb = "created" if item.resource_version_before is None else "configured" if item.changed else "unchanged"
        print(f"{item.ref} {verb}")


def install_istio(params: RunbookParams, applier: Applier) -> list[AppliedObject]:
    return applier.apply_all(istio_objects(params.istio))


def install_bank_vaults(params: RunbookParams, applier: Applier, chart_sets: Sequence[str] = ()) -> list[AppliedObject]:
    """The charts' objects, the webhook's values being what the parameters decide, then `chart_sets`."""
    vault_addr = manifests.vault_addr(params)
    # refused: nothing applied
    values = webhook_values(chart_sets, parameter_sets=params_sets(params.bank_vaults, vault_addr))
    ns = params.bank_vaults.namespace
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    existing = None
    try:
        existing = applier.resource("v1", "Namespace").get(name=ns)
    except Exception:
        existing = None
    applied = [] if existing is not None else [applier.apply(namespace)]
    return applied + applier.apply_all(bank_vaults_objects(params.bank_vaults, vault_addr, values))


def split_sets(sets: Sequence[str]) -> tuple[list[str], list[str]]:
    """`--set` lines as (meshbook parameters, chart values): a key under a parameter section such as
    `bank_vaults.namespace` is a parameter, any other (`secretsMutation`, `env.VAULT_ADDR`) a chart value."""
    parameters = [text for text in sets if text.partition("=")[0].strip().split(".")[0] in RunbookParams.model_fields]
    return parameters, [text for text in sets if text not in parameters]


def _cmd_install(args: argparse.Namespace) -> int:
    overrides, chart_sets = split_sets(args.overrides) if args.component == "bank-vaults" else (args.overrides, [])
    if args.component == "istio":
        if args.sidecar_mode:
            overrides.append(f"istio.sidecar_mode={args.sidecar_mode}")
        if args.hold_app_until_proxy_starts:
            overrides.append("istio.hold_application_until_proxy_starts=true")
    else:
        if args.namespace:
            overrides.append(f"bank_vaults.namespace={args.namespace}")
        if args.pods_failure_policy:  # an alias of --set podsFailurePolicy=...
            chart_sets.insert(0, f"podsFailurePolicy={args.pods_failure_policy}")
    params = load_params(args.params, overrides)
    if args.component == "istio":
        applied = install_istio(params, _sandbox_api(args.state))
    else:
        webhook_values(chart_sets)  # bad values exit 2 before the sandbox is looked for
        applied = install_bank_vaults(params, _sandbox_api(args.state), chart_sets)
    _print(applied)
    return ExitCode.OK


def add_install_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "install", help="install istio or bank-vaults into the sandbox (the objects a real install creates)"
    )
    comp = p.add_subparsers(dest="component", metavar="COMPONENT", required=True)
    for name, text in (("istio", "istiod, CRDs, mesh config, the sidecar injector webhook"),
                       ("bank-vaults", "the vault-operator and vault-secrets-webhook charts' objects")):  # fmt: skip
        c = comp.add_parser(name, help=text)
        c.add_argument(
            "--state",
            metavar="DIR",
            help="sandbox state directory (default: the sandbox $KUBECONFIG points at, else the default sandbox)",
        )
        c.add_argument("--params", "-p", metavar="FILE", action="append", default=[], help="YAML parameter file")
        c.add_argument(
            "--set",
            "-s",
            metavar="KEY=VALUE",
            dest="overrides",
            action="append",
            default=[],
            help="a parameter (e.g. bank_vaults.namespace=vswh)"
            + ("" if name == "istio" else " or a vault-secrets-webhook chart value (e.g. secretsMutation=false)"),
        )
        if name == "istio":
            c.add_argument("--sidecar-mode", choices=["classic", "cni", "native"])
            c.add_argument("--hold-app-until-proxy-starts", action="store_true")
        else:
            c.add_argument("--namespace", metavar="NS", help="release namespace (default vault-system)")
            c.add_argument(
                "--pods-failure-policy", choices=["Ignore", "Fail"], help="same as --set podsFailurePolicy=..."
            )
        c.set_defaults(handler=_cmd_install)

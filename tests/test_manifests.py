"""meshbook's own manifests: the fields each scenario depends on, the CLI, and acceptance by kubectl."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshbook.errors import ParameterError
from meshbook.manifests import (
    DEMO_STARTUP_SECRETS,
    MANIFEST_NAMES,
    Manifest,
    namespace,
    peer_authentication,
    render,
    to_yaml,
)
from meshbook.params import PeerAuthenticationMode, RunbookParams, load_params, notebook_parameters
from tests.conftest import CliResult

ANN = "vault.security.banzaicloud.io/"
CHANGED = [
    "vault.namespace=vault2",
    "bank_vaults.webhook_permissive_scope=port",
    "app.init_container=false",
    "vault.istio_enabled=false",
]

# kind/name of every object each manifest renders with default parameters, in apply order
EXPECTED_OBJECTS = {
    "mesh-mtls": [("PeerAuthentication", "istio-system", "default")],
    "webhook-permissive": [("PeerAuthentication", "vault-system", "vault-secrets-webhook")],
    "rbac": [
        ("ServiceAccount", "vault", "vault"),
        ("Role", "vault", "vault-secrets"),
        ("RoleBinding", "vault", "vault-secrets"),
        ("ClusterRoleBinding", None, "vault-auth-delegator"),
    ],
    "vault-cr": [("PersistentVolumeClaim", "vault", "vault-file"), ("Vault", "vault", "vault")],
    "vault-permissive": [("PeerAuthentication", "vault", "default")],
    "app": [("Deployment", "app", "app")],
    "auditor-rbac": [
        ("Namespace", None, "meshbook-audit"),
        ("ServiceAccount", "meshbook-audit", "meshbook-auditor"),
        ("ClusterRole", None, "meshbook-auditor"),
        ("ClusterRoleBinding", None, "meshbook-auditor"),
    ],
}


@pytest.fixture
def defaults() -> RunbookParams:
    return load_params()


@pytest.fixture
def changed() -> RunbookParams:
    return load_params(overrides=CHANGED)


def one(name: str, params: RunbookParams, kind: str) -> Manifest:
    found = [o for o in render(name, params) if o["kind"] == kind]
    assert len(found) == 1, f"{name}: expected one {kind}, got {len(found)}"
    return found[0]


def identity(obj: Manifest) -> tuple[str, str | None, str]:
    return obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]


# -- each manifest --------------------------------------------------------------------------------


def test_names_and_objects_in_apply_order(defaults: RunbookParams) -> None:
    assert list(MANIFEST_NAMES) == list(EXPECTED_OBJECTS)
    for name, expected in EXPECTED_OBJECTS.items():
        assert [identity(o) for o in render(name, defaults)] == expected, name


def test_every_object_is_labelled_and_uses_no_removed_istio_api(defaults: RunbookParams) -> None:
    for name in MANIFEST_NAMES:
        for obj in render(name, defaults):
            assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "meshbook"
            assert not obj["apiVersion"].startswith("authentication.istio.io"), name


def test_mesh_mtls_follows_the_root_namespace_and_mode() -> None:
    pa = one("mesh-mtls", load_params(), "PeerAuthentication")
    assert pa["apiVersion"] == "security.istio.io/v1"
    assert pa["spec"] == {"mtls": {"mode": "STRICT"}}
    params = load_params(overrides=["istio.namespace=mesh-root", "istio.mesh_mtls_mode=PERMISSIVE"])
    pa = one("mesh-mtls", params, "PeerAuthentication")
    assert identity(pa) == ("PeerAuthentication", "mesh-root", "default")
    assert pa["spec"]["mtls"]["mode"] == "PERMISSIVE"


def test_webhook_permissive_workload_scope(defaults: RunbookParams) -> None:
    spec = one("webhook-permissive", defaults, "PeerAuthentication")["spec"]
    assert spec == {
        "selector": {"matchLabels": {"app.kubernetes.io/name": "vault-secrets-webhook"}},
        "mtls": {"mode": "PERMISSIVE"},
    }


def test_webhook_permissive_port_scope_keeps_the_mesh_mode_elsewhere(changed: RunbookParams) -> None:
    spec = one("webhook-permissive", changed, "PeerAuthentication")["spec"]
    assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": "vault-secrets-webhook"}}
    assert spec["portLevelMtls"] == {"8443": {"mode": "PERMISSIVE"}}
    assert spec["mtls"] == {"mode": "STRICT"}
    relaxed_mesh = load_params(overrides=[*CHANGED, "istio.mesh_mtls_mode=DISABLE"])
    assert one("webhook-permissive", relaxed_mesh, "PeerAuthentication")["spec"]["mtls"] == {"mode": "DISABLE"}
    in_ns = load_params(overrides=["bank_vaults.namespace=vswh"])
    assert one("webhook-permissive", in_ns, "PeerAuthentication")["metadata"]["namespace"] == "vswh"


def test_port_level_mtls_needs_a_selector() -> None:
    with pytest.raises(ValueError, match="selector"):
        peer_authentication("x", "ns", None, port_modes={8443: PeerAuthenticationMode.PERMISSIVE})
    assert "mtls" not in peer_authentication("x", "ns", None)["spec"]


def test_vault_permissive(defaults: RunbookParams, changed: RunbookParams) -> None:
    pa = one("vault-permissive", defaults, "PeerAuthentication")
    assert identity(pa) == ("PeerAuthentication", "vault", "default")
    assert pa["spec"] == {"mtls": {"mode": "PERMISSIVE"}}
    assert one("vault-permissive", changed, "PeerAuthentication")["metadata"]["namespace"] == "vault2"


def test_rbac(defaults: RunbookParams, changed: RunbookParams) -> None:
    role = one("rbac", defaults, "Role")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]
    binding = one("rbac", defaults, "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "vault-secrets"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "vault", "namespace": "vault"}]
    cluster = one("rbac", changed, "ClusterRoleBinding")
    assert "namespace" not in cluster["metadata"]
    assert cluster["roleRef"]["kind"] == "ClusterRole"
    assert cluster["roleRef"]["name"] == "system:auth-delegator"
    assert cluster["subjects"] == [{"kind": "ServiceAccount", "name": "vault", "namespace": "vault2"}]
    assert {o["metadata"].get("namespace") for o in render("rbac", changed)} == {"vault2", None}


def test_vault_cr_defaults(defaults: RunbookParams) -> None:
    pvc = one("vault-cr", defaults, "PersistentVolumeClaim")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"
    cr = one("vault-cr", defaults, "Vault")
    assert cr["apiVersion"] == "vault.banzaicloud.com/v1alpha1"
    spec = cr["spec"]
    assert spec["size"] == 1
    assert spec["image"].startswith("hashicorp/vault:")
    assert spec["bankVaultsImage"].startswith("ghcr.io/bank-vaults/bank-vaults:v")
    assert (spec["serviceAccount"], spec["serviceType"], spec["istioEnabled"]) == ("vault", "ClusterIP", True)
    assert spec["caNamespaces"] == ["vault-system", "app"]
    assert spec["unsealConfig"] == {"kubernetes": {"secretNamespace": "vault"}}
    assert spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert spec["volumeMounts"] == [{"name": "vault-file", "mountPath": "/vault/file"}]
    config = spec["config"]
    assert config["storage"] == {"file": {"path": "/vault/file"}}
    assert config["listener"]["tcp"] == {
        "address": "0.0.0.0:8200",
        "tls_cert_file": "/vault/tls/server.crt",
        "tls_key_file": "/vault/tls/server.key",
    }
    assert (config["api_addr"], config["ui"]) == ("https://vault.vault:8200", True)


def test_vault_cr_external_config(defaults: RunbookParams) -> None:
    ext = one("vault-cr", defaults, "Vault")["spec"]["externalConfig"]
    assert ext["policies"][0]["name"] == "allow_secrets"
    assert 'path "secret/*"' in ext["policies"][0]["rules"]
    for capability in ("create", "read", "update", "delete", "list"):
        assert f'"{capability}"' in ext["policies"][0]["rules"]
    (auth,) = ext["auth"]
    assert auth["type"] == "kubernetes"
    assert auth["roles"] == [
        {
            "name": "default",
            "bound_service_account_names": ["vault-secrets-webhook", "vault", "default"],
            "bound_service_account_namespaces": ["vault-system", "app"],
            "policies": ["allow_secrets"],
            "ttl": "1h",
        }
    ]
    assert ext["secrets"] == [
        {"path": "secret", "type": "kv", "description": "General secrets.", "options": {"version": 2}}
    ]
    assert ext["startupSecrets"] == [
        {"type": "kv", "path": "secret/data/accounts/aws", "data": {"data": dict(DEMO_STARTUP_SECRETS)}}
    ]


def test_vault_cr_follows_parameters(changed: RunbookParams) -> None:
    assert {o["metadata"]["namespace"] for o in render("vault-cr", changed)} == {"vault2"}
    spec = one("vault-cr", changed, "Vault")["spec"]
    assert spec["istioEnabled"] is False
    assert spec["unsealConfig"]["kubernetes"]["secretNamespace"] == "vault2"
    assert spec["config"]["api_addr"] == "https://vault.vault2:8200"
    params = load_params(
        overrides=[
            "vault.role=reader",
            "vault.secret_path=kv/data/team/db",
            "app.namespace=shop",
            "app.service_account=shop-sa",
            "bank_vaults.namespace=vswh",
        ]
    )
    spec = one("vault-cr", params, "Vault")["spec"]
    assert spec["caNamespaces"] == ["vswh", "shop"]
    ext = spec["externalConfig"]
    role = ext["auth"][0]["roles"][0]
    assert role["name"] == "reader"
    assert role["bound_service_account_names"] == ["vault-secrets-webhook", "vault", "shop-sa"]
    assert role["bound_service_account_namespaces"] == ["vswh", "shop"]
    assert ext["secrets"][0]["path"] == "kv"
    assert 'path "kv/*"' in ext["policies"][0]["rules"]
    assert ext["startupSecrets"][0]["path"] == "kv/data/team/db"


def test_vault_cr_refuses_a_path_that_is_not_kv_v2() -> None:
    with pytest.raises(ParameterError, match=r"vault\.secret_path: expected a KV version 2 path"):
        render("vault-cr", load_params(overrides=["vault.secret_path=secret/accounts/aws"]))


def test_demo_secret_values_live_only_in_the_vault_cr(defaults: RunbookParams) -> None:
    assert dict(DEMO_STARTUP_SECRETS) == {"AWS_ACCESS_KEY_ID": "secretId", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}
    dumped_params = json.dumps(notebook_parameters(defaults))
    for name in MANIFEST_NAMES:
        text = to_yaml(render(name, defaults))
        for value in DEMO_STARTUP_SECRETS.values():
            assert (value in text) == (name == "vault-cr"), (name, value)
            assert value not in dumped_params


def test_app_defaults(defaults: RunbookParams) -> None:
    deploy = one("app", defaults, "Deployment")
    assert deploy["spec"]["selector"]["matchLabels"] == deploy["spec"]["template"]["metadata"]["labels"]
    pod = deploy["spec"]["template"]
    assert pod["metadata"]["annotations"] == {
        f"{ANN}vault-addr": "https://vault.vault:8200",
        f"{ANN}vault-tls-secret": "vault-tls",
    }
    assert pod["spec"]["serviceAccountName"] == "default"
    (init,) = pod["spec"]["initContainers"]
    (main,) = pod["spec"]["containers"]
    assert (init["name"], main["name"]) == ("init-ubuntu", "app")
    assert init["image"].split(":")[0] == "ubuntu"
    assert main["image"].split(":")[0] == "alpine"
    assert init["command"] == ["sh", "-c", "echo $AWS_SECRET_ACCESS_KEY && echo initContainers ready"]
    assert main["command"] == ["sh", "-c", "echo $AWS_SECRET_ACCESS_KEY && echo going to sleep... && sleep 10000"]
    env = [{"name": "AWS_SECRET_ACCESS_KEY", "value": "vault:secret/data/accounts/aws#AWS_SECRET_ACCESS_KEY"}]
    assert init["env"] == env
    assert main["env"] == env


def test_app_follows_parameters(changed: RunbookParams) -> None:
    pod = one("app", changed, "Deployment")["spec"]["template"]
    assert "initContainers" not in pod["spec"]
    assert pod["metadata"]["annotations"][f"{ANN}vault-addr"] == "https://vault.vault2:8200"
    assert f"{ANN}vault-role" not in pod["metadata"]["annotations"]
    params = load_params(
        overrides=["app.name=shop", "app.namespace=store", "app.service_account=shop-sa", "vault.role=reader"]
    )
    deploy = one("app", params, "Deployment")
    assert identity(deploy) == ("Deployment", "store", "shop")
    pod = deploy["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == "shop-sa"
    assert pod["metadata"]["annotations"][f"{ANN}vault-role"] == "reader"
    named_like_role = load_params(overrides=["app.service_account=reader", "vault.role=reader"])
    annotations = one("app", named_like_role, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert f"{ANN}vault-role" not in annotations


def test_app_echoes_the_configured_key() -> None:
    params = load_params(overrides=["vault.secret_key=AWS_ACCESS_KEY_ID"])
    main = one("app", params, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert main["env"] == [{"name": "AWS_ACCESS_KEY_ID", "value": "vault:secret/data/accounts/aws#AWS_ACCESS_KEY_ID"}]
    assert main["command"][2].startswith("echo $AWS_ACCESS_KEY_ID && ")
    with pytest.raises(ParameterError, match="shell variable name"):
        render("app", load_params(overrides=["vault.secret_key=aws.key"]))


def test_namespace_labels() -> None:
    assert namespace("app", True)["metadata"]["labels"] == {
        "name": "app",
        "istio-injection": "enabled",
        "app.kubernetes.io/managed-by": "meshbook",
    }
    outside = namespace("vault", False)
    assert identity(outside) == ("Namespace", None, "vault")
    assert "istio-injection" not in outside["metadata"]["labels"]
    assert outside["metadata"]["labels"]["name"] == "vault"


def test_unknown_name_lists_the_known_ones(defaults: RunbookParams) -> None:
    with pytest.raises(ParameterError) as caught:
        render("vault-crd", defaults)
    message = str(caught.value)
    assert "'vault-crd'" in message
    assert "did you mean vault-cr?" in message
    assert all(name in message for name in MANIFEST_NAMES)


# -- YAML -----------------------------------------------------------------------------------------


def test_to_yaml_documents_and_key_order(defaults: RunbookParams) -> None:
    shuffled = {"spec": {"b": 1}, "metadata": {"labels": {}, "name": "x"}, "kind": "K", "apiVersion": "v1"}
    text = to_yaml([shuffled, *render("rbac", defaults)])
    assert text.startswith("apiVersion: v1\nkind: K\nmetadata:\n  name: x\n")
    assert text.count("\n---\n") == 4
    assert "&id" not in text
    assert [d["kind"] for d in yaml.safe_load_all(text)] == [
        "K",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRoleBinding",
    ]
    assert to_yaml([]) == ""


def test_to_yaml_round_trips_every_manifest(changed: RunbookParams) -> None:
    for name in MANIFEST_NAMES:
        objects = render(name, changed)
        assert list(yaml.safe_load_all(to_yaml(objects))) == objects, name
    rules = to_yaml(render("vault-cr", changed))
    assert '      rules: |\n        path "secret/*" {\n' in rules


# -- CLI ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MANIFEST_NAMES)
def test_cli_prints_each_manifest(run_cli: Callable[..., CliResult], name: str) -> None:
    result = run_cli("manifests", name)
    assert result.code == 0, result.err
    docs = list(yaml.safe_load_all(result.out))
    assert [identity(d) for d in docs] == EXPECTED_OBJECTS[name]
    assert result.err == ""


def test_cli_applies_params_files_and_overrides(run_cli: Callable[..., CliResult], tmp_path: Path) -> None:
    params_file = tmp_path / "p.yaml"
    params_file.write_text("vault:\n  namespace: vault2\n  istio_enabled: false\n")
    result = run_cli("manifests", "vault-cr", "--params", str(params_file), "--set", "app.namespace=shop")
    assert result.code == 0, result.err
    pvc, cr = yaml.safe_load_all(result.out)
    assert pvc["metadata"]["namespace"] == cr["metadata"]["namespace"] == "vault2"
    assert cr["spec"]["istioEnabled"] is False
    assert cr["spec"]["caNamespaces"] == ["vault-system", "shop"]
    port = run_cli("manifests", "webhook-permissive", "-s", "bank_vaults.webhook_permissive_scope=port")
    assert next(yaml.safe_load_all(port.out))["spec"]["portLevelMtls"] == {"8443": {"mode": "PERMISSIVE"}}


def test_cli_unknown_name_exits_2(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("manifests", "policy")
    assert result.code == 2
    assert result.out == ""
    assert "unknown manifest 'policy'" in result.err
    assert all(name in result.err for name in MANIFEST_NAMES)


def test_cli_bad_params_exit_2_like_params(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("manifests", "app", "--set", "vault.namespace=Not Valid")
    assert result.code == 2
    assert result.out == ""
    assert result.err == run_cli("params", "--set", "vault.namespace=Not Valid").err
    assert "--set vault.namespace=Not Valid: vault.namespace: expected a value matching" in result.err
    missing = run_cli("manifests", "app", "--params", "/nonexistent/params.yaml")
    assert (missing.code, missing.err.strip()) == (2, "meshbook: /nonexistent/params.yaml: file not found")


def test_cli_help_lists_the_names(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("manifests", "--help")
    assert result.code == 0
    assert "mesh-mtls, webhook-permissive" in " ".join(result.out.split())


# -- kubectl, against the sandbox (client-side dry run needs a server for discovery) --------------


def _crd(group: str, kind: str, plural: str, version: str) -> dict[str, Any]:
    """Schemaless stand-ins for the Istio and Bank-Vaults CRDs, enough for discovery and dry runs."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from meshbook.sandbox import control
    from tests.sandbox.conftest import KUBECTL, start_sandbox

    if not Path(KUBECTL).exists():
        pytest.skip("kubectl not installed")
    running = start_sandbox(tmp_path_factory.mktemp("manifests"))
    try:
        crds = [
            _crd("security.istio.io", "PeerAuthentication", "peerauthentications", "v1"),
            _crd("vault.banzaicloud.com", "Vault", "vaults", "v1alpha1"),
        ]
        running.kubectl("apply", "-f", "-", input=to_yaml(crds))
        for crd in crds:
            running.kubectl("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=60s")
        names = ("istio-system", "vault-system", "vault", "vault2", "app", "meshbook-audit")
        running.kubectl("apply", "-f", "-", input=to_yaml([namespace(n, n != "vault") for n in names]))
        yield running
    finally:
        running.api.close()
        control.down(running.info.state_dir)


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [[], CHANGED], ids=["defaults", "changed"])
@pytest.mark.parametrize("name", MANIFEST_NAMES)
def test_kubectl_accepts_each_manifest(kube: Any, name: str, overrides: list[str]) -> None:
    """Client dry run (as asked), then a server dry run, then a real apply that a re-apply leaves unchanged."""
    objects = render(name, load_params(overrides=overrides))
    text = to_yaml(objects)
    created = [f"{o['kind'].lower()}" for o in objects]
    out = kube.kubectl("apply", "--dry-run=client", "--validate=false", "-f", "-", input=text).stdout
    assert out.count("(dry run)") == len(objects), out
    assert all(kind in out for kind in created), out
    out = kube.kubectl("apply", "--dry-run=server", "-f", "-", input=text).stdout
    assert out.count("(server dry run)") == len(objects), out
    kube.kubectl("apply", "-f", "-", input=text)
    diff = kube.kubectl("diff", "-f", "-", input=text, check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert kube.kubectl("apply", "-f", "-", input=text).stdout.count(" unchanged") == len(objects)

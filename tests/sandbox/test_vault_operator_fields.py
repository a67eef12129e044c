"""The sandbox's Bank-Vaults operator honours the Vault CR's fields that change what a cluster shows:
labels and annotations where upstream puts them, `secretInitsConfig`, the Ingress, `config` applied to
OpenBao (or named in a Warning Event when it cannot be), and the configurer's externalConfig for PKI,
transit, kv v2, approle, userpass and groups, checked with kubectl and with the real OpenBao."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests
import yaml
from cryptography import x509

from meshbook.sandbox import control
from meshbook.sandbox.pki import issue_ca, issue_server_cert
from meshbook.sandbox.vault.openbao import OpenBaoServer
from meshbook.sandbox.vault.operations import ROOT_TOKEN_KEY, MemoryKeysStore, configure, init_and_unseal
from meshbook.sandbox.vault.server_config import server_settings
from tests.sandbox.conftest import KUBECTL, RunningSandbox, start_sandbox
from tests.sandbox.test_scenario_failures import vault_api
from tests.sandbox.test_scenarios import SECRET, WAIT, apply_manifest, meshbook, rendered

UNKNOWN_ENGINE = {"type": "no-such-engine", "path": "nosuch"}
LOGIN_WORD = "correct-horse-battery"  # userpass password of the test's own user (not a real credential)
EXTERNAL_CONFIG_ADDITIONS: dict[str, Any] = {
    "secrets": [
        {
            "path": "pki",
            "type": "pki",
            "description": "Vault PKI Backend",
            "config": {"default_lease_ttl": "168h", "max_lease_ttl": "720h"},
            "configuration": {
                "config": [
                    {
                        "name": "urls",
                        "issuing_certificates": "https://vault.vault:8200/v1/pki/ca",
                        "crl_distribution_points": "https://vault.vault:8200/v1/pki/crl",
                    }
                ],
                "root/generate": [{"name": "internal", "common_name": "vault.vault"}],
                "roles": [{"name": "default", "allowed_domains": "localhost,pod,svc,vault", "allow_subdomains": True}],
            },
        },
        {"path": "transit", "type": "transit", "configuration": {"keys": [{"name": "app", "type": "aes256-gcm96"}]}},
        {"path": "database", "type": "database", "configuration": {"config": [{"name": "postgres"}]}},
    ],
    "auth": [
        {"type": "approle", "roles": [{"name": "app", "token_policies": ["allow_secrets"], "token_ttl": "1h"}]},
        {"type": "userpass", "users": [{"username": "alice", "password": LOGIN_WORD, "token_policies": ["default"]}]},
    ],
    "groups": [{"name": "admins", "type": "external", "policies": ["allow_secrets"]}],
    "group-aliases": [{"name": "admins-alias", "mountpath": "userpass", "group": "admins"}],
}
FIELDS: dict[str, Any] = {
    "annotations": {"example.com/common": "everywhere"},
    "vaultLabels": {"example.com/tier": "secrets"},
    "vaultAnnotations": {"example.com/vault-note": "vault-side"},
    "vaultConfigurerLabels": {"example.com/role": "configurer"},
    "vaultConfigurerAnnotations": {"example.com/configurer-note": "configurer-side"},
    "secretInitsConfig": [{"name": "SECRET_INIT_LOG_LEVEL", "value": "debug"}],
    "ingress": {"annotations": {"example.com/ingress-note": "edge"}, "spec": {}},
}


def vault_cr(*, broken: bool) -> str:
    """meshbook's Vault CR with the fields under test; `broken` adds a listener address the sandbox cannot
    use and a secrets engine type OpenBao does not have."""
    objects = list(yaml.safe_load_all(rendered("vault-cr")))
    for obj in objects:
        if obj["kind"] != "Vault":
            continue
        spec = obj["spec"]
        spec.update(copy.deepcopy(FIELDS))
        spec["config"]["default_lease_ttl"] = "2h"
        external = spec["externalConfig"]
        additions = copy.deepcopy(EXTERNAL_CONFIG_ADDITIONS)
        external["secrets"] += additions.pop("secrets")
        external["auth"] += additions.pop("auth")
        external.update(additions)
        if broken:
            spec["config"]["listener"]["tcp"]["address"] = "0.0.0.0:8300"
            external["secrets"].append(UNKNOWN_ENGINE)
    return yaml.safe_dump_all(objects)


def wait_log_line(sandbox: RunningSandbox, target: str, needle: str, timeout: float = 180) -> str:
    """Follow `kubectl logs -f` until a line contains `needle`; that line (the stream ends the wait)."""
    env = {
        **os.environ,
        "KUBECONFIG": str(sandbox.kubeconfig),
        "KUBECACHEDIR": str(sandbox.info.state_dir / "kubectl-cache"),
    }
    proc = subprocess.Popen([KUBECTL, "logs", "-f", "-n", "vault", target], stdout=subprocess.PIPE, text=True, env=env)
    timer = threading.Timer(timeout, proc.kill)  # a quiet stream never yields a line to check a deadline on
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if needle in line:
                return line
    finally:
        timer.cancel()
        proc.kill()
        proc.wait()
    raise AssertionError(f"{target}'s log had no line with {needle!r} within {timeout}s")


def kubectl_json(sandbox: RunningSandbox, *args: str) -> Any:
    return json.loads(sandbox.kubectl("get", *args, "-n", "vault", "-o", "json").stdout)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """One sandbox with Bank-Vaults (no Istio) and the broken Vault CR, Ready."""
    state = tmp_path_factory.mktemp("sandbox")
    running = start_sandbox(state)
    try:
        running.kubectl("create", "namespace", "vault-system")
        meshbook(running, "sandbox", "install", "bank-vaults", "--state", str(state))
        running.kubectl("rollout", "status", "deployment/vault-operator", "-n", "vault-system", WAIT)
        running.kubectl("create", "namespace", "vault")
        apply_manifest(running, "rbac")
        running.kubectl("apply", "-f", "-", input=vault_cr(broken=True))
        running.kubectl("wait", "--for=create", "pod/vault-0", "-n", "vault", WAIT)
        running.kubectl("wait", "--for=condition=Ready", "pod/vault-0", "-n", "vault", WAIT)
        running.kubectl("rollout", "status", "deployment/vault-configurer", "-n", "vault", WAIT)
        yield running
    finally:
        running.api.close()
        control.down(state)


@pytest.fixture(scope="module")
def configured(sandbox: RunningSandbox) -> RunningSandbox:
    """The CR fixed (the unknown engine removed): the configurer applies all of externalConfig."""
    sandbox.kubectl("apply", "-f", "-", input=vault_cr(broken=False))
    wait_log_line(sandbox, "deployment/vault-configurer", "successfully configured vault")
    return sandbox


@pytest.fixture
def openbao(configured: RunningSandbox, tmp_path: Path) -> Iterator[hvac.Client]:
    with vault_api(configured, tmp_path) as api:
        yield api


# -- what cannot apply is said, not ignored ---------------------------------------------------------


def test_server_settings_split_what_applies_from_what_cannot() -> None:
    settings = server_settings(
        {
            "storage": {"file": {"path": "/vault/file"}},
            "listener": {"tcp": {"address": "0.0.0.0:8300", "tls_cert_file": "/vault/tls/server.crt"}},
            "seal": {"awskms": {}},
            "ui": True,
            "default_lease_ttl": "2h",
        }
    )
    assert settings.applied == {"ui": True, "default_lease_ttl": "2h"}
    assert [note.split(":")[0] for note in settings.not_applied] == [
        "config.storage.file",
        "config.listener.tcp.address",
        "config.seal",
    ]
    assert server_settings({"listener": {"tcp": {"address": "0.0.0.0:8200"}}}).not_applied == []


@pytest.mark.slow
def test_config_field_that_cannot_apply_is_a_warning_event_naming_it(sandbox: RunningSandbox) -> None:
    events = kubectl_json(sandbox, "events")["items"]
    messages = [
        e["message"]
        for e in events
        if e["reason"] == "ConfigNotApplied" and e["type"] == "Warning" and e["involvedObject"]["kind"] == "Vault"
    ]
    assert len(messages) == 1, messages
    assert "config.listener.tcp.address: '0.0.0.0:8300' not applied" in messages[0]
    assert "config.storage.file: not applied" in messages[0]
    assert "config.ui" not in messages[0] and "config.api_addr" not in messages[0]


@pytest.mark.slow
def test_unknown_secrets_engine_type_is_the_configurers_error(sandbox: RunningSandbox) -> None:
    # The configurer retries: an earlier attempt may fail for another reason (on a busy machine OpenBao can
    # answer 500 while its raft node takes the lead), so wait for the attempt that reaches the engine.
    line = wait_log_line(sandbox, "deployment/vault-configurer", "enable secrets engine (sys/mounts/nosuch)")
    assert 'level=error msg="error configuring vault"' in line
    assert "no secrets engine of type 'no-such-engine'" in line


# -- the objects the operator creates ---------------------------------------------------------------


@pytest.mark.slow
def test_labels_and_annotations_land_where_upstream_puts_them(configured: RunningSandbox) -> None:
    vault_side = [
        kubectl_json(configured, "statefulset", "vault"),
        kubectl_json(configured, "service", "vault"),
        kubectl_json(configured, "secret", "vault-tls"),
        kubectl_json(configured, "pod", "vault-0"),
    ]
    for obj in vault_side:
        meta = obj["metadata"]
        assert meta["labels"]["example.com/tier"] == "secrets", obj["kind"]
        assert "example.com/role" not in meta["labels"], obj["kind"]
        assert meta["annotations"]["example.com/common"] == "everywhere", obj["kind"]
        assert meta["annotations"]["example.com/vault-note"] == "vault-side", obj["kind"]
    configurer = kubectl_json(configured, "deployment", "vault-configurer")
    pods = kubectl_json(configured, "pods", "-l", "app.kubernetes.io/name=vault-configurator")["items"]
    for meta in [configurer["metadata"], configurer["spec"]["template"]["metadata"], pods[0]["metadata"]]:
        assert meta["labels"]["example.com/role"] == "configurer"
        assert "example.com/tier" not in meta["labels"]
        assert meta["annotations"] == {"example.com/configurer-note": "configurer-side"} | {
            k: v for k, v in meta["annotations"].items() if k.startswith("deployment.kubernetes.io/")
        }
    listed = configured.kubectl("get", "pods", "-n", "vault", "-l", "example.com/tier=secrets", "-o", "name")
    assert listed.stdout.split() == ["pod/vault-0"]


@pytest.mark.slow
def test_secret_inits_config_is_env_of_vault_and_config_templating(configured: RunningSandbox) -> None:
    spec = kubectl_json(configured, "statefulset", "vault")["spec"]["template"]["spec"]
    wanted = {"name": "SECRET_INIT_LOG_LEVEL", "value": "debug"}
    by_name = {c["name"]: c for c in [*spec["containers"], *spec["initContainers"]]}
    assert wanted in by_name["vault"]["env"]
    assert wanted in by_name["config-templating"]["env"]
    assert wanted not in by_name["bank-vaults"]["env"]


@pytest.mark.slow
def test_ingress_routes_to_the_vault_service(configured: RunningSandbox) -> None:
    ingress = kubectl_json(configured, "ingress", "vault")
    assert ingress["spec"]["defaultBackend"] == {"service": {"name": "vault", "port": {"number": 8200}}}
    annotations = ingress["metadata"]["annotations"]
    assert annotations["example.com/ingress-note"] == "edge"
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
    assert ingress["metadata"]["ownerReferences"][0]["kind"] == "Vault"
    service = kubectl_json(configured, "service", "vault")
    assert service["metadata"]["annotations"]["cloud.google.com/app-protocols"] == '{"https-api-port":"HTTPS"}'


# -- the configurer's externalConfig in the real OpenBao --------------------------------------------


@pytest.mark.slow
def test_pki_has_a_root_ca_and_the_role(openbao: hvac.Client, tmp_path: Path) -> None:
    # Unauthenticated, as any client fetches a CA.
    response = requests.get(f"{openbao.url}/v1/pki/ca/pem", verify=str(tmp_path / "vault-ca.crt"), timeout=30)
    assert response.status_code == 200, response.status_code
    certificate = x509.load_pem_x509_certificate(response.content)
    assert certificate.subject.rfc4514_string() == "CN=vault.vault"
    role = openbao.read("pki/roles/default")["data"]
    assert role["allowed_domains"] == ["localhost", "pod", "svc", "vault"] and role["allow_subdomains"] is True
    urls = openbao.read("pki/config/urls")["data"]
    assert urls["issuing_certificates"] == ["https://vault.vault:8200/v1/pki/ca"]


@pytest.mark.slow
def test_transit_key_groups_and_config_applied(openbao: hvac.Client) -> None:
    assert openbao.read("transit/keys/app")["data"]["type"] == "aes256-gcm96"
    group = openbao.read("identity/group/name/admins")["data"]
    assert group["policies"] == ["allow_secrets"] and group["alias"]["name"] == "admins-alias"
    tune = openbao.read("sys/auth/token/tune")["data"]
    assert tune["default_lease_ttl"] == 7200  # config.default_lease_ttl: 2h, the system default
    assert "database/" in openbao.sys.list_mounted_secrets_engines()["data"]


@pytest.mark.slow
def test_approle_and_userpass_logins(openbao: hvac.Client, configured: RunningSandbox, tmp_path: Path) -> None:
    ca = str(tmp_path / "vault-ca.crt")  # written by vault_api
    role_id = openbao.read("auth/approle/role/app/role-id")["data"]["role_id"]
    secret_id = openbao.write("auth/approle/role/app/secret-id")["data"]["secret_id"]
    app = hvac.Client(url=openbao.url, verify=ca, timeout=30)
    try:
        app.auth.approle.login(role_id=role_id, secret_id=secret_id)
        value = app.secrets.kv.v2.read_secret_version(path="accounts/aws", raise_on_deleted_version=True)
        assert value["data"]["data"]["AWS_SECRET_ACCESS_KEY"] == SECRET
        with pytest.raises(hvac.exceptions.Forbidden):
            app.read("pki/roles/default")
    finally:
        app.adapter.close()
    login = hvac.Client(url=openbao.url, verify=ca, timeout=30)
    try:
        login.auth.userpass.login(username="alice", password=LOGIN_WORD)
        assert login.is_authenticated()
    finally:
        login.adapter.close()
    log = configured.kubectl("logs", "-n", "vault", "deployment/vault-configurer").stdout
    assert LOGIN_WORD not in log and "database/ configuration needs a database server" in log


@pytest.mark.slow
def test_second_configure_keeps_the_root_ca_and_changes_nothing(tmp_path: Path) -> None:
    """Bank-Vaults configures in a loop: a second pass must not generate another root CA."""
    ca_pem, ca_key = issue_ca("vault-ca")
    cert_pem, key_pem = issue_server_cert(ca_pem, ca_key, "vault", ["vault"], ["127.0.0.1"])
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca_pem)
    external = {"secrets": copy.deepcopy(EXTERNAL_CONFIG_ADDITIONS["secrets"][:2])}
    with OpenBaoServer(settings={"default_lease_ttl": "2h"}) as bao:
        bao.start(tmp_path / "vault-0", cert_pem, key_pem)
        bao.wait_listening(timeout=60)
        store = MemoryKeysStore()
        init_and_unseal(bao.address, ca_file, store)
        keys = store.load()
        assert keys is not None
        first = configure(bao.address, ca_file, keys[ROOT_TOKEN_KEY], external, "https://127.0.0.1:1", "")
        assert "pki/root/generate/internal written" in first and "transit/keys/app written" in first
        ca_before = requests.get(f"{bao.address}/v1/pki/ca/pem", verify=str(ca_file), timeout=30).text
        second = configure(bao.address, ca_file, keys[ROOT_TOKEN_KEY], external, "https://127.0.0.1:1", "")
        assert "pki/root/generate/internal already generated" in second
        assert "pki/roles/default unchanged" in second and "pki/config/urls unchanged" in second
        assert not [action for action in second if action.endswith("written")], second
        assert requests.get(f"{bao.address}/v1/pki/ca/pem", verify=str(ca_file), timeout=30).text == ca_before

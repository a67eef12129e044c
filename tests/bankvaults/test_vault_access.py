"""VaultAccess and SecretValue: secret-free text forms, errors, and real Vault access over port-forward."""

from __future__ import annotations

import copy
import pickle
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hvac.exceptions
import pytest
import requests
from kubernetes import client

from meshbook.bankvaults.secret_value import SecretValue, scrub
from meshbook.bankvaults.vault_access import VaultAccess
from meshbook.errors import MeshbookError, UnreachableError
from meshbook.kube.portforward import PortForwarder
from meshbook.manifests import DEMO_STARTUP_SECRETS
from meshbook.params import RunbookParams, load_params
from tests.bankvaults import assert_no_secret, root_token, scenario_one
from tests.sandbox.conftest import RunningSandbox

PATH = "secret/data/accounts/aws"
KEY = "AWS_SECRET_ACCESS_KEY"
DEMO = DEMO_STARTUP_SECRETS[KEY]
WAIT = 30.0


# -- SecretValue -----------------------------------------------------------------------------------


def test_secret_value_text_forms_never_show_the_value() -> None:
    value = SecretValue("s3cr3t-Value!")
    shown = "<secret 13 chars>"
    assert repr(value) == shown
    assert str(value) == shown
    assert f"{value}" == shown
    assert f"{value!r}" == shown
    assert f"{value:>40}" == shown
    assert "%s|%r" % (value, value) == f"{shown}|{shown}"  # noqa: UP031 - the %-operator is a display path too
    assert "{}".format(value) == shown  # noqa: UP032
    assert str([value]) == f"[{shown}]"
    assert str({"k": value}) == f"{{'k': {shown}}}"

    @dataclass
    class Holder:
        secret: SecretValue

    assert repr(Holder(value)).endswith(f"(secret={shown})")
    assert len(value) == 13
    assert value.reveal() == "s3cr3t-Value!"


def test_secret_value_comparisons() -> None:
    assert SecretValue("a1") == SecretValue("a1")
    assert SecretValue("a1") != SecretValue("a2")
    assert SecretValue("a1") != "a1"  # a plain str is never equal: compare with matches()
    assert SecretValue("a1").matches("a1") is True
    assert SecretValue("a1").matches("a1 ") is False
    with pytest.raises(TypeError):
        hash(SecretValue("a1"))


def test_secret_value_stays_in_process() -> None:
    value = SecretValue("s3cr3t")
    with pytest.raises(TypeError) as info:
        pickle.dumps(value)
    assert str(info.value) == "a SecretValue cannot be pickled: secrets stay in this process"
    assert copy.copy(value) is value
    assert copy.deepcopy({"v": value})["v"] is value
    with pytest.raises(TypeError) as wrong:
        SecretValue(b"bytes")  # type: ignore[arg-type]
    assert str(wrong.value) == "a secret value must be text, got bytes"


def test_scrub_replaces_every_known_secret() -> None:
    text = scrub("token hvs.ABC and value s3cr3t, again s3cr3t", [SecretValue("hvs.ABC"), SecretValue("s3cr3t")])
    assert text == "token <redacted> and value <redacted>, again <redacted>"
    assert scrub("nothing here", [SecretValue("")]) == "nothing here"


# -- VaultAccess without a cluster ------------------------------------------------------------------


@pytest.fixture
def offline() -> Iterator[VaultAccess]:
    api = client.ApiClient()
    try:
        yield VaultAccess(load_params(), api)
    finally:
        api.close()


def test_repr_before_open_and_client_guard(offline: VaultAccess) -> None:
    assert repr(offline) == "VaultAccess(address=None, via='port-forward vault/vault-0:8200', token=<hidden>, closed)"
    with pytest.raises(MeshbookError) as info:
        offline.client  # noqa: B018
    assert str(info.value) == "VaultAccess is not open; use `with VaultAccess(params, api) as vault:`"


def test_debug_logging_client_is_refused() -> None:
    config = client.Configuration()
    config.debug = True
    api = client.ApiClient(configuration=config)
    try:
        with pytest.raises(MeshbookError) as info:
            VaultAccess(load_params(), api).open()
        assert str(info.value) == (
            "the kubernetes client has debug logging on, which would log Secret contents; "
            "turn it off (Configuration.debug = False) before reading Vault's root token"
        )
    finally:
        config.debug = False
        api.close()


class _StubSys:
    def __init__(self, devices: dict[str, Any]) -> None:
        self.devices = devices
        self.hashed: list[tuple[str, str]] = []

    def list_enabled_audit_devices(self) -> dict[str, Any]:
        return self.devices

    def calculate_hash(self, path: str, input_to_hash: str) -> dict[str, Any]:
        self.hashed.append((path, input_to_hash))
        return {"data": {"hash": "hmac-sha256:8f1e"}}


class _StubClient:
    def __init__(self, devices: dict[str, Any], error: Exception | None = None) -> None:
        self.sys = _StubSys(devices)
        self.error = error

    def read(self, path: str) -> Any:
        assert self.error is not None
        raise self.error


def test_audit_hash_uses_the_first_audit_device(offline: VaultAccess) -> None:
    stub = _StubClient({"data": {"syslog/": {"type": "syslog"}, "file/": {"type": "file"}}})
    offline._client = stub
    assert offline.audit_hash(SecretValue("s3cr3t")) == "hmac-sha256:8f1e"
    assert stub.sys.hashed == [("file", "s3cr3t")]
    offline._client = _StubClient({"data": {}})
    assert offline.audit_hash("s3cr3t") is None


def test_vault_error_text_is_scrubbed(offline: VaultAccess) -> None:
    offline._secrets.append(SecretValue("hvs.rootTOKEN"))
    offline._client = _StubClient({}, hvac.exceptions.InternalServerError(errors=["boom near hvs.rootTOKEN"]))
    with pytest.raises(MeshbookError) as info:
        offline.read_secret(PATH, KEY)
    assert str(info.value) == f"Vault read of {PATH}: InternalServerError: boom near <redacted>"
    assert info.value.__cause__ is None and info.value.__suppress_context__ is True


def test_connection_failure_is_unreachable(offline: VaultAccess) -> None:
    offline.address = "https://127.0.0.1:1"
    offline._client = _StubClient({}, requests.exceptions.ConnectionError("refused"))
    with pytest.raises(UnreachableError) as info:
        offline.read_secret(PATH, KEY)
    assert str(info.value) == (
        f"Vault read of {PATH}: cannot reach https://127.0.0.1:1 (port-forward vault/vault-0:8200): ConnectionError"
    )


# -- against the guide's scenario 1 on a sandbox (real OpenBao behind vault-0) -----------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with scenario_one(tmp_path_factory.mktemp("vault-access")) as running:
        yield running


@pytest.fixture(scope="module")
def token(sandbox: RunningSandbox) -> str:
    return root_token(sandbox)


PARAMS = RunbookParams()


@pytest.mark.slow
def test_reads_the_demo_secret_through_port_forward(sandbox: RunningSandbox) -> None:
    with VaultAccess(PARAMS, sandbox.api) as vault:
        assert vault.via == "port-forward vault/vault-0:8200"
        assert vault.address is not None and vault.address.startswith("https://127.0.0.1:")
        value = vault.read_secret(PATH, KEY)
        assert value.reveal() == DEMO
        assert vault.read_secret(PATH, "AWS_ACCESS_KEY_ID").reveal() == DEMO_STARTUP_SECRETS["AWS_ACCESS_KEY_ID"]
        # the caller's ApiClient is untouched by the port-forward (which swaps call_api on its own client)
        assert vault._forwarder is not None and vault._forwarder._api is not sandbox.api
        pods = client.CoreV1Api(sandbox.api).list_namespaced_pod("vault")
        assert "vault-0" in [pod.metadata.name for pod in pods.items]


@pytest.mark.slow
def test_status_is_initialised_and_unsealed(sandbox: RunningSandbox) -> None:
    with VaultAccess(PARAMS, sandbox.api) as vault:
        status = vault.status()
    assert sorted(status) == ["cluster_id", "initialized", "sealed", "version"]
    assert (status["initialized"], status["sealed"]) == (True, False)
    assert str(uuid.UUID(status["cluster_id"])) == status["cluster_id"]
    assert status["version"].count(".") == 2 and status["version"].split(".")[0].isdigit()


@pytest.mark.slow
def test_no_text_form_shows_the_token_or_values(sandbox: RunningSandbox, token: str) -> None:
    secrets = {"root token": token, "demo value": DEMO}
    with VaultAccess(PARAMS, sandbox.api) as vault:
        value = vault.read_secret(PATH, KEY)
        for text, where in (
            (repr(vault), "repr(VaultAccess)"),
            (str(vault), "str(VaultAccess)"),
            (repr(vars(vault)), "the VaultAccess attributes"),
            (f"{value} {value!r} {value:>20}", "SecretValue text"),
            (str(vault.status()), "status()"),
        ):
            assert_no_secret(text, secrets, where)
        assert repr(value) == f"<secret {len(DEMO)} chars>"
        assert repr(vault) == f"VaultAccess(address='{vault.address}', via='port-forward vault/vault-0:8200', " + (
            "token=<hidden>, open)"
        )


@pytest.mark.slow
def test_errors_carry_no_secret(sandbox: RunningSandbox, token: str) -> None:
    secrets = {"root token": token, "demo value": DEMO}
    with VaultAccess(PARAMS, sandbox.api) as vault:
        vault.read_secret(PATH, KEY)  # now a known secret: any message containing it is scrubbed
        with pytest.raises(MeshbookError) as missing:
            vault.read_secret("secret/data/does/not/exist", KEY)
        with pytest.raises(MeshbookError) as no_key:
            vault.read_secret(PATH, "NO_SUCH_KEY")
        with pytest.raises(MeshbookError) as secret_in_path:
            vault.read_secret(f"secret/data/{DEMO}", KEY)
        with pytest.raises(MeshbookError) as token_in_path:
            vault.read_secret(f"secret/data/{token}", KEY)
    assert str(missing.value) == (
        "Vault has no secret at secret/data/does/not/exist (404); KV v2 paths include data/, e.g. secret/data/x"
    )
    assert str(no_key.value) == (
        f"Vault secret {PATH} has no key 'NO_SUCH_KEY' (keys: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
    )
    assert str(secret_in_path.value) == (
        "Vault has no secret at secret/data/<redacted> (404); KV v2 paths include data/, e.g. secret/data/x"
    )
    for info in (missing, no_key, secret_in_path, token_in_path):
        assert_no_secret(f"{info.value} {info.value!r} {info.value.args}", secrets, "an error")
        assert info.value.__cause__ is None  # and no chained exception would be displayed:
        assert info.value.__context__ is None or info.value.__suppress_context__ is True


@pytest.mark.slow
def test_explicit_address_keeps_tls_verification(sandbox: RunningSandbox) -> None:
    with VaultAccess(PARAMS, sandbox.api) as forwarded:
        assert forwarded.address is not None
        explicit = load_params(overrides=[f"vault.address={forwarded.address}"])
        with VaultAccess(explicit, sandbox.api) as vault:
            assert (vault.via, vault.address, vault._forwarder) == ("vault.address", forwarded.address, None)
            assert vault.read_secret(PATH, KEY).reveal() == DEMO
        # by host name the certificate does not match: verification stays on and says so
        port = forwarded.address.rsplit(":", 1)[1]
        wrong_name = load_params(overrides=[f"vault.address=https://localhost:{port}"])
        with VaultAccess(wrong_name, sandbox.api) as vault, pytest.raises(UnreachableError) as info:
            vault.status()
    assert str(info.value) == (
        f"Vault health check: TLS verification of https://localhost:{port} failed against the CA in Secret "
        "vault/vault-tls; verification stays on"
    )


@pytest.mark.slow
def test_write_secret_for_what_if_and_no_audit_device(sandbox: RunningSandbox) -> None:
    with VaultAccess(PARAMS, sandbox.api) as vault:
        assert vault.write_secret("secret/data/meshbook/what-if", {"k": SecretValue("rotated-1")}) == 1
        assert vault.write_secret("secret/data/meshbook/what-if", {"k": "rotated-2"}) == 2
        assert vault.read_secret("secret/data/meshbook/what-if", "k").reveal() == "rotated-2"
        # OpenBao only takes audit devices from its config file, and the sandbox declares none
        assert vault.audit_hash(SecretValue("rotated-2")) is None


@pytest.mark.slow
def test_missing_vault_namespace_says_what_to_do(sandbox: RunningSandbox) -> None:
    params = load_params(overrides=["vault.namespace=elsewhere"])
    with pytest.raises(MeshbookError) as info:
        VaultAccess(params, sandbox.api).open()
    assert str(info.value) == (
        "Secret elsewhere/vault-unseal-keys not found: the Bank-Vaults operator writes it once the Vault custom "
        "resource in namespace elsewhere is up; apply the Vault CR and wait for vault-0"
    )


@pytest.mark.slow
def test_port_forward_reports_the_kubelet_error(sandbox: RunningSandbox) -> None:
    forwarder = PortForwarder(sandbox.api, "vault", "vault-0", 9999, WAIT)
    try:
        with socket.create_connection(("127.0.0.1", forwarder.local_port), timeout=WAIT) as conn:
            assert conn.recv(1) == b""  # nothing listens on 9999 in vault-0: the forward ends at once
        assert forwarder.last_error is not None
        assert forwarder.last_error.startswith("port-forward to vault/vault-0:9999: error forwarding port 9999 to pod")
        assert forwarder.last_error.endswith("connect: connection refused")
    finally:
        forwarder.close()
    missing = PortForwarder(sandbox.api, "vault", "vault-9", 8200, WAIT)
    try:
        with socket.create_connection(("127.0.0.1", missing.local_port), timeout=WAIT) as conn:
            assert conn.recv(1) == b""  # the API server refused the port-forward: the connection is closed
        assert missing.last_error == 'port-forward to vault/vault-9:8200 failed: HTTP 404: pods "vault-9" not found'
    finally:
        missing.close()

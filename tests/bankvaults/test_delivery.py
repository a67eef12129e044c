"""Secret delivery judged from container logs, recorded with a keyed fingerprint and never the value."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator

import pytest
from kubernetes import client

from meshbook.bankvaults.delivery import SecretDelivery, check_secret_delivery, fingerprint, reference
from meshbook.bankvaults.secret_value import SecretValue
from meshbook.bankvaults.vault_access import VaultAccess
from meshbook.errors import MeshbookError
from meshbook.manifests import DEMO_STARTUP_SECRETS
from meshbook.params import RunbookParams
from tests.bankvaults import assert_no_secret, scenario_one
from tests.sandbox.conftest import RunningSandbox

PATH = "secret/data/accounts/aws"
KEY = "AWS_SECRET_ACCESS_KEY"
DEMO = DEMO_STARTUP_SECRETS[KEY]
FP_KEY = b"meshbook-test-fingerprint-key-01"
OTHER_KEY = b"meshbook-test-fingerprint-key-02"
LITERAL = f"vault:{PATH}#{KEY}"

MUTATED_LOG = (
    'time=2026-11-27T22:00:00.000Z level=INFO msg="received new Vault token" app=vault-env\n'
    'time=2026-11-27T22:00:00.010Z level=INFO msg="initial Vault token arrived" app=vault-env\n'
    f"{DEMO}\n"
    "going to sleep...\n"
)
UNMUTATED_LOG = f"{LITERAL}\ngoing to sleep...\n"


def check(log: str, expected: str = DEMO, **kwargs: object) -> SecretDelivery:
    return check_secret_delivery(
        log,
        SecretValue(expected),
        container="app",
        path=PATH,
        key=KEY,
        fingerprint_key=FP_KEY,
        **kwargs,  # type: ignore[arg-type]
    )


def expected_fingerprint(value: str, key: bytes = FP_KEY) -> str:
    return "hmac-sha256:" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def test_delivered_log() -> None:
    assert check(MUTATED_LOG) == SecretDelivery(
        container="app",
        path=PATH,
        key=KEY,
        delivered=True,
        matches_vault=True,
        literal_reference=False,
        fingerprint=expected_fingerprint(DEMO),
    )


def test_the_evidence_payload_is_the_verdict_without_the_value() -> None:
    """`observed()` is the secret_delivery record's payload, shaped by its model: names, booleans, fingerprint."""
    payload = check(MUTATED_LOG).observed()
    assert payload == {
        "container": "app",
        "path": PATH,
        "key": KEY,
        "delivered": True,
        "matches_vault": True,
        "fingerprint": expected_fingerprint(DEMO),
        "literal_reference": False,
    }
    assert DEMO not in repr(payload)
    assert check(MUTATED_LOG).expected() == {
        "container": "app",
        "delivered": True,
        "matches_vault": True,
        "fingerprint": expected_fingerprint(DEMO),
    }


@pytest.mark.parametrize("log", ["UNMUTATED", 'level=ERROR msg="failed to request new Vault token"\n', ""])
def test_nothing_delivered_has_no_observed_fingerprint(log: str) -> None:
    """A failed delivery never shows the expected value's fingerprint as observed (it would read as a success)."""
    result = check(UNMUTATED_LOG if log == "UNMUTATED" else log)
    payload = result.observed()
    assert (payload["delivered"], payload["fingerprint"]) == (False, None)
    assert payload["literal_reference"] is (log == "UNMUTATED")
    assert result.expected()["fingerprint"] == expected_fingerprint(DEMO)  # the expected one stays on record


def test_unmutated_log_shows_the_literal_reference() -> None:
    result = check(UNMUTATED_LOG)
    assert (result.delivered, result.matches_vault, result.literal_reference) == (False, False, True)
    assert result.reference == LITERAL == reference(PATH, KEY)
    versioned = check(f"{LITERAL}#3\ngoing to sleep...\n")
    assert (versioned.delivered, versioned.literal_reference) == (False, True)


@pytest.mark.parametrize(
    "log",
    [
        f"x{DEMO}\n",  # part of a longer line
        f"{DEMO} \n",  # trailing space: not exactly the value
        f"AWS_SECRET_ACCESS_KEY={DEMO}\n",
        "",
        'level=ERROR msg="failed to read secret from Vault" app=vault-env\n',
    ],
)
def test_not_delivered_unless_a_line_is_exactly_the_value(log: str) -> None:
    result = check(log)
    assert (result.delivered, result.matches_vault, result.literal_reference) == (False, False, False)


def test_line_endings_and_multi_line_values() -> None:
    assert check(MUTATED_LOG.replace("\n", "\r\n")).delivered is True
    assert check(f"{DEMO}").delivered is True  # last line without newline
    assert check("a\nline one\nline two\nb\n", expected="line one\nline two").delivered is True
    assert check("a\nline one\nb\nline two\n", expected="line one\nline two").delivered is False
    assert check("\n\n", expected="").delivered is False  # an empty secret cannot be told from a blank line


def test_rotated_in_vault_is_delivered_but_no_longer_matches() -> None:
    result = check(MUTATED_LOG, vault_now=SecretValue("rotated-after-start"))
    assert (result.delivered, result.matches_vault) == (True, False)
    same = check(MUTATED_LOG, vault_now=SecretValue(DEMO))
    assert (same.delivered, same.matches_vault) == (True, True)


def test_fingerprint_is_keyed_and_stable() -> None:
    value = SecretValue(DEMO)
    first = fingerprint(value, FP_KEY)
    assert first == fingerprint(SecretValue(DEMO), FP_KEY) == expected_fingerprint(DEMO)
    assert first.startswith("hmac-sha256:") and int(first.removeprefix("hmac-sha256:"), 16) >= 0
    assert fingerprint(value, OTHER_KEY) == expected_fingerprint(DEMO, OTHER_KEY) != first
    assert fingerprint(SecretValue("other value"), FP_KEY) != first


def test_fingerprint_refuses_short_keys_and_plain_text() -> None:
    with pytest.raises(MeshbookError) as info:
        fingerprint(SecretValue(DEMO), b"short")
    assert str(info.value) == (
        "the fingerprint key must be at least 16 bytes (got 5); keep it outside the evidence bundle"
    )
    with pytest.raises(TypeError):
        fingerprint(DEMO, FP_KEY)  # type: ignore[arg-type]


def test_the_record_never_holds_the_value() -> None:
    result = check(MUTATED_LOG)
    assert_no_secret(f"{result!r} {result} {vars(result)}", {"demo value": DEMO}, "the SecretDelivery record")


# -- real app logs from the guide's scenario 1 on a sandbox -----------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with scenario_one(tmp_path_factory.mktemp("delivery")) as running:
        yield running


def _vault_value(sandbox: RunningSandbox) -> SecretValue:
    with VaultAccess(RunbookParams(), sandbox.api) as vault:
        return vault.read_secret(PATH, KEY)


@pytest.mark.slow
@pytest.mark.parametrize("container", ["init-ubuntu", "app"])
def test_real_app_logs_show_delivery(sandbox: RunningSandbox, container: str) -> None:
    expected = _vault_value(sandbox)
    assert expected.reveal() == DEMO
    log = sandbox.kubectl("logs", "-n", "app", "deployment/app", "-c", container).stdout
    result = check_secret_delivery(log, expected, container=container, path=PATH, key=KEY, fingerprint_key=FP_KEY)
    assert result == SecretDelivery(
        container=container,
        path=PATH,
        key=KEY,
        delivered=True,
        matches_vault=True,
        literal_reference=False,
        fingerprint=expected_fingerprint(DEMO),
    )


def _follow_until(api: client.ApiClient, namespace: str, pod: str, container: str, last_line: str) -> str:
    """Stream the container's log until `last_line` appears (event-driven; the stream times out generously)."""
    response = client.CoreV1Api(api).read_namespaced_pod_log(
        pod, namespace, container=container, follow=True, _preload_content=False, _request_timeout=120
    )
    lines: list[str] = []
    try:
        for raw in response.stream(decode_content=True):
            lines.extend(raw.decode().splitlines())
            if last_line in lines:
                return "\n".join(lines) + "\n"
    finally:
        response.release_conn()
    raise AssertionError(f"{namespace}/{pod} [{container}] never logged {last_line!r}; got {len(lines)} lines")


@pytest.mark.slow
def test_unmutated_pod_prints_the_literal_reference(sandbox: RunningSandbox) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "unmutated",
            "namespace": "app",
            "labels": {"security.banzaicloud.io/mutate": "skip"},  # excluded by the webhook's objectSelector
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "alpine",
                    "command": ["sh", "-c", f"echo ${KEY} && echo going to sleep... && sleep 10000"],
                    "env": [{"name": KEY, "value": LITERAL}],
                }
            ]
        },
    }
    client.CoreV1Api(sandbox.api).create_namespaced_pod("app", pod)
    sandbox.kubectl("wait", "--for=condition=Ready", "pod/unmutated", "-n", "app", "--timeout=120s")
    log = _follow_until(sandbox.api, "app", "unmutated", "app", "going to sleep...")
    result = check_secret_delivery(
        log, _vault_value(sandbox), container="app", path=PATH, key=KEY, fingerprint_key=FP_KEY
    )
    assert (result.delivered, result.matches_vault, result.literal_reference) == (False, False, True)
    assert result.fingerprint == expected_fingerprint(DEMO) != expected_fingerprint(DEMO, OTHER_KEY)


# -- the leak scan's known secrets, gathered from a real sandbox -------------------------------------------


@pytest.mark.slow
def test_known_secrets_of_a_sandbox_include_its_token_keys_and_vaults_secrets(sandbox: RunningSandbox) -> None:
    from meshbook.bankvaults.secrets import SecretClass, known_secrets
    from meshbook.runbook.finalize import sandbox_state_dir

    state = sandbox_state_dir(str(sandbox.kubeconfig))
    assert state == sandbox.info.state_dir
    known = known_secrets(sandbox.api, RunbookParams(), sandbox_state=state)
    by_value = known.values
    token = (state / "token").read_text().strip()
    assert by_value[token].secret_class is SecretClass.KUBECONFIG_TOKEN
    assert by_value[token].source.startswith("kubeconfig ")  # read from the client's configuration
    for name in ("ca.key", "apiserver.key"):
        assert by_value[(state / name).read_text().strip()].secret_class is SecretClass.TLS_PRIVATE_KEY
    assert by_value[(state / "sa.key").read_text().strip()].secret_class is SecretClass.SIGNING_KEY
    assert by_value[DEMO].secret_class is SecretClass.STARTUP_SECRET
    counts = known.counts()
    assert counts[SecretClass.UNSEAL_KEY] == 5 and counts[SecretClass.ROOT_TOKEN] == 1
    assert counts[SecretClass.TLS_PRIVATE_KEY] >= 4  # the sandbox CA and server keys, vault-tls ca.key and server.key
    assert counts[SecretClass.STARTUP_SECRET] == 2  # the demo values, also read from the Vault CR
    assert counts[SecretClass.KV_VALUE] == 1  # the same value as a startupSecret, counted in both classes
    assert known.unread == []
    assert all(value not in repr(item) for value, item in by_value.items())

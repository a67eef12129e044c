"""The vault-secrets-webhook chart's values (`--set KEY=VALUE`): refusals first, then the objects they
render, then one install on a sandbox read back with kubectl."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from meshbook.bankvaults.chart_objects import WEBHOOK, bank_vaults_objects
from meshbook.bankvaults.chart_values import CHART_VALUES, chart_defaults, params_sets, webhook_values
from meshbook.cli import main
from meshbook.errors import ExitCode, ParameterError
from meshbook.params import BankVaultsParams, load_params
from meshbook.sandbox_install import split_sets
from tests.sandbox.conftest import RunningSandbox

ADDR = "https://vault.vault:8200"
VAULT_TOKEN = "hvs.CAESIJlWh3Hk2f0lqHyD2mJp1kY8"  # shaped like a Vault service token, not a real one


def problems(*sets: str) -> list[str]:
    with pytest.raises(ParameterError) as info:
        webhook_values(sets)
    return info.value.problems


def rendered(*sets: str, params: BankVaultsParams | None = None) -> list[dict[str, Any]]:
    bv = params or BankVaultsParams()
    return bank_vaults_objects(bv, ADDR, webhook_values([*params_sets(bv, ADDR), *sets]))


def webhooks(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    config = next(o for o in objects if o["kind"] == "MutatingWebhookConfiguration")
    return {hook["name"].split(".")[0]: hook for hook in config["webhooks"]}


def deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == WEBHOOK)


def env(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    container = deployment(objects)["spec"]["template"]["spec"]["containers"][0]
    return [(e["name"], e["value"]) for e in container["env"]]


# -- refused ---------------------------------------------------------------------------------------


def test_an_unknown_key_is_named_with_a_did_you_mean() -> None:
    (problem,) = problems("secretsMutaton=false")
    assert problem.startswith(
        "--set secretsMutaton=false: secretsMutaton: not a value of the vault-secrets-webhook chart meshbook "
        "knows (did you mean secretsMutation?); known: replicaCount, debug, secretsMutation,"
    )


def test_a_mistyped_parameter_section_is_pointed_at() -> None:
    (problem,) = problems("bank_vault.namespace=vswh")
    assert problem.startswith(
        "--set bank_vault.namespace=vswh: bank_vault.namespace: not a value of the vault-secrets-webhook chart "
        "meshbook knows (a meshbook parameter starts with its section: target, istio., bank_vaults., vault., app., "
        "...); known: replicaCount,"
    )


def test_an_unknown_env_name_is_named_with_a_did_you_mean() -> None:
    assert problems("env.VAULT_ADR=https://vault.vault:8200") == [
        '--set env.VAULT_ADR=https://vault.vault:8200: env.VAULT_ADR: "VAULT_ADR" is no environment variable '
        "the webhook reads (did you mean VAULT_ADDR?)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("replicaCount=two", 'replicaCount: expected a whole number >= 0, got "two"'),
        ("replicaCount=-1", "replicaCount: expected a whole number >= 0, got -1"),
        ("secretsMutation=maybe", 'secretsMutation: expected true or false, got "maybe"'),
        ("configMapMutation=1", "configMapMutation: expected true or false, got 1"),
        ("podsFailurePolicy=fail", 'podsFailurePolicy: expected one of Ignore, Fail, got "fail"'),
        ("configmapFailurePolicy=Never", 'configmapFailurePolicy: expected one of Ignore, Fail, got "Never"'),
        ("timeoutSeconds=31", "timeoutSeconds: expected a whole number from 1 to 30, got 31"),
        (
            "env.VAULT_ADDR=vault:8200",
            'env.VAULT_ADDR: VAULT_ADDR: expected a Vault URL such as https://vault.vault:8200, got "vault:8200"',
        ),
        (
            "env.VAULT_ADDR_ALLOWLIST=https://a:8200,ftp://b",
            "env.VAULT_ADDR_ALLOWLIST: VAULT_ADDR_ALLOWLIST: "
            'expected comma-separated Vault URLs such as https://vault.vault:8200, got "ftp://b"',
        ),
        (
            "env.VAULT_CLIENT_TIMEOUT=10",
            'env.VAULT_CLIENT_TIMEOUT: VAULT_CLIENT_TIMEOUT: expected a Go duration such as 10s, got "10"',
        ),
        (
            "namespaceSelector.matchExpressions=x",
            "namespaceSelector.matchExpressions: expected "
            "namespaceSelector.matchLabels.LABEL=VALUE or namespaceSelector={...}",
        ),
        (
            "objectSelector={matchLabel: {a: b}}",
            "objectSelector: expected a label selector with matchLabels and/or matchExpressions, got a mapping",
        ),
        ("labels.bad key=x", 'labels.bad key: expected a valid label key, got "bad key"'),
    ],
)
def test_a_bad_value_names_the_key_and_what_was_expected(text: str, expected: str) -> None:
    assert problems(text) == [f"--set {text}: {expected}"]


def test_every_problem_is_listed_at_once() -> None:
    assert [p.split(":")[0] for p in problems("debug=yes", "replicaCount=x", "secretsMutation=true")] == [
        "--set debug=yes",
        "--set replicaCount=x",
    ]


def test_a_credential_is_refused_without_being_shown() -> None:
    (problem,) = problems(f"env.VAULT_ROLE={VAULT_TOKEN}")
    assert VAULT_TOKEN not in problem
    assert problem.startswith("--set env.VAULT_ROLE=… (value not shown): env.VAULT_ROLE: the value carries a ")
    assert "credential (Vault token (32 chars))" in problem


def test_a_credential_in_the_users_sets_is_refused_beside_the_parameters_sets() -> None:
    bv = BankVaultsParams()
    with pytest.raises(ParameterError) as info:
        webhook_values([f"env.VAULT_ROLE={VAULT_TOKEN}"], parameter_sets=params_sets(bv, ADDR))
    (problem,) = info.value.problems
    assert VAULT_TOKEN not in problem
    assert "credential (Vault token (32 chars))" in problem


def test_the_parameters_sets_are_not_searched_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """They were searched when the parameters were loaded; the detector's rules take most of a second to load."""
    import meshbook.param_credentials

    def searched(*args: object, **kwargs: object) -> None:
        raise AssertionError("a parameter's chart value was searched for credentials again")

    monkeypatch.setattr(meshbook.param_credentials, "credentials_in", searched)
    monkeypatch.setattr(meshbook.param_credentials, "describe_text", searched)
    bv = BankVaultsParams(webhook_replicas=3)
    values = webhook_values(parameter_sets=params_sets(bv, ADDR))
    assert values["replicaCount"] == 3 and values["env"]["VAULT_ADDR"] == ADDR
    with pytest.raises(ParameterError) as info:  # still checked for what they are
        webhook_values(parameter_sets=["replicaCount=x"])
    assert info.value.problems[0].startswith("--set replicaCount=x: replicaCount: ")


def test_a_vault_token_in_the_webhook_env_is_refused_whatever_it_looks_like() -> None:
    assert problems("env.VAULT_TOKEN=root") == [
        "--set env.VAULT_TOKEN=root: env.VAULT_TOKEN: VAULT_TOKEN: a Vault token in the webhook's env is stored "
        "in plain text in its Deployment; meshbook sets none (the webhook logs in with the pod's service account)"
    ]


def test_no_key_value_is_refused() -> None:
    assert problems("secretsMutation") == ["--set secretsMutation: expected KEY=VALUE, e.g. secretsMutation=false"]


def test_the_cli_exits_2_before_looking_for_a_sandbox(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sandbox", "install", "bank-vaults", "--state", "/nonexistent", "--set", "secretsMutaton=false"])
    assert code == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "secretsMutaton: not a value of the vault-secrets-webhook chart" in err
    assert "did you mean secretsMutation?" in err
    assert "no sandbox running" not in err


def test_the_cli_refuses_a_credential_without_echoing_it(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sandbox", "install", "bank-vaults", "--state", "/nonexistent", "-s", f"env.VAULT_ROLE={VAULT_TOKEN}"])
    assert code == ExitCode.BAD_INPUT
    captured = capsys.readouterr()
    assert VAULT_TOKEN not in captured.err + captured.out


# -- routing and defaults --------------------------------------------------------------------------


def test_set_lines_split_between_parameters_and_chart_values() -> None:
    sets = ["bank_vaults.namespace=vswh", "secretsMutation=false", "env.VAULT_ADDR=https://v:8200", "vault.role=r"]
    assert split_sets(sets) == (
        ["bank_vaults.namespace=vswh", "vault.role=r"],
        ["secretsMutation=false", "env.VAULT_ADDR=https://v:8200"],
    )


def test_defaults_are_the_charts() -> None:
    defaults = chart_defaults()
    assert {key: defaults[key] for key in ("replicaCount", "secretsMutation", "configMapMutation")} == {
        "replicaCount": 2,
        "secretsMutation": True,
        "configMapMutation": False,
    }
    assert (defaults["podsFailurePolicy"], defaults["secretsFailurePolicy"], defaults["timeoutSeconds"]) == (
        "Ignore",
        "Ignore",
        False,
    )
    assert len({value.key for value in CHART_VALUES}) == len(CHART_VALUES)


def test_parameters_give_the_same_sets_to_helm_and_the_sandbox() -> None:
    bv = load_params(overrides=["bank_vaults.webhook_replicas=3", "bank_vaults.pods_failure_policy=Fail"]).bank_vaults
    assert params_sets(bv, ADDR) == ["replicaCount=3", f"env.VAULT_ADDR={ADDR}", "podsFailurePolicy=Fail"]
    objects = bank_vaults_objects(bv, ADDR)
    assert deployment(objects)["spec"]["replicas"] == 3
    assert webhooks(objects)["pods"]["failurePolicy"] == "Fail"


# -- rendered objects ------------------------------------------------------------------------------


def test_by_default_pods_and_secrets_webhooks_and_no_configmaps_webhook() -> None:
    hooks = webhooks(rendered())
    assert list(hooks) == ["pods", "secrets"]
    assert hooks["secrets"]["clientConfig"]["service"]["path"] == "/secrets"
    assert hooks["secrets"]["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert hooks["secrets"]["objectSelector"]["matchExpressions"] == [
        {"key": "owner", "operator": "NotIn", "values": ["helm"]},
        {"key": "security.banzaicloud.io/mutate", "operator": "NotIn", "values": ["skip"]},
    ]
    assert hooks["pods"]["namespaceSelector"] == {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]},
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["vault-system"]},
        ]
    }
    assert {hook["timeoutSeconds"] for hook in hooks.values()} == {10}


def test_mutation_switches_register_and_drop_webhooks() -> None:
    assert list(webhooks(rendered("configMapMutation=true"))) == ["pods", "secrets", "configmaps"]
    assert list(webhooks(rendered("secretsMutation=false"))) == ["pods"]
    assert list(webhooks(rendered("secretsMutation=false", "configMapMutation=true"))) == ["pods", "configmaps"]


def test_failure_policies_timeout_and_side_effects() -> None:
    hooks = webhooks(
        rendered(
            "configMapMutation=true",
            "podsFailurePolicy=Fail",
            "secretsFailurePolicy=Fail",
            "configMapFailurePolicy=Fail",
            "timeoutSeconds=5",
            "apiSideEffectValue=None",
        )
    )
    assert {name: hook["failurePolicy"] for name, hook in hooks.items()} == {n: "Fail" for n in hooks}
    assert {hook["timeoutSeconds"] for hook in hooks.values()} == {5}
    assert {hook["sideEffects"] for hook in hooks.values()} == {"None"}
    # the template reads configmapFailurePolicy first, then configMapFailurePolicy
    both = webhooks(rendered("configMapMutation=true", "configMapFailurePolicy=Fail", "configmapFailurePolicy=Ignore"))
    assert both["configmaps"]["failurePolicy"] == "Ignore"


def test_selectors_and_release_namespace() -> None:
    hooks = webhooks(
        rendered(
            "namespaceSelector.matchLabels.vault-injection=enabled",
            "pods.objectSelector={matchLabels: {team: a}}",
            "ignoreReleaseNamespace=false",
        )
    )
    assert hooks["pods"]["namespaceSelector"] == {
        "matchLabels": {"vault-injection": "enabled"},
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}],
    }
    assert hooks["pods"]["objectSelector"] == {
        "matchLabels": {"team": "a"},
        "matchExpressions": [{"key": "security.banzaicloud.io/mutate", "operator": "NotIn", "values": ["skip"]}],
    }
    assert "matchLabels" not in hooks["secrets"]["objectSelector"]  # pods.objectSelector is the pods webhook's


def test_replicas_env_labels_annotations_and_image() -> None:
    objects = rendered(
        "replicaCount=1",
        "debug=true",
        "env.VAULT_ADDR_ALLOWLIST=https://vault.dr:8200,https://vault.prod:8200",
        "env.VAULT_SKIP_VERIFY=true",
        "labels.team=payments",
        "podAnnotations.sidecar.istio.io/inject=false",
        "image.tag=v1.22.2",
    )
    dep = deployment(objects)
    assert dep["spec"]["replicas"] == 1
    assert env(objects) == [
        ("TLS_CERT_FILE", "/var/serving-cert/tls.crt"),
        ("TLS_PRIVATE_KEY_FILE", "/var/serving-cert/tls.key"),
        ("LISTEN_ADDRESS", ":8443"),
        ("LOG_LEVEL", "debug"),
        ("VAULT_ENV_IMAGE", "ghcr.io/bank-vaults/vault-env:v1.23.0"),
        ("VAULT_ADDR", ADDR),
        ("VAULT_ADDR_ALLOWLIST", "https://vault.dr:8200,https://vault.prod:8200"),
        ("VAULT_SKIP_VERIFY", "true"),
    ]
    template = dep["spec"]["template"]["metadata"]
    assert template["labels"]["team"] == "payments" == dep["metadata"]["labels"]["team"]
    assert "team" not in dep["spec"]["selector"]["matchLabels"]
    assert template["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert (
        dep["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/bank-vaults/vault-secrets-webhook:v1.22.2"
    )


def test_a_later_set_wins_over_the_parameters() -> None:
    objects = rendered("env.VAULT_ADDR=https://vault.other:8200", "replicaCount=4")
    assert ("VAULT_ADDR", "https://vault.other:8200") in env(objects)
    assert deployment(objects)["spec"]["replicas"] == 4


# -- on a sandbox, read back with kubectl ----------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    from meshbook.sandbox import control
    from tests.sandbox.conftest import start_sandbox

    running = start_sandbox(tmp_path_factory.mktemp("chart-values") / "state")
    try:
        yield running
    finally:
        running.api.close()
        control.down(running.info.state_dir)


def _meshbook(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshbook", *args], capture_output=True, text=True, timeout=180, check=False
    )


def _webhooks_json(sandbox: RunningSandbox) -> dict[str, dict[str, Any]]:
    config = json.loads(sandbox.kubectl("get", "mutatingwebhookconfiguration", WEBHOOK, "-o", "json").stdout)
    return {hook["name"].split(".")[0]: hook for hook in config["webhooks"]}


@pytest.mark.slow
def test_install_with_values_on_a_sandbox(sandbox: RunningSandbox) -> None:
    state = str(sandbox.info.state_dir)
    sets = ["configMapMutation=true", "secretsMutation=false", "replicaCount=0", "timeoutSeconds=5"]
    args = ["sandbox", "install", "bank-vaults", "--state", state, "--pods-failure-policy", "Fail"]
    proc = _meshbook(*args, *[f"--set={item}" for item in sets], "--set", "env.VAULT_ADDR_ALLOWLIST=https://v.dr:8200")
    assert proc.returncode == 0, proc.stderr
    hooks = _webhooks_json(sandbox)
    assert list(hooks) == ["pods", "configmaps"]
    assert (hooks["pods"]["failurePolicy"], hooks["pods"]["timeoutSeconds"]) == ("Fail", 5)
    dep = json.loads(sandbox.kubectl("get", "deployment", WEBHOOK, "-n", "vault-system", "-o", "json").stdout)
    assert dep["spec"]["replicas"] == 0
    container_env = {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert container_env["VAULT_ADDR_ALLOWLIST"] == "https://v.dr:8200"

    # No webhook pod and failurePolicy Fail: the API server refuses pods, as on a cluster.
    sandbox.kubectl("create", "namespace", "chart-values")
    refused = sandbox.kubectl("run", "p", "-n", "chart-values", "--image=alpine:3.22", "--", "true", check=False)
    assert refused.returncode != 0
    assert 'failed calling webhook "pods.vault-secrets-webhook.admission.banzaicloud.com"' in refused.stderr

    # Installed again with the defaults: the Secrets webhook is back, the ConfigMaps one gone.
    again = _meshbook("sandbox", "install", "bank-vaults", "--state", state)
    assert again.returncode == 0, again.stderr
    hooks = _webhooks_json(sandbox)
    assert list(hooks) == ["pods", "secrets"]
    assert hooks["pods"]["failurePolicy"] == "Ignore"

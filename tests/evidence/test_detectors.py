"""The credential detector: each class found with its exact span, nothing found in meshbook's own text."""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import string
import time
from collections.abc import Callable

import pytest

from meshbook.evidence.detectors import (
    CredentialFinding,
    find_credentials,
    is_high_entropy,
    looks_like_secret_key,
)
from meshbook.params import load_params, notebook_parameters
from tests.conftest import ROOT

_RANDOM = random.Random(13)
ALNUM = string.ascii_letters + string.digits


def rnd(n: int, alphabet: str = ALNUM) -> str:
    """Made up at test time, so the repository holds no token-shaped literal."""
    return "".join(_RANDOM.choice(alphabet) for _ in range(n))


def _jwt() -> str:
    return "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwOmRlZmF1bHQifQ." + rnd(
        43, ALNUM + "-_"
    )


def _pem() -> str:
    body = "\n".join(rnd(64, ALNUM + "+/") for _ in range(3))
    return f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"


# (class, text around the secret, the secret): the finding's span must be exactly the secret.
CASES: list[tuple[str, Callable[[str], str], str]] = [
    ("GitHub token", "token: {}".format, "ghp_" + rnd(36)),
    ("GitLab token", "GITLAB={}".format, "glpat-" + rnd(20)),
    ("Slack token", "slack {} end".format, f"xoxb-{rnd(11, string.digits)}-{rnd(12, string.digits)}-{rnd(24)}"),
    ("AWS access key", "aws_access_key_id = {}".format, "AKIA" + rnd(16, string.ascii_uppercase + "234567")),
    ("GCP credential", "key={}".format, "AIza" + rnd(35, ALNUM + "-_")),
    (
        "Azure storage account key",
        "DefaultEndpointsProtocol=https;AccountName=x;AccountKey={};EndpointSuffix=core.windows.net".format,
        rnd(86, ALNUM + "+/") + "==",
    ),
    ("private key", "key:\n{}\n".format, _pem()),
    ("JWT", "Authorization: Bearer {}".format, _jwt()),
    ("Vault token", "VAULT_TOKEN={}".format, "hvs." + rnd(24)),
    ("Vault token", "VAULT_TOKEN={}".format, "hvs.CAESI" + rnd(86, ALNUM + "-_")),
    ("Vault token", "batch {}".format, "hvb." + rnd(30)),
    ("Vault token", "root token {}".format, "s.Ab3d" + rnd(20)),
    ("URL password", "https://admin:{}@vault.vault:8200/v1".format, "hunter2"),
    ("credential query parameter token", "https://vault:8200/?token={}".format, "s." + "x" * 24),
    ("credential query parameter x-vault-token", "http://h/v1/kv?X-Vault-Token={}&a=1".format, "abc123"),
    ("credential query parameter access_token", "see https://api.example/x?a=1&access_token={}#top".format, rnd(30)),
    ("credential query parameter password", "jdbc:postgresql://db/x?user=a&password={}".format, "s3cr3t"),
    ("credential query parameter sig", "https://acct.blob.core.windows.net/c?sv=2022&sig={}".format, rnd(40)),
    ("credential query parameter client_secret", "https://login/x?client_secret={}".format, rnd(12)),
    ("credential query parameter key", "https://maps.example/api?key={}".format, rnd(32)),
]


@pytest.mark.parametrize(("kind", "around", "secret"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_class_is_found_with_its_exact_span(kind: str, around: Callable[[str], str], secret: str) -> None:
    text = around(secret)
    findings = find_credentials(text)
    assert [(f.kind, text[f.start : f.end]) for f in findings] == [(kind, secret)]


def test_spans_are_character_offsets_after_non_ascii_text() -> None:
    secret = "ghp_" + rnd(36)
    text = f"héllo ✓ ünïcode — {secret} and more ✓"
    (finding,) = find_credentials(text)
    assert text[finding.start : finding.end] == secret


def test_every_credential_in_a_text_is_found_in_order() -> None:
    secrets = ["ghp_" + rnd(36), "AKIA" + rnd(16, string.ascii_uppercase + "234567"), _jwt()]
    text = "\n".join(f"line {i}: {s}" for i, s in enumerate(secrets))
    assert [text[f.start : f.end] for f in find_credentials(text)] == secrets


def test_a_finding_keeps_the_class_and_span_only() -> None:
    assert [f.name for f in dataclasses.fields(CredentialFinding)] == ["kind", "start", "end"]
    finding = find_credentials("x ghp_" + rnd(36))[0]
    assert finding.describe() == "GitHub token (40 chars)"


@pytest.mark.parametrize(
    "text",
    [
        "https://user:${VAULT_PASSWORD}@host",
        "https://user:<password>@host",
        "https://vault/?token=",
        "https://vault/?token=${TOKEN}",
        "https://maps/?key=short",
    ],
)
def test_templates_and_empty_values_are_not_credentials(text: str) -> None:
    assert find_credentials(text) == []


TYPICAL = [
    "https://vault.vault:8200",
    "https://vault.example.internal:8200/v1/secret/data/accounts/aws?version=2",
    "https://user@vault.vault:8200",
    "oci://ghcr.io/bank-vaults/helm-charts/vault-operator",
    "ghcr.io/bank-vaults/vault-secrets-webhook:1.23.1",
    "docker.io/istio/proxyv2:1.30.0",
    "1.24.0",
    "1.30.0-beta.1+build.5",
    "secret/data/accounts/aws",
    "AWS_SECRET_ACCESS_KEY",
    "vault:secret/data/accounts/aws#AWS_SECRET_ACCESS_KEY",
    "my-cluster",
    "~/.kube/config",
    "istio-system",
    "status.containerStatusesRestartCount",
    "pods.metadata.resourceVersion",
    "sha256:" + "0123456789abcdef" * 4,
    "Ready 2/2 Running 0 s.t. it works",
]


@pytest.mark.parametrize("value", TYPICAL)
def test_typical_values_are_not_credentials(value: str) -> None:
    assert find_credentials(value) == []
    assert find_credentials(value, key_name="secret_key") == []


def test_meshbook_own_parameters_and_docs_have_no_false_positive() -> None:
    texts = {
        path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
        for pattern in ("params/*.yaml", "docs/*.md", "README.md", "notebooks/*.ipynb")
        for path in sorted(ROOT.glob(pattern))
    }
    texts["defaults"] = json.dumps(notebook_parameters(load_params()))
    assert {"params/sandbox.yaml", "params/live-example.yaml", "README.md"} <= set(texts)
    found = {name: [f.kind for f in find_credentials(text)] for name, text in texts.items()}
    assert {name: kinds for name, kinds in found.items() if kinds} == {}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("password", True),
        ("db_passwd", True),
        ("clientSecret", True),
        ("X-Vault-Token", True),
        ("api_key", True),
        ("apiKey", True),
        ("secret_key", True),
        ("private_key", True),
        ("auth", True),
        ("kube_context", False),
        ("address", False),
        ("keyboard", False),
        ("namespace", False),
        ("webhook_replicas", False),
    ],
)
def test_secret_named_keys(name: str, expected: bool) -> None:
    assert looks_like_secret_key(name) is expected


def test_high_entropy_only_for_random_looking_values_in_secret_named_keys() -> None:
    random_value = rnd(24)
    assert is_high_entropy(random_value)
    assert is_high_entropy(rnd(40, "0123456789abcdef"))
    assert not is_high_entropy("AWS_SECRET_ACCESS_KEY")
    assert not is_high_entropy("secret/data/accounts/aws")
    assert not is_high_entropy(rnd(12))  # too short to tell from a chosen word
    assert find_credentials(f"value {random_value}") == []
    (finding,) = find_credentials(f"value {random_value}", key_name="db_password")
    assert (finding.kind, finding.start) == ("high-entropy string", 6)


def test_a_megabyte_takes_well_under_a_second() -> None:
    filler = "lorem ipsum https://vault.vault:8200 s.t. ghcr.io/bank-vaults/webhook:1.23.1 sha256:abcdef0123\n"
    text = filler * (1_000_000 // len(filler))
    secret = "ghp_" + rnd(36)
    text = text[:500_000] + secret + text[500_000:]
    find_credentials("warm up")  # the rule engine compiles once per process
    started = time.perf_counter()
    findings = find_credentials(text)
    elapsed = time.perf_counter() - started
    assert [text[f.start : f.end] for f in findings] == [secret]
    assert elapsed < 1.0, f"1 MB took {elapsed:.2f} s"


def test_base64_data_such_as_a_plot_image_is_not_searched() -> None:
    """Random bytes in base64 hold every key format's shape somewhere; a notebook's PNG must not fail a run."""
    blob = base64.b64encode(random.Random(7).randbytes(200_000)).decode()
    assert find_credentials(json.dumps({"data": {"image/png": blob}})) == []
    secret = "ghp_" + rnd(36)
    found = find_credentials(json.dumps({"image/png": blob, "text": f"token {secret}"}))
    assert [f.kind for f in found] == ["GitHub token"]

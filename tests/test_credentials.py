"""No parameter may carry a credential: each form is refused with exit 2, by file and by `--set`.

The message names the file or `--set`, the dotted key, the YAML line and the credential's class, and
never the value; `meshbook run` refuses before a run directory or a sandbox exists.
"""

from __future__ import annotations

import os
import random
import string
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from meshbook.errors import ParameterError
from meshbook.params import load_params
from tests.conftest import ROOT, CliResult

_RANDOM = random.Random(42)
ALNUM = string.ascii_letters + string.digits


def rnd(n: int, alphabet: str = ALNUM) -> str:
    return "".join(_RANDOM.choice(alphabet) for _ in range(n))


GITHUB = "ghp_" + rnd(36)
AWS = "AKIA" + rnd(16, string.ascii_uppercase + "234567")
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwOmRlZmF1bHQifQ." + rnd(43)

# (dotted key, value, class named in the message, the part of the value that must never be printed)
FORMS = [
    ("vault.address", "https://admin:hunter2@vault.vault:8200", "URL password", "hunter2"),
    ("vault.address", "https://vault:8200/?token=s." + "x" * 24, "credential query parameter token", "x" * 24),
    ("vault.address", "https://vault:8200/v1?X-Vault-Token=abc123def", "x-vault-token", "abc123def"),
    ("vault.address", "https://vault:8200/?password=s3cr3tpw", "credential query parameter password", "s3cr3tpw"),
    ("kube_context", GITHUB, "GitHub token", GITHUB),
    ("kube_context", f"prefix-{GITHUB}", "GitHub token", GITHUB),
    ("kubeconfig", f"/home/me/{AWS}/config", "AWS access key", AWS),
    ("kube_context", "glpat-" + (glpat := rnd(20)), "GitLab token", glpat),
    ("kube_context", f"xoxb-{rnd(11, string.digits)}-{rnd(12, string.digits)}-{(slack := rnd(24))}", "Slack", slack),
    ("kube_context", JWT, "JWT", JWT[40:]),
    ("kube_context", "hvs." + (hvs := rnd(30)), "Vault token", hvs),
    ("kube_context", "s.Xy7" + (legacy := rnd(21)), "Vault token", legacy),
    ("vault.secret_key", (generated := rnd(28, ALNUM + "_")), "high-entropy string", generated),
]
IDS = [f"{key}:{kind}" for key, _, kind, _ in FORMS]


def _file(tmp_path: Path, dotted: str, value: str) -> tuple[Path, int]:
    """A parameter file setting `dotted` on a known line (after a comment and one other key)."""
    parts = dotted.split(".")
    lines = ["# a parameter file", "mode: apply"]
    for depth, part in enumerate(parts[:-1]):
        lines.append("  " * depth + f"{part}:")
    lines.append("  " * (len(parts) - 1) + f"{parts[-1]}: {value!r}")
    path = tmp_path / "creds.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, len(lines)


@pytest.mark.parametrize(("dotted", "value", "kind", "hidden"), FORMS, ids=IDS)
def test_credential_in_a_file_is_refused(tmp_path: Path, dotted: str, value: str, kind: str, hidden: str) -> None:
    path, line = _file(tmp_path, dotted, value)
    with pytest.raises(ParameterError) as caught:
        load_params([path])
    (message,) = caught.value.problems
    assert message.startswith(f"{path}: {dotted}: the value carries ")
    assert kind in message
    assert message.endswith(f"(line {line})")
    assert "secrets must stay in Vault or the cluster" in message
    assert hidden not in message and value not in message


@pytest.mark.parametrize(("dotted", "value", "kind", "hidden"), FORMS, ids=IDS)
def test_credential_in_a_set_is_refused(
    run_cli: Callable[..., CliResult], dotted: str, value: str, kind: str, hidden: str
) -> None:
    result = run_cli("params", "--set", f"{dotted}={value}")
    assert result.code == 2
    assert f"--set {dotted}=… (value not shown): {dotted}: the value carries " in result.err
    assert kind in result.err
    assert hidden not in result.err + result.out


def test_other_problems_from_the_same_set_do_not_show_its_value(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("params", "--set", "vault={address: 'https://a:hunter2@vault:8200', permissive: maybe}")
    assert result.code == 2
    assert "vault.address: the value carries a URL password (7 chars)" in result.err
    assert "--set vault=… (value not shown): vault.permissive: expected true or false" in result.err
    assert "hunter2" not in result.err


def test_a_value_with_a_credential_and_a_bad_shape_reports_only_the_credential(tmp_path: Path) -> None:
    # vault.address must be http(s); the pattern error would print the value, so only the credential shows.
    path, _ = _file(tmp_path, "vault.address", "ftp://admin:hunter2@vault")
    with pytest.raises(ParameterError) as caught:
        load_params([path])
    assert len(caught.value.problems) == 1
    assert "URL password" in caught.value.problems[0]
    assert "hunter2" not in str(caught.value)


def test_a_credential_in_a_list_or_a_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(f"runbooks: [10-scenario-1, {GITHUB}]\n", encoding="utf-8")
    with pytest.raises(ParameterError) as caught:
        load_params([path])
    assert f"{path}: runbooks[1]: the value carries a GitHub token (40 chars)" in str(caught.value)
    assert GITHUB not in str(caught.value)
    with pytest.raises(ParameterError) as caught:
        load_params(overrides=[f"{GITHUB}=1"])
    assert "its key carries a GitHub token" in str(caught.value)


def test_a_malformed_set_carrying_a_credential_is_not_echoed(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("params", "--set", GITHUB)
    assert result.code == 2
    assert "--set … (it carries a GitHub token (40 chars), not shown): expected KEY=VALUE" in result.err
    assert GITHUB not in result.err


@pytest.mark.parametrize(
    "override",
    [
        "vault.address=https://vault.vault:8200",
        "vault.address=https://vault.example.internal:8200",
        "vault.address=http://127.0.0.1:8200",
        "kube_context=arn:aws:eks:eu-west-1:123456789012:cluster/prod",
        "kube_context=gke_my-project_europe-west1_cluster-1",
        "kubeconfig=/home/me/.kube/config",
        "vault.secret_key=AWS_SECRET_ACCESS_KEY",
        "vault.secret_path=secret/data/accounts/aws",
        "vault.role=default",
        "istio.version=1.30.0",
        "bank_vaults.operator_chart_version=1.24.0",
    ],
)
def test_ordinary_values_are_accepted(override: str) -> None:
    load_params(overrides=[override])


def test_shipped_parameter_files_and_defaults_are_accepted() -> None:
    files = sorted((ROOT / "params").glob("*.yaml"))
    assert files
    load_params()
    for file in files:
        load_params([file])


def _meshbook(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshbook", *args], capture_output=True, text=True, check=False, env=env, timeout=120
    )


def test_params_command_refuses_with_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = _meshbook("params", "--set", "vault.address=https://admin:hunter2@vault.vault:8200", env=env)
    assert proc.returncode == 2
    assert "--set vault.address=… (value not shown): vault.address: the value carries a URL password" in proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout


def test_run_refuses_before_anything_starts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = tmp_path / "runs"
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    path, line = _file(tmp_path, "kube_context", GITHUB)
    proc = _meshbook("run", "--out", str(out), "--params", str(path), env=env)
    assert proc.returncode == 2, proc.stderr
    assert f"{path}: kube_context: the value carries a GitHub token (40 chars)" in proc.stderr
    assert f"(line {line})" in proc.stderr
    assert GITHUB not in proc.stderr + proc.stdout
    assert not out.exists() or not any(out.iterdir()), "a run directory was created"
    assert not (state / "meshbook" / "sandbox").exists(), "a sandbox was started"

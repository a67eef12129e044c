"""The end-of-run leak scan catches a planted secret in any encoding and scrubs it (no cluster needed)."""

from __future__ import annotations

import base64
import gzip
import json
import random
import secrets
import string
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

import nbformat
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import meshbook.runbook.finalize as finalize
from meshbook.bankvaults.secrets import KnownSecrets, SecretClass
from meshbook.errors import ExitCode
from meshbook.evidence.encodings import ENCODINGS
from meshbook.evidence.leakscan import PATTERN_CLASS
from meshbook.manifests import DEMO_STARTUP_SECRETS
from meshbook.params import load_params
from meshbook.runbook.execute import RunResult
from meshbook.runbook.finalize import scan_run_directory
from meshbook.runbook.rundir import RunDirectory, create_run_directory


def _demo_values() -> list[str]:
    values: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and len(value) >= 4:
            values.append(value)

    walk(DEMO_STARTUP_SECRETS)
    return values


@pytest.mark.parametrize("encoding", ["plain", "base64", "json-in-notebook"])
def test_planted_leak_is_found_and_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str) -> None:
    monkeypatch.delenv("MESHBOOK_KUBECONFIG", raising=False)
    params = load_params(overrides=["target=live", f"kubeconfig={tmp_path / 'missing-kubeconfig'}"])
    run = create_run_directory(tmp_path / "runs")
    secret = max(_demo_values(), key=len)
    planted = {
        "plain": f"the app printed {secret}\n",
        "base64": json.dumps({"data": base64.b64encode(secret.encode()).decode()}),
        "json-in-notebook": json.dumps({"cells": [{"outputs": [{"text": [f"{secret}\n"]}]}]}),
    }[encoding]
    target = run.notebooks / "10-scenario-1.ipynb"
    target.write_text(planted)
    (run.path / "evidence.jsonl").write_text('{"clean": true}\n')
    leaks, _, _ = scan_run_directory(run, params)
    assert [leak["path"] for leak in leaks] == ["notebooks/10-scenario-1.ipynb"]
    assert leaks[0]["scrubbed"] is True
    assert secret not in json.dumps(leaks)
    text = target.read_text()
    assert secret not in text and base64.b64encode(secret.encode()).decode() not in text
    assert scan_run_directory(run, params)[0] == []


# -- every secret class in every encoding, in every kind of artifact ----------------------------------------


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _jwt_like() -> str:
    part = lambda n: base64.urlsafe_b64encode(secrets.token_bytes(n)).decode().rstrip("=")  # noqa: E731
    return f"eyJhbGciOiJSUzI1NiJ9.{part(120)}.{part(256)}"


# One value per class, shaped like the real ones (PEM keys have newlines, tokens "/", "+", "."...).
PLANTED: dict[SecretClass, str] = {
    SecretClass.KUBECONFIG_TOKEN: secrets.token_urlsafe(32),
    SecretClass.KUBECONFIG_CLIENT_KEY: _pem(ec.generate_private_key(ec.SECP256R1())),
    SecretClass.SERVICE_ACCOUNT_TOKEN: _jwt_like(),
    SecretClass.SIGNING_KEY: _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    SecretClass.TLS_PRIVATE_KEY: _pem(ec.generate_private_key(ec.SECP384R1())),
    SecretClass.UNSEAL_KEY: secrets.token_hex(32),
    SecretClass.ROOT_TOKEN: "s." + secrets.token_urlsafe(18),
    SecretClass.STARTUP_SECRET: "secretId",  # the demo's own: 8 bytes, the shortest that is planted
    SecretClass.KV_VALUE: 'kv/"v@lue"+' + secrets.token_hex(4),
}


def _b64_at(offset: int, alphabet: Callable[[bytes], bytes] = base64.b64encode) -> Callable[[str], str]:
    """The value inside a longer base64 stream, starting at byte `offset` mod 3 (a Secret's whole file)."""
    return lambda v: alphabet(b"config: " + b"x" * offset + v.encode() + b"\nmore: yes\n").decode()


PLANT_ENCODINGS: dict[str, Callable[[str], str]] = {
    "plain": lambda v: v,
    "base64": lambda v: base64.b64encode(v.encode()).decode(),
    "base64url": lambda v: base64.urlsafe_b64encode(v.encode()).decode(),
    "base64 unpadded": lambda v: base64.b64encode(v.encode()).decode().rstrip("="),
    "base64 at offset 0": _b64_at(1),  # "config: " is 8 bytes: 8 + 1 = 9, a multiple of 3
    "base64 at offset 1": _b64_at(2),
    "base64 at offset 2": _b64_at(0),
    "base64url at offset 1": _b64_at(2, base64.urlsafe_b64encode),
    "hex": lambda v: v.encode().hex(),
    "HEX": lambda v: v.encode().hex().upper(),
    "url": lambda v: quote(v, safe=""),
    "json": lambda v: json.dumps(v)[1:-1],
}


def _plant(run: RunDirectory, number: int, text: str, compressed: bool) -> Path:
    """`text` in one of the four kinds of artifact a run writes, by turn; gzipped when asked."""
    place = number % 4
    if place == 0:  # an executed notebook: the text is in a cell output (stored JSON-escaped)
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("print(x)")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"value: {text}\n")]
        nb.cells = [cell]
        path, data = run.notebooks / f"{number:02d}-planted.ipynb", nbformat.writes(nb)
    elif place == 1:
        path = run.path / f"evidence-{number:02d}.jsonl"
        data = "\n".join(text.splitlines()) + "\n"  # raw, as a careless writer would
    elif place == 2:
        path, data = run.path / f"report-{number:02d}.md", f"# Report\n\nseen: {text}\n"
    else:
        path, data = run.path / "logs" / f"kernel-{number:02d}.log", f"DEBUG {text} end\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    if compressed:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data.encode()))
    else:
        path.write_text(data, encoding="utf-8")
    return path


def _known(classes: Mapping[SecretClass, str]) -> KnownSecrets:
    known = KnownSecrets()
    for cls, value in classes.items():
        known.add(value, cls, f"test {cls}")
    return known


@pytest.mark.parametrize("compressed", [False, True], ids=["as-is", "gzip"])
@pytest.mark.parametrize("encoding", list(PLANT_ENCODINGS))
def test_every_class_in_every_encoding_is_found_scrubbed_and_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str, compressed: bool
) -> None:
    monkeypatch.delenv("MESHBOOK_KUBECONFIG", raising=False)
    monkeypatch.setattr(finalize, "known_secrets", lambda api, params, sandbox_state=None: _known(PLANTED))
    params = load_params(overrides=["target=live", f"kubeconfig={tmp_path / 'missing-kubeconfig'}"])
    run = create_run_directory(tmp_path / "runs")
    encode = PLANT_ENCODINGS[encoding]
    before = sum(1 for p in run.path.rglob("*") if p.is_file())  # the RUNNING marker
    planted = {
        cls: (_plant(run, number, encode(value), compressed), encode(value))
        for number, (cls, value) in enumerate(PLANTED.items())
    }
    leaks, _, coverage = scan_run_directory(run, params)
    for cls, (path, _) in planted.items():
        relative = str(path.relative_to(run.path))
        found = [leak for leak in leaks if leak["path"] == relative]
        assert [leak["secret"] for leak in found] == [str(cls).replace(" ", "-")], (cls, relative, found)
        assert all(leak["scrubbed"] for leak in found), found
        assert found[0]["encoding"].startswith("gzip: ") is compressed
    shown = json.dumps(leaks)
    for cls, (path, text) in planted.items():
        data = path.read_bytes()
        content = gzip.decompress(data).decode() if compressed else data.decode()
        assert text not in content and PLANTED[cls] not in content and PLANTED[cls] not in shown
        assert "‹redacted:" in content
    assert RunResult(run, leaks=leaks).exit_code is ExitCode.EXPECTATION_FAILED
    assert dict(coverage.classes) == {**{str(cls): 1 for cls in SecretClass}, PATTERN_CLASS: 0}
    assert coverage.encodings == ENCODINGS and "hex" in coverage.encodings
    assert coverage.files == before + len(planted) and coverage.gzip_files == (len(planted) if compressed else 0)
    assert scan_run_directory(run, params)[0] == []  # scrubbed for good


def test_fingerprints_and_resource_versions_are_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a clean run writes that looks random (keyed fingerprints, resourceVersions, uids) is no leak."""
    monkeypatch.delenv("MESHBOOK_KUBECONFIG", raising=False)
    monkeypatch.setattr(finalize, "known_secrets", lambda api, params, sandbox_state=None: _known(PLANTED))
    params = load_params(overrides=["target=live", f"kubeconfig={tmp_path / 'missing-kubeconfig'}"])
    run = create_run_directory(tmp_path / "runs")
    records = [
        {"fingerprint": f"hmac-sha256:{secrets.token_hex(32)}", "resourceVersion": str(n), "uid": secrets.token_hex(16)}
        for n in range(1, 2000)
    ]
    (run.path / "evidence.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    leaks, _, coverage = scan_run_directory(run, params)
    assert leaks == []
    assert coverage.files == 2 and coverage.bytes > 100_000  # evidence.jsonl and the RUNNING marker


# -- the pattern pass: credentials nobody told meshbook about ------------------------------------------------

# Made-up tokens in the shapes the detector knows; made at run time so the repository holds none.
_RANDOM = random.Random(20261204)
UNKNOWN_TOKENS = {
    "GitHub token": "ghp_" + "".join(_RANDOM.choice(string.ascii_letters + string.digits) for _ in range(36)),
    "URL password": "https://admin:" + "hunter2hunter2" + "@vault.example.com:8200",
}


@pytest.mark.parametrize("where", ["notebook", "evidence", "gzip log"])
def test_a_credential_nobody_knew_is_found_by_its_shape_and_scrubbed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    monkeypatch.delenv("MESHBOOK_KUBECONFIG", raising=False)
    params = load_params(overrides=["target=live", f"kubeconfig={tmp_path / 'missing-kubeconfig'}"])
    run = create_run_directory(tmp_path / "runs")
    typed = f"a user typed {UNKNOWN_TOKENS['GitHub token']} and {UNKNOWN_TOKENS['URL password']} into a cell\n"
    target = {
        "notebook": run.notebooks / "10-scenario-1.ipynb",
        "evidence": run.path / "evidence.jsonl",
        "gzip log": run.path / "kernel.log.gz",
    }[where]
    target.write_bytes(gzip.compress(typed.encode()) if where == "gzip log" else typed.encode())
    leaks, redactor, coverage = scan_run_directory(run, params)
    secrets_found = {leak["secret"] for leak in leaks}
    # Labels read as the redaction markers do: "found-by-pattern:-GitHub-token".
    assert any(s.startswith("found-by-pattern:") and "GitHub" in s for s in secrets_found), leaks
    assert all(leak["scrubbed"] for leak in leaks), leaks
    content = gzip.decompress(target.read_bytes()).decode() if where == "gzip log" else target.read_text()
    assert UNKNOWN_TOKENS["GitHub token"] not in content
    assert "hunter2hunter2" not in content
    assert coverage.as_dict()["classes"][PATTERN_CLASS] >= 2
    # What the run writes after the scan (summary reasons) is redacted with them too.
    assert UNKNOWN_TOKENS["GitHub token"] not in redactor.redact(f"reason: {UNKNOWN_TOKENS['GitHub token']}")


def test_a_clean_run_directory_has_no_pattern_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESHBOOK_KUBECONFIG", raising=False)
    params = load_params(overrides=["target=live", f"kubeconfig={tmp_path / 'missing-kubeconfig'}"])
    run = create_run_directory(tmp_path / "runs")
    records = [
        {"fingerprint": "hmac-sha256:" + secrets.token_hex(32), "resourceVersion": str(n), "uid": f"{n:08x}-aaaa"}
        for n in range(200)
    ]
    (run.path / "evidence.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run.notebooks / "00-prereq-istio.ipynb").write_text(
        json.dumps({"cells": [{"source": "rb.apply('vault-cr')  # https://vault.vault:8200"}]})
    )
    leaks, _, _ = scan_run_directory(run, params)
    assert leaks == []

"""Parameter validation: every bad value is refused with exit 2 and a message naming file and key."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from meshbook.errors import ExitCode, ParameterError
from meshbook.params import RunbookParams, load_params, params_schema
from tests.conftest import ROOT, CliResult


def _leaf_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaf_fields(annotation, (*prefix, name))
        else:
            yield (*prefix, name), info


def _bad_values(info: Any) -> list[tuple[Any, str]]:
    """Values of the wrong shape for a field, with a fragment the message must contain."""
    annotation = info.annotation
    if get_origin(annotation) is list:
        return [("00-prereq-istio", "expected a list"), (["nope"], "expected one of "), ([], "at least 1")]
    inner = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    kind = inner[0]
    if isinstance(kind, type) and issubclass(kind, Enum):
        return [("bogus", "expected one of "), (3, "expected one of ")]
    if kind is bool:
        return [("maybe", "expected true or false"), ([1], "expected true or false")]
    if kind is int:
        return [("abc", "expected a whole number"), (-5, "expected a number >= "), (1000, "<= ")]
    if kind is float:
        return [("soon", "expected a number"), (0, "expected a number > "), (10**6, "<= ")]
    if kind is str:
        return [(["a"], "expected a string"), ("Not Valid!", "expected a value matching")]
    raise AssertionError(f"no bad values known for {annotation}")


def _has_pattern(info: Any) -> bool:
    return any(getattr(m, "pattern", None) for m in info.metadata)


FIELDS = list(_leaf_fields(RunbookParams))
CASES = [
    pytest.param(path, value, fragment, id=f"{'.'.join(path)}={value!r}")
    for path, info in FIELDS
    for value, fragment in _bad_values(info)
    # a free-form string without a pattern accepts any text; only its type can be wrong
    if not (fragment == "expected a value matching" and not _has_pattern(info))
]


def _write(tmp_path: Path, doc: Any, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return path


def _nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc: Any = value
    for part in reversed(path):
        doc = {part: doc}
    return doc  # type: ignore[no-any-return]


def test_every_leaf_field_is_covered() -> None:
    assert len(FIELDS) >= 30
    covered = {tuple(c.values[0]) for c in CASES}  # type: ignore[arg-type]
    assert covered == {path for path, _ in FIELDS}


@pytest.mark.parametrize(("path", "value", "fragment"), CASES)
def test_bad_value_in_file_names_file_and_key(
    tmp_path: Path, run_cli: Callable[..., CliResult], path: tuple[str, ...], value: Any, fragment: str
) -> None:
    file = _write(tmp_path, _nested(path, value))
    result = run_cli("params", "--params", str(file))
    assert result.code == ExitCode.BAD_INPUT == 2
    dotted = ".".join(path)
    assert f"{file}: {dotted}" in result.err
    assert fragment in result.err
    assert result.out == ""


def test_enum_message_is_exact(tmp_path: Path) -> None:
    file = _write(tmp_path, {"istio": {"sidecar_mode": "nativ"}})
    with pytest.raises(ParameterError) as caught:
        load_params([file])
    assert caught.value.problems == [
        f'{file}: istio.sidecar_mode: expected one of classic, cni, native, got "nativ" (line 2)'
    ]


def test_unknown_keys_are_errors_with_a_suggestion(tmp_path: Path) -> None:
    file = _write(tmp_path, "istio:\n  sidecar_mod: native\nvault:\n  permisive: false\nextra: 1\n")
    with pytest.raises(ParameterError) as caught:
        load_params([file])
    problems = caught.value.problems
    assert len(problems) == 3
    assert problems[0].startswith(f"{file}: istio.sidecar_mod: unknown key (did you mean sidecar_mode?)")
    assert problems[0].endswith("(line 2)")
    assert f"{file}: vault.permisive: unknown key (did you mean permissive?)" in problems[1]
    assert problems[2].startswith(f"{file}: extra: unknown key")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("- a\n- b\n", "expected a mapping of parameters at the top level, got a list"),
        ("just text\n", 'expected a mapping of parameters at the top level, got "just text"'),
        ("istio: [1, 2]\n", "istio: expected a mapping of keys, got a list"),
        ("runbooks: 5\n", "runbooks: expected a list, got a number (5)"),
        ("target: 1\n", "target: expected one of sandbox, live, got a number (1)"),
    ],
)
def test_wrong_types(tmp_path: Path, run_cli: Callable[..., CliResult], doc: str, message: str) -> None:
    file = _write(tmp_path, doc)
    result = run_cli("params", "--params", str(file))
    assert result.code == 2
    assert f"{file}: {message}" in result.err


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    file = _write(tmp_path, "target: sandbox\nistio:\n  sidecar_mode: [classic\nvault: {}\n")
    result = run_cli("params", "--params", str(file))
    assert result.code == 2
    assert f"{file}:4:" in result.err
    assert "YAML syntax error" in result.err


def test_missing_file(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    missing = tmp_path / "nope.yaml"
    result = run_cli("params", "--params", str(missing))
    assert result.code == 2
    assert result.err.strip() == f"meshbook: {missing}: file not found"


def test_directory_instead_of_file(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("params", "--params", str(tmp_path))
    assert result.code == 2
    assert f"{tmp_path}: is a directory" in result.err


def test_set_override_names_itself(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("params", "--set", "vault.permissive=perhaps")
    assert result.code == 2
    assert '--set vault.permissive=perhaps: vault.permissive: expected true or false, got "perhaps"' in result.err
    result = run_cli("params", "--set", "novalue")
    assert result.code == 2
    assert "--set novalue: expected KEY=VALUE" in result.err
    result = run_cli("params", "--set", "istio..mode=x")
    assert result.code == 2
    assert "expected a dotted key" in result.err


def test_later_sources_override_earlier_and_error_names_the_right_one(tmp_path: Path) -> None:
    good = _write(tmp_path, {"istio": {"sidecar_mode": "cni"}, "vault": {"permissive": False}}, "a.yaml")
    bad = _write(tmp_path, {"istio": {"sidecar_mode": "wrong"}}, "b.yaml")
    params = load_params([good], ["istio.sidecar_mode=native"])
    assert params.istio.sidecar_mode == "native"
    assert params.vault.permissive is False
    with pytest.raises(ParameterError) as caught:
        load_params([good, bad])
    assert caught.value.problems[0].startswith(f"{bad}: istio.sidecar_mode:")


def test_repeated_runbook_is_refused() -> None:
    with pytest.raises(ParameterError) as caught:
        load_params(overrides=["runbooks=[10-scenario-1, 10-scenario-1]"])
    assert "each runbook may appear once, repeated: 10-scenario-1" in str(caught.value)


@pytest.mark.parametrize(
    "value",
    [
        "hvs.CAESIJlUtA8Jg2wNyXtCy5J2zRVGd9sEh0",
        "s.Ab3dEfGhIjKlMnOpQrStUvWx",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE",
    ],
)
def test_secret_looking_values_are_refused(tmp_path: Path, value: str) -> None:
    file = _write(tmp_path, {"kube_context": value})
    with pytest.raises(ParameterError) as caught:
        load_params([file])
    message = str(caught.value)
    assert f"{file}: kube_context" in message
    assert "secrets must stay in Vault or the cluster" in message
    assert value not in message


def test_shipped_parameter_files_are_valid() -> None:
    files = sorted((ROOT / "params").glob("*.yaml"))
    assert {f.name for f in files} >= {"sandbox.yaml", "live-example.yaml"}
    for file in files:
        load_params([file])
    assert load_params([ROOT / "params" / "sandbox.yaml"]) == load_params()


def test_schema_lists_every_section(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("params", "--schema")
    assert result.code == 0
    schema = json.loads(result.out)
    assert schema == params_schema()
    assert set(schema["properties"]) >= {"target", "mode", "runbooks", "istio", "bank_vaults", "vault", "app"}
    assert schema["additionalProperties"] is False


def test_params_prints_resolved_values(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("params", "--set", "istio.sidecar_mode=native", "--format", "json")
    assert result.code == 0
    assert json.loads(result.out)["istio"]["sidecar_mode"] == "native"


def test_exit_code_through_the_installed_command(tmp_path: Path) -> None:
    file = _write(tmp_path, {"istio": {"sidecar_mode": "nativ"}})
    proc = subprocess.run(
        [sys.executable, "-m", "meshbook", "params", "--params", str(file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert f'{file}: istio.sidecar_mode: expected one of classic, cni, native, got "nativ"' in proc.stderr

"""Every runbook parameter, with its default, in one place.

Parameter files (`params/*.yaml`) and `--set key=value` overrides are merged over these defaults and
validated here. Unknown keys are errors so a typo never passes silently, and no parameter may hold a
secret: parameters are written in plain text into executed notebooks (papermill), so secrets are only
ever read from the cluster or Vault at run time.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from meshbook.errors import ParameterError

# Re-exported: the enums live in param_enums so the sandbox can import them without pydantic.
from meshbook.param_enums import DEFAULT_RUNBOOKS as DEFAULT_RUNBOOKS
from meshbook.param_enums import FailurePolicy as FailurePolicy
from meshbook.param_enums import IstioInstallMethod as IstioInstallMethod
from meshbook.param_enums import Mode as Mode
from meshbook.param_enums import PeerAuthenticationMode as PeerAuthenticationMode
from meshbook.param_enums import PermissiveScope as PermissiveScope
from meshbook.param_enums import RunbookName as RunbookName
from meshbook.param_enums import SandboxSpeed as SandboxSpeed
from meshbook.param_enums import SidecarMode as SidecarMode
from meshbook.param_enums import Target as Target

_K8S_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_CHART_VERSION = r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$"


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class SandboxParams(_Params):
    """The built-in local cluster (used when `target: sandbox`)."""

    speed: SandboxSpeed = Field(SandboxSpeed.INSTANT, description="instant for tests, realistic for demos")
    state_dir: str | None = Field(
        None,
        description="state directory; default: a fresh one per run in the user's state directory "
        "(never under runs/: it holds Vault's keys), removed after the run",
    )
    kubernetes_version: str = Field(
        "1.33", pattern=r"^1\.(2[7-9]|3[0-9])$", description="version the sandbox reports (1.27-1.39)"
    )


class IstioParams(_Params):
    namespace: str = Field("istio-system", pattern=_K8S_NAME, description="Istio root namespace")
    version: str = Field("1.30.0", pattern=_CHART_VERSION, description="Istio release installed on live")
    install_method: IstioInstallMethod = Field(IstioInstallMethod.ISTIOCTL, description="live install tool")
    sidecar_mode: SidecarMode = Field(SidecarMode.CLASSIC, description="classic, cni or native sidecars")
    hold_application_until_proxy_starts: bool = Field(
        False, description="start app containers only once istio-proxy is ready"
    )
    mesh_mtls_mode: PeerAuthenticationMode = Field(
        PeerAuthenticationMode.STRICT, description="mode of PeerAuthentication <root>/default"
    )


class BankVaultsParams(_Params):
    namespace: str = Field("vault-system", pattern=_K8S_NAME, description="operator and webhook namespace")
    inject_sidecar: bool = Field(True, description="label the namespace istio-injection=enabled")
    operator_chart_version: str = Field("1.24.0", pattern=_CHART_VERSION)
    webhook_chart_version: str = Field("1.23.1", pattern=_CHART_VERSION)
    webhook_replicas: int = Field(2, ge=1, le=10)
    pods_failure_policy: FailurePolicy = Field(FailurePolicy.IGNORE, description="webhook failurePolicy")
    webhook_permissive: bool = Field(True, description="PERMISSIVE exception for the webhook workload")
    webhook_permissive_scope: PermissiveScope = Field(PermissiveScope.WORKLOAD)


class VaultParams(_Params):
    namespace: str = Field("vault", pattern=_K8S_NAME)
    istio_enabled: bool = Field(True, description="Vault CR spec.istioEnabled (https-api-port naming)")
    permissive: bool = Field(True, description="PeerAuthentication <vault ns>/default PERMISSIVE")
    address: str | None = Field(
        None,
        pattern=r"^https?://[^\s]+$",
        description="Vault URL reachable from this host; default: port-forward to vault-0",
    )
    secret_path: str = Field(
        "secret/data/accounts/aws", pattern=r"^[A-Za-z0-9_.\-/]+$", description="KV v2 path incl. data/"
    )
    secret_key: str = Field("AWS_SECRET_ACCESS_KEY", pattern=r"^[A-Za-z0-9_.\-]+$")
    role: str = Field("default", pattern=r"^[A-Za-z0-9_.\-]+$", description="kubernetes auth role")


class AppParams(_Params):
    namespace: str = Field("app", pattern=_K8S_NAME)
    name: str = Field("app", pattern=_K8S_NAME, description="Deployment name of the demo app")
    init_container: bool = Field(True, description="include init container init-ubuntu")
    service_account: str = Field("default", pattern=_K8S_NAME)


class TimeoutParams(_Params):
    """Seconds to wait for each kind of event before giving up.

    An install, Vault or notebook that runs out of time ends the run with exit 4; pods that are not Ready
    in time fail their expectation (exit 1) with what was last seen, since that is the scenario's verdict.
    """

    pods_ready: float = Field(180.0, gt=0, le=3600)
    install: float = Field(300.0, gt=0, le=3600)
    vault_ready: float = Field(120.0, gt=0, le=3600)
    notebook: float = Field(900.0, gt=0, le=7200)
    # One cell at most (a frozen kernel is a timeout, not a hang); above the waits a cell makes.
    cell: float = Field(600.0, gt=0, le=7200)
    # A wait on pods ends early when a container crashed this many times in a row the same way with its
    # sidecars ready (or its image cannot be pulled): the rest of pods_ready would only delay the verdict.
    give_up_after_crashes: int = Field(3, ge=1, le=100)


class RunbookParams(_Params):
    """All parameters of a run; every notebook receives the parts it needs."""

    target: Target = Field(Target.SANDBOX, description="sandbox (built-in) or live (kubeconfig)")
    kube_context: str | None = Field(None, description="kubeconfig context for target live")
    kubeconfig: str | None = Field(None, description="kubeconfig path for target live; default: $KUBECONFIG")
    mode: Mode = Field(Mode.APPLY, description="apply changes the cluster, check only reads")
    runbooks: list[RunbookName] = Field(
        default_factory=lambda: list(DEFAULT_RUNBOOKS), min_length=1, description="runbooks to run, in order"
    )
    istio: IstioParams = Field(default_factory=IstioParams)  # type: ignore[arg-type]
    bank_vaults: BankVaultsParams = Field(default_factory=BankVaultsParams)  # type: ignore[arg-type]
    vault: VaultParams = Field(default_factory=VaultParams)  # type: ignore[arg-type]
    app: AppParams = Field(default_factory=AppParams)  # type: ignore[arg-type]
    timeouts: TimeoutParams = Field(default_factory=TimeoutParams)  # type: ignore[arg-type]
    sandbox: SandboxParams = Field(default_factory=SandboxParams)  # type: ignore[arg-type]

    @field_validator("runbooks")
    @classmethod
    def _no_repeats(cls, value: list[RunbookName]) -> list[RunbookName]:
        repeated = sorted({str(r) for r in value if value.count(r) > 1})
        if repeated:
            raise ValueError(f"each runbook may appear once, repeated: {', '.join(repeated)}")
        return value


@dataclass
class _Source:
    """Where a merged value came from: a file (with YAML line numbers) or a `--set`."""

    name: str
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)
    # How to name the source once a value in it carried a credential (a `--set` names its value).
    shown: str | None = None
    withheld: bool = False

    @property
    def label(self) -> str:
        return (self.shown or self.name) if self.withheld else self.name


@dataclass
class ParamSources:
    """The documents merged into one parameter mapping, remembering which source set each key."""

    data: dict[str, Any] = field(default_factory=dict)
    origin: dict[tuple[str, ...], _Source] = field(default_factory=dict)

    def merge(self, doc: Mapping[str, Any], source: _Source, prefix: tuple[str, ...] = ()) -> None:
        target: dict[str, Any] = self.data
        for key in prefix:
            target = target.setdefault(key, {})
        _merge_into(target, doc, source, prefix, self.origin)

    def withhold(self, loc: Sequence[str | int]) -> None:
        """From now on, name every source that set (part of) `loc` without its text: it has a credential."""
        path = tuple(str(p) for p in loc)
        for n in range(len(path), 0, -1):
            source = self.origin.get(path[:n])
            if source is not None:
                source.withheld = True

    def problem(self, loc: Sequence[str | int], description: str) -> str:
        """`file: dotted.key: description (line N)`, naming the source that set the key at `loc`."""
        path = tuple(str(p) for p in loc)
        for n in range(len(path), 0, -1):
            source = self.origin.get(path[:n])
            if source is not None:
                line = source.lines.get(path[:n])
                where = f" (line {line})" if line else ""
                return f"{source.label}: {_dotted(loc)}: {description}{where}"
        return f"parameters: {_dotted(loc)}: {description}"


def _merge_into(
    target: dict[str, Any],
    doc: Mapping[str, Any],
    source: _Source,
    prefix: tuple[str, ...],
    origin: dict[tuple[str, ...], _Source],
) -> None:
    for key, value in doc.items():
        path = (*prefix, str(key))
        origin[path] = source
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge_into(target[key], value, source, path, origin)
        elif isinstance(value, Mapping):
            target[key] = {}
            _merge_into(target[key], value, source, path, origin)
        else:
            target[key] = value


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _yaml_key_lines(node: yaml.Node, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, str(key_node.value))
            lines[path] = key_node.start_mark.line + 1
            lines.update(_yaml_key_lines(value_node, path))
    return lines


def read_params_file(path: Path | str) -> tuple[dict[str, Any], _Source]:
    """Read one YAML parameter file; every failure names the file (and line for syntax errors)."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParameterError([f"{name}: file not found"]) from None
    except IsADirectoryError:
        raise ParameterError([f"{name}: is a directory, expected a YAML parameter file"]) from None
    except UnicodeDecodeError as exc:
        raise ParameterError([f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except OSError as exc:
        raise ParameterError([f"{name}: cannot read ({exc.strerror})"]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ParameterError([f"{name}{where}: YAML syntax error: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise ParameterError([f"{name}: YAML syntax error: {exc}"]) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ParameterError([f"{name}: expected a mapping of parameters at the top level, got {_kind(doc)}"])
    lines = _yaml_key_lines(node) if node is not None else {}
    return doc, _Source(name, lines)


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """Parse `--set dotted.key=value`; the value is read as a YAML scalar or flow collection."""
    from meshbook.param_credentials import describe_text

    carried = describe_text(text)
    shown = f"--set … (it carries {carried}, not shown)" if carried else f"--set {text}"
    if "=" not in text:
        raise ParameterError([f"{shown}: expected KEY=VALUE, e.g. istio.sidecar_mode=native"])
    key, _, raw = text.partition("=")
    path = tuple(key.strip().split("."))
    if not key.strip() or any(not part for part in path):
        got = "" if carried else f", got {key!r}"
        raise ParameterError([f"{shown}: expected a dotted key such as vault.permissive{got}"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return path, value


def load_params(
    files: Iterable[Path | str] = (),
    overrides: Iterable[str] = (),
    base: Mapping[str, Any] | None = None,
    *,
    credentials_checked: bool = False,
) -> RunbookParams:
    """Merge parameter files (in order) and `--set` overrides over the defaults, and validate.

    Raises ParameterError listing every problem, each naming the file or `--set` and the dotted key.
    `credentials_checked`: the values come from `meshbook run`, which refused credentials before it
    injected them, so the credential detector (a rule engine that takes about half a second to load) is
    not run again in every kernel.
    """
    sources = ParamSources()
    if base:
        sources.merge(base, _Source("parameters"))
    for path in files:
        doc, source = read_params_file(path)
        sources.merge(doc, source)
    for text in overrides:
        path_, value = parse_override(text)
        nested: Any = value
        for part in reversed(path_):
            nested = {part: nested}
        key = ".".join(path_)
        sources.merge(nested, _Source(f"--set {text}", {}, shown=f"--set {key}=… (value not shown)"))
    return validate_params(sources, check_credentials=not credentials_checked)


def validate_params(sources: ParamSources, *, check_credentials: bool = True) -> RunbookParams:
    """Validate merged parameters; a value carrying a credential is refused before anything echoes it."""
    # Imported here: the detector's rule engine loads only where parameters are checked, never in the
    # sandbox process, which imports this module for its enums.
    from meshbook.param_credentials import credentials_in

    carried = credentials_in(sources.data) if check_credentials else []
    for credential in carried:
        sources.withhold(credential.loc)
    problems = [sources.problem(c.loc, c.describe()) for c in carried]
    try:
        params = RunbookParams.model_validate(sources.data)
    except ValidationError as exc:
        # An error at or under a credential's key would print the value: the credential says enough.
        problems += [
            sources.problem(err["loc"], _describe(err))
            for err in exc.errors()
            if not any(tuple(err["loc"][: len(c.loc)]) == c.loc for c in carried)
        ]
        raise ParameterError(problems) from None
    if problems:
        raise ParameterError(problems)
    return params


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _field_names(loc: Sequence[str | int]) -> list[str]:
    model: type[BaseModel] = RunbookParams
    for part in loc[:-1]:
        info = model.model_fields.get(str(part))
        annotation = getattr(info, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _describe(err: Mapping[str, Any]) -> str:
    """One pydantic error as `expected X, got Y`."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = _kind(err.get("input"))
    loc = err["loc"]
    if kind == "extra_forbidden":
        known = _field_names(loc)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"unknown key{hint}; known keys here: {', '.join(known)}" if known else "unknown key"
    if kind == "enum":
        expected = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        return f"expected one of {expected}, got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {got}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {got}"
    if kind == "string_type":
        return f"expected a string, got {got}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping of keys, got {got}"
    if kind == "list_type":
        return f"expected a list, got {got}"
    if kind == "string_pattern_mismatch":
        return f"expected a value matching {ctx.get('pattern')}, got {got}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        ops = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
        bound = next(iter(v for k, v in ctx.items() if k in ("gt", "ge", "lt", "le")), "?")
        return f"expected a number {ops[kind]} {bound}, got {got}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s), got {ctx.get('actual_length')}"
    if kind == "value_error":
        return str(ctx.get("error", err.get("msg")))
    if kind == "missing":
        return "required key is missing"
    return f"{err.get('msg')}, got {got}"


def params_schema() -> dict[str, Any]:
    """JSON Schema of the parameters (`meshbook params --schema`)."""
    return RunbookParams.model_json_schema()


def notebook_parameters(params: RunbookParams) -> dict[str, Any]:
    """The plain-JSON form papermill injects into each notebook's `parameters` cell."""
    return params.model_dump(mode="json")

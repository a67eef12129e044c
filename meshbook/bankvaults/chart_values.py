"""The vault-secrets-webhook chart's values that change what a cluster does, as data (chart v1.23.1).

`meshbook sandbox install bank-vaults --set KEY=VALUE` takes these keys as `helm --set` does; each has
the chart's default, what a value must be and what it changes (`CHART_VALUES`). The values meshbook's
parameters decide (`bank_vaults.webhook_replicas`, `.pods_failure_policy`, the Vault address) are
given as the same `--set` lines (`params_sets`), so Helm on a live cluster and the sandbox take one path.
An unknown key or a bad value is refused naming the key and what was expected; a value that carries a
credential is refused without echoing it (the Deployment would hold it in plain text).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from meshbook.errors import ParameterError
from meshbook.params import BankVaultsParams

ChartValues = dict[str, Any]
Check = Callable[[Any], Any]  # a value as read from YAML -> as the chart renders it; ValueError says why

_FAILURE_POLICIES = ("Ignore", "Fail")
_SIDE_EFFECTS = ("None", "NoneOnDryRun", "Some", "Unknown")
_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")  # kube-apiserver's rule for env var names
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_URL = re.compile(r"^https?://[^\s,/]+(/[^\s,]*)?$")
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")  # Go's time.ParseDuration


def _got(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else "a mapping" if isinstance(value, dict) else repr(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_got(value)}")
    return value


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {_got(value)}")
        return str(value)

    return check


def _whole(low: int, high: int | None = None) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
            span = f"from {low} to {high}" if high else f">= {low}"
            raise ValueError(f"expected a whole number {span}, got {_got(value)}")
        return value

    return check


def _timeout(value: Any) -> int | bool:
    """`false` (the chart's default) leaves timeoutSeconds unset; else 1-30, kube-apiserver's range."""
    if value is False:
        return False
    return int(_whole(1, 30)(value))


def _text(pattern: re.Pattern[str] | None = None, expected: str = "a string") -> Check:
    def check(value: Any) -> str:
        if isinstance(value, dict | list) or value is None:
            raise ValueError(f"expected {expected}, got {_got(value)}")
        text = str(value).lower() if isinstance(value, bool) else str(value)  # helm's `quote` of true: "true"
        if pattern is not None and not pattern.match(text):
            raise ValueError(f"expected {expected}, got {_got(text)}")
        return text

    return check


def _url_list(value: Any) -> str:
    text = str(_text()(value))
    for item in (part.strip() for part in text.split(",")):
        if not _URL.match(item):
            raise ValueError(f'expected comma-separated Vault URLs such as https://vault.vault:8200, got "{item}"')
    return text


def _string_map(entry: Check, key: re.Pattern[str] = _LABEL_KEY, what: str = "label key") -> Check:
    def check(value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping of {what}s to strings, got {_got(value)}")
        for name in value:
            if not key.match(str(name)):
                raise ValueError(f'expected a valid {what}, got "{name}"')
        return {str(name): entry(item) for name, item in value.items()}

    return check


def _selector(value: Any) -> dict[str, Any]:
    """A label selector: matchLabels and matchExpressions, as the chart splices them in."""
    if not isinstance(value, dict) or set(value) - {"matchLabels", "matchExpressions"}:
        raise ValueError(f"expected a label selector with matchLabels and/or matchExpressions, got {_got(value)}")
    out: dict[str, Any] = {}
    if value.get("matchLabels"):
        out["matchLabels"] = _string_map(_text())(value["matchLabels"])
    expressions = value.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise ValueError(f"expected matchExpressions to be a list, got {_got(expressions)}")
    for item in expressions:
        if not isinstance(item, dict) or not _LABEL_KEY.match(str(item.get("key", ""))):
            raise ValueError(f"expected each matchExpression to have a label key, got {_got(item)}")
        if item.get("operator") not in _SELECTOR_OPERATORS:
            raise ValueError(f"expected a matchExpression operator {', '.join(_SELECTOR_OPERATORS)}, got {item}")
    if expressions:
        out["matchExpressions"] = [dict(item) for item in expressions]
    return out


def _refused(reason: str) -> Check:
    def check(value: Any) -> str:
        raise ValueError(reason)

    return check


_BOOL_TEXT = _text(re.compile(r"^(true|false)$"), "true or false")
# The environment the webhook reads (its config defaults, v1.23.1); a name not here is a typo.
WEBHOOK_ENV: Mapping[str, Check] = {
    "VAULT_ADDR": _text(_URL, "a Vault URL such as https://vault.vault:8200"),
    "VAULT_ADDR_ALLOWLIST": _url_list,
    "VAULT_ALLOW_PRIVATE_ADDR": _BOOL_TEXT,
    "VAULT_ALLOW_OBJECT_SKIP_VERIFY": _BOOL_TEXT,
    "VAULT_SKIP_VERIFY": _BOOL_TEXT,
    "VAULT_PATH": _text(),
    "VAULT_AUTH_METHOD": _text(),
    "VAULT_ROLE": _text(),
    "VAULT_CLIENT_TIMEOUT": _text(_DURATION, "a Go duration such as 10s"),
    "VAULT_TLS_SECRET": _text(),
    "VAULT_NAMESPACE": _text(),
    "VAULT_IMAGE": _text(),
    "VAULT_IMAGE_PULL_POLICY": _text(),
    "VAULT_CAPATH": _text(),
    "VAULT_ENV_IMAGE": _text(),
    "VAULT_ENV_PULL_POLICY": _text(),
    "VAULT_ENV_DAEMON": _BOOL_TEXT,
    "VAULT_ENV_DELAY": _text(_DURATION, "a Go duration such as 10s"),
    "VAULT_ENV_PASSTHROUGH": _text(),
    "VAULT_ENV_CPU_REQUEST": _text(),
    "VAULT_ENV_CPU_LIMIT": _text(),
    "VAULT_ENV_MEMORY_REQUEST": _text(),
    "VAULT_ENV_MEMORY_LIMIT": _text(),
    "VAULT_ENV_LOG_SERVER": _text(),
    "VAULT_IGNORE_MISSING_SECRETS": _BOOL_TEXT,
    "VAULT_AGENT": _BOOL_TEXT,
    "VAULT_AGENT_SHARE_PROCESS_NAMESPACE": _text(),
    "VAULT_CT_IMAGE": _text(),
    "VAULT_CT_PULL_POLICY": _text(),
    "VAULT_CT_SHARE_PROCESS_NAMESPACE": _text(),
    "VAULT_SERVICEACCOUNT": _text(),
    "VAULT_TOKEN": _refused(
        "a Vault token in the webhook's env is stored in plain text in its Deployment; meshbook sets none "
        "(the webhook logs in with the pod's service account)"
    ),
    "DEFAULT_IMAGE_PULL_SECRET": _text(),
    "DEFAULT_IMAGE_PULL_SECRET_NAMESPACE": _text(),
    "DEFAULT_IMAGE_PULL_SECRET_SERVICE_ACCOUNT": _text(),
    "REGISTRY_SKIP_VERIFY": _BOOL_TEXT,
    "PSP_ALLOW_PRIVILEGE_ESCALATION": _BOOL_TEXT,
    "RUN_AS_NON_ROOT": _BOOL_TEXT,
    "RUN_AS_USER": _text(re.compile(r"^\d+$"), "a user id"),
    "RUN_AS_GROUP": _text(re.compile(r"^\d+$"), "a group id"),
    "READONLY_ROOT_FS": _BOOL_TEXT,
    "MUTATE_CONFIGMAP": _BOOL_TEXT,
    "TRANSIT_KEY_ID": _text(),
    "TRANSIT_PATH": _text(),
    "TRANSIT_BATCH_SIZE": _text(re.compile(r"^\d+$"), "a whole number"),
    "ENABLE_JSON_LOG": _BOOL_TEXT,
    "LOG_LEVEL": _one_of("debug", "info", "warn", "error"),
    "TELEMETRY_LISTEN_ADDRESS": _text(),
}


def _env(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of environment variable names to strings, got {_got(value)}")
    out: dict[str, str] = {}
    for name, item in value.items():
        check = WEBHOOK_ENV.get(str(name))
        if check is None:
            close = difflib.get_close_matches(str(name), list(WEBHOOK_ENV), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f'"{name}" is no environment variable the webhook reads{hint}')
        try:
            out[str(name)] = check(item)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return out


@dataclass(frozen=True)
class ChartValue:
    """One documented value: its chart default, what it must be, and what it changes in the objects."""

    key: str
    default: Any
    check: Check
    renders: str
    entries: bool = False  # a mapping whose entries `--set KEY.NAME=VALUE` sets one by one


def _selectors(prefix: str, webhook: str) -> tuple[ChartValue, ...]:
    what = f"the {webhook} webhook's" if webhook else "every webhook's"
    override = f" (overrides `{prefix.split('.')[-1]}`)" if webhook else ""
    default: dict[str, Any] = (
        {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]}
        if not webhook
        else {}
    )
    return (
        ChartValue(f"{prefix}namespaceSelector", default, _selector, f"{what} namespaceSelector{override}"),
        ChartValue(f"{prefix}objectSelector", {}, _selector, f"{what} objectSelector{override}"),
    )


CHART_VALUES: tuple[ChartValue, ...] = (
    ChartValue("replicaCount", 2, _whole(0), "the webhook Deployment's spec.replicas"),
    ChartValue("debug", False, _bool, "env LOG_LEVEL=debug"),
    ChartValue("secretsMutation", True, _bool, "the Secrets webhook is registered (`secrets.` in the configuration)"),
    ChartValue("configMapMutation", False, _bool, "the ConfigMaps webhook is registered (`configmaps.`)"),
    ChartValue("podsFailurePolicy", "Ignore", _one_of(*_FAILURE_POLICIES), "the pods webhook's failurePolicy"),
    ChartValue("secretsFailurePolicy", "Ignore", _one_of(*_FAILURE_POLICIES), "the Secrets webhook's failurePolicy"),
    ChartValue(
        "configMapFailurePolicy", "Ignore", _one_of(*_FAILURE_POLICIES), "the ConfigMaps webhook's failurePolicy"
    ),
    ChartValue(
        "configmapFailurePolicy",
        None,
        _one_of(*_FAILURE_POLICIES),
        "the ConfigMaps webhook's failurePolicy (read before configMapFailurePolicy)",
    ),
    ChartValue("timeoutSeconds", False, _timeout, "every webhook's timeoutSeconds (false: kube-apiserver's 10)"),
    ChartValue("apiSideEffectValue", "NoneOnDryRun", _one_of(*_SIDE_EFFECTS), "every webhook's sideEffects"),
    ChartValue(
        "ignoreReleaseNamespace", True, _bool, "every webhook's namespaceSelector excludes the release namespace"
    ),
    *_selectors("", ""),
    *_selectors("pods.", "pods"),
    *_selectors("secrets.", "Secrets"),
    *_selectors("configMaps.", "ConfigMaps"),
    ChartValue("env", {}, _env, "the webhook container's env, sorted by name", entries=True),
    ChartValue("labels", {}, _string_map(_text()), "labels of the Deployment and its pods", entries=True),
    ChartValue("podAnnotations", {}, _string_map(_text(), what="annotation key"), "pod annotations", entries=True),
    ChartValue("image.repository", "ghcr.io/bank-vaults/vault-secrets-webhook", _text(), "the webhook's image"),
    ChartValue("image.tag", "", _text(), "the webhook's image tag (empty: v<chart version>), so its behaviour"),
    ChartValue("vaultEnv.repository", "ghcr.io/bank-vaults/vault-env", _text(), "env VAULT_ENV_IMAGE"),
    ChartValue("vaultEnv.tag", "v1.23.0", _text(), "env VAULT_ENV_IMAGE (vault-env has its own releases)"),
)
_BY_KEY = {value.key: value for value in CHART_VALUES}


def chart_defaults() -> ChartValues:
    """Every known key with the chart's default (a fresh copy)."""
    return {value.key: yaml.safe_load(yaml.safe_dump(value.default)) for value in CHART_VALUES}


def params_sets(bank_vaults: BankVaultsParams, vault_addr: str) -> list[str]:
    """The chart values meshbook's parameters decide, as `--set` lines for helm and the sandbox alike."""
    return [
        f"replicaCount={bank_vaults.webhook_replicas}",
        f"env.VAULT_ADDR={vault_addr}",
        f"podsFailurePolicy={bank_vaults.pods_failure_policy.value}",
    ]


def webhook_values(sets: Sequence[str] = (), *, parameter_sets: Sequence[str] = ()) -> ChartValues:
    """The chart's defaults with `parameter_sets` (`params_sets`), then `sets`, applied in order;
    ParameterError lists every problem.

    Only `sets` (a user's `--set` lines) are searched for credentials: `parameter_sets` come from parameters,
    which were searched when they were loaded (`load_params`); searching them again cost loading the
    detector's rules, 0.7-0.9 s of a notebook's install cell.
    """
    values = chart_defaults()
    problems = [problem for text in parameter_sets if (problem := _apply(values, text, check_credentials=False))]
    problems += [problem for text in sets if (problem := _apply(values, text))]
    if problems:
        raise ParameterError(problems)
    return values


def _apply(values: ChartValues, text: str, *, check_credentials: bool = True) -> str | None:
    """Set one `KEY=VALUE` into `values`; the problem as a message, or None."""
    from meshbook.param_credentials import credentials_in, describe_text

    if "=" not in text:
        in_text = describe_text(text) if check_credentials else None
        shown = f"--set … (it carries {in_text}, not shown)" if in_text else f"--set {text}"
        return f"{shown}: expected KEY=VALUE, e.g. secretsMutation=false"
    key, _, raw = text.partition("=")
    key = key.strip()
    shown = f"--set {key}=…"
    carried = credentials_in({key.rsplit(".", 1)[-1]: raw}) if check_credentials else []
    if carried:
        found = ", ".join(finding.describe() for finding in carried[0].findings)
        return (
            f"{shown} (value not shown): {key}: the value carries a credential ({found}); chart values are "
            "stored in plain text in the webhook's objects: remove it (secrets stay in Vault)"
        )
    spec, entry = _lookup(key)
    if spec is None:
        return f"--set {text}: {key}: {_unknown(key)}"
    value = _scalar(raw)
    if entry:
        current = dict(values[spec.key])
        if spec.key.endswith("Selector"):
            if entry[0] != "matchLabels" or len(entry) != 2:
                return f"--set {text}: {key}: expected {spec.key}.matchLabels.LABEL=VALUE or {spec.key}={{...}}"
            current["matchLabels"] = {**(current.get("matchLabels") or {}), entry[1]: value}
        else:
            current[".".join(entry)] = value
        value = current
    try:
        values[spec.key] = spec.check(value)
    except ValueError as exc:
        return f"--set {text}: {key}: {exc}"
    return None


def _scalar(raw: str) -> Any:
    """A `--set` value typed as helm types it (true, false, null, whole numbers; else text), or a YAML
    flow mapping or list (`objectSelector={matchLabels: {team: a}}`)."""
    text = raw.strip()
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text[:1] in "{[" and text:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return raw
    return raw


def _lookup(key: str) -> tuple[ChartValue | None, tuple[str, ...]]:
    """The table row a key sets, and the entry under it (`env.VAULT_ADDR` -> env, (VAULT_ADDR,))."""
    if key in _BY_KEY:
        return _BY_KEY[key], ()
    for spec in CHART_VALUES:
        if key.startswith(spec.key + ".") and (spec.entries or spec.key.endswith("Selector")):
            rest = key[len(spec.key) + 1 :]
            parts = (rest,) if spec.entries else tuple(rest.split(".", 1))
            if all(parts):
                return spec, parts
    return None, ()


def _unknown(key: str) -> str:
    known = [spec.key for spec in CHART_VALUES]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    if not close and "_" in key.split(".", 1)[0]:  # chart keys are camelCase: a mistyped parameter section?
        hint = " (a meshbook parameter starts with its section: target, istio., bank_vaults., vault., app., ...)"
    return f"not a value of the vault-secrets-webhook chart meshbook knows{hint}; known: {', '.join(known)}"
